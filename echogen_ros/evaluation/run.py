"""`echogen eval`: every metric of a model on an `echogen world` export, as one dictionary.

- grounding (Ref-L4 protocol): Acc@0.5 / 0.75 / 0.9 and mAcc, overall, per expression type and per
  composition (referred object of a held-out colour × category pair or not) and per held-out pair, with
  what the wrong boxes hit (another object, the referred one loosely, nothing: `grounding_errors`); refs
  with no referent (gRefCOCO's no-target expressions) have no box to score and are only counted;
- layout-to-image fidelity: COCO AP / AP50 / AP75 of the classical detector on imagined scenes against the
  layouts they were imagined from, and the same for the controls (`controls`: the tokenizer's ceiling, an
  empty table's codes, another scene's codes, painted boxes);
- cycle consistency: mean IoU between the layouts and the layouts grounded back, and the failure rate
  (objects with IoU < 0.5); optionally with noisy input layouts (`noise`: box corners jittered by a
  Gaussian of that fraction of the box's size), where the cycle is scored against the noisy layout; the cycle
  check's precision and recall as a detector of scenes drawn wrong (`cycle_check`);
- FID (optional): torchmetrics on a user-supplied Inception network, frames against imagined scenes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.evaluation import cycle_check
from echogen_ros.evaluation.controls import ROWS, Case, Graded, grade
from echogen_ros.evaluation.grounding_errors import composition, outcome, outcome_rates
from echogen_ros.evaluation.layout_ap import layout_ap
from echogen_ros.model.drawing import NO_MAP, has_decoder_map
from echogen_ros.model.layout import Layout, LayoutObject, box_iou
from echogen_ros.model.metrics import grounding_accuracy
from echogen_ros.planning.imagination import CYCLE_THRESHOLD
from echogen_ros.world.dataset import FORMAT_VERSION, has_target

FAILURE_IOU = 0.5


def xyxy(bbox) -> tuple[float, float, float, float]:
    """A COCO [x, y, w, h] box as (x1, y1, x2, y2)."""
    x, y, w, h = bbox
    return float(x), float(y), float(x + w), float(y + h)


def object_label(annotation: dict, names: dict[int, str]) -> str:
    """What a layout calls an exported object: "colour category" (the category alone without a colour)."""
    return f"{annotation.get('attributes', {}).get('colour', '')} {names[annotation['category_id']]}".strip()


def load_export(directory: Path) -> dict:
    path = Path(directory) / "annotations.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --data must be a directory written by `echogen world`")
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = [k for k in ("images", "annotations", "categories", "refs") if k not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    version = data.get("info", {}).get("version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} is export format {version!r}; this echogen_ros reads 1 to {FORMAT_VERSION}: update")
    return data


def evaluate(model, directory: Path, **options) -> dict:
    """Every metric of `model` on the export in `directory` (`options`: those of `measure`)."""

    def read(info: dict) -> np.ndarray:
        image = cv2.imread(str(Path(directory) / "images" / info["file_name"]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read {info['file_name']} in {directory}/images")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)

    return measure(model, load_export(directory), read, **options)


def measure(
    model,
    data: dict,
    image: Callable[[dict], np.ndarray],
    limit: int = 0,
    imagine_limit: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    noise: float = 0.0,
    fid=None,
    imagine: bool = True,
    decoder_map: bool = False,
    cycle_threshold: float = CYCLE_THRESHOLD,
) -> dict:
    """Every metric of `model` on world data (`annotations.json`'s content, `world.dataset.coco`), whose
        images `image(info)` gives as RGB: `evaluate` reads them from an export, training's periodic evaluation
        renders them in memory. `limit` scenes (0: all), the first `imagine_limit` of them imagined (0: all; none
        when not `imagine`), with `noise` on the imagined layouts; `fid` is an evaluation.fid.FID or None. Every
    imagined scene is also drawn by the controls (`evaluation.controls`), all by Janus' decoder from the codes
    alone or, with `decoder_map`, by the layout-reading decoder; `cycle_threshold` is the cycle check's, graded
    as a detector of scenes drawn wrong (`evaluation.cycle_check`)."""
    if noise < 0 or not np.isfinite(noise):
        raise ValueError(f"layout noise must be a finite fraction >= 0, got {noise}")
    names = {c["id"]: c["name"] for c in data["categories"]}
    anns = defaultdict(list)
    for ann in data["annotations"]:
        anns[ann["image_id"]].append(ann)
    refs, no_target = defaultdict(list), defaultdict(int)
    for ref in data["refs"]:
        if has_target(ref):
            refs[ref["image_id"]].append(ref)
        else:
            no_target[ref["image_id"]] += len(ref["sentences"])
    captions = {c["image_id"]: c["caption"] for c in data.get("captions", [])}
    images = data["images"][:limit] if limit else data["images"]
    imagine_count = (min(len(images), imagine_limit) if imagine_limit else len(images)) if imagine else 0
    by_type: dict[str, list[float]] = defaultdict(list)
    by_composition: dict[str, list[tuple[float, str]]] = defaultdict(list)  # (IoU, outcome) per expression
    by_heldout_pair: dict[str, list[float]] = defaultdict(list)  # "white bowl" → IoUs
    if decoder_map and not has_decoder_map(model):
        raise ValueError(NO_MAP)
    graded = {name: Graded([], [], [], []) for name in ROWS}
    for step, info in enumerate(images):
        frame = image(info)
        by_id = {a["id"]: a for a in anns[info["id"]]}
        sentences = [(r, s["sent"]) for r in refs[info["id"]] for s in r["sentences"]]
        if sentences:
            found = model.ground_many(frame, [text for _, text in sentences])
            boxes = {key: xyxy(a["bbox"]) for key, a in by_id.items()}
            for (ref, _), det in zip(sentences, found):
                target = by_id[ref["ann_id"]]
                iou = box_iou(boxes[ref["ann_id"]], det.box)
                by_type[ref.get("type", "all")].append(iou)
                pair = composition(target, names[target["category_id"]])
                by_composition[pair].append((iou, outcome(det.box, ref["ann_id"], boxes)))
                if pair == "heldout_pair":
                    by_heldout_pair[object_label(target, names)].append(iou)
        if step < imagine_count and by_id:
            chosen = list(by_id.values())[: model.max_objects]
            other = image(images[(step + 1) % len(images)])  # the next scene's frame (this one's if it is alone)
            layout = goal_layout(info, chosen, names, captions.get(info["id"], ""), noise, seed)
            categories = [names[a["category_id"]] for a in chosen]
            colours = [a.get("attributes", {}).get("colour", "") for a in chosen]
            case = Case(layout, colours, categories, frame, other, seed + info["id"], info["id"])
            for name, draw in ROWS.items():
                picture = draw(model, case, decoder_map)
                grade(model, picture, case, graded[name])
                if name == "imagined" and fid is not None:
                    fid.update(frame, real=True)
                    fid.update(picture, real=False)
        if progress:
            progress(step + 1, len(images))
    overall = grounding_accuracy([v for values in by_type.values() for v in values])
    report = {"grounding": {**overall, "by_type": {k: grounding_accuracy(v) for k, v in sorted(by_type.items())}}}
    rows = [row for values in by_composition.values() for row in values]
    report["grounding"]["outcomes"] = outcome_rates([kind for _, kind in rows])
    report["grounding"]["by_composition"] = {
        pair: {**grounding_accuracy([iou for iou, _ in values]), "outcomes": outcome_rates([k for _, k in values])}
        for pair, values in sorted(by_composition.items())
    }
    report["grounding"]["by_heldout_pair"] = {k: grounding_accuracy(v) for k, v in sorted(by_heldout_pair.items())}
    report["grounding"]["no_target_skipped"] = sum(no_target[info["id"]] for info in images)
    if graded["imagined"].layouts:
        summaries = {name: summary(rows, noise) for name, rows in graded.items()}
        report["layout_to_image"], report["cycle"] = summaries.pop("imagined")
        report["cycle"]["decoder_map"] = decoder_map
        report["controls"] = {name: {"layout_to_image": ap, "cycle": cycle} for name, (ap, cycle) in summaries.items()}
        report["cycle_check"] = cycle_check.report(graded["imagined"].scenes, cycle_threshold)
        report["cycle_check"]["controls_failed"] = {
            name: cycle_check.failed_share(graded[name].scenes, cycle_threshold) for name in summaries
        }
    if fid is not None:
        report["fid"] = fid.compute()
    return report


def goal_layout(info: dict, chosen: list[dict], names: dict[int, str], caption: str, noise: float, seed: int) -> Layout:
    """The layout a scene's objects `chosen` are imagined from, corners jittered by `noise` (`jitter_box`)."""
    objects = [(object_label(a, names), xyxy(a["bbox"])) for a in chosen]
    if noise:
        rng = np.random.default_rng(seed + info["id"])
        objects = [(label, jitter_box(box, noise, info["width"], info["height"], rng)) for label, box in objects]
    return Layout(info["width"], info["height"], tuple(LayoutObject(label, box) for label, box in objects), caption)


def summary(graded: Graded, noise: float) -> tuple[dict, dict]:
    """A row's layout-to-image and cycle figures."""
    ap = {
        **layout_ap(graded.layouts, graded.detections),
        "any_category": layout_ap(graded.layouts, graded.detections, by_category=False),  # placed, any kind
        "images": len(graded.layouts),
    }
    ious = np.array(graded.ious)
    cycle = {"mean_iou": float(ious.mean()), "failure_rate": float(np.mean(ious < FAILURE_IOU)),
             "objects": len(ious), "layout_noise": noise}  # fmt: skip
    return ap, cycle


def jitter_box(box, fraction: float, width: int, height: int, rng: np.random.Generator) -> tuple[float, ...]:
    """Corners moved by N(0, fraction × box size), kept inside the image and at least 2 px wide/high."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    dx1, dy1, dx2, dy2 = rng.normal(0.0, fraction, 4) * (w, h, w, h)
    x1, x2 = sorted((float(np.clip(x1 + dx1, 0, width)), float(np.clip(x2 + dx2, 0, width))))
    y1, y2 = sorted((float(np.clip(y1 + dy1, 0, height)), float(np.clip(y2 + dy2, 0, height))))
    x1, x2 = (x1, x2) if x2 - x1 >= 2 else (min(x1, width - 2.0), min(x1, width - 2.0) + 2.0)
    y1, y2 = (y1, y2) if y2 - y1 >= 2 else (min(y1, height - 2.0), min(y1, height - 2.0) + 2.0)
    return x1, y1, x2, y2
