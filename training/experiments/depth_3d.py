"""Issue 36: how far from the truth are the 3D boxes the runtime measures from depth, and do goal poses satisfy
the commanded relation in 3D? On an `echogen world` export (its depth/ PNGs, each image's camera and each
annotation's box3d: the export's contract, read as a user would):

- referents: every expression with a referent, its box either the truth's or the model's (`EchoGen.find`,
  found ones; right ones, IoU >= 0.5, apart too) → `runtime.space.measure` on the 16-bit depth →
  camera_to_table → centre error to box3d (table frame); control: the same box placed at the table's depth
  (what 2D boxes and a table plane give without depth), which must be worse;
- goal poses: every put instruction, goal box from the planner's `place_goal` on the truth boxes, the target's
  height measured from depth, `runtime.space.surface_point` → table frame; the target's 3D footprint there
  against its anchors' box3d, seen from above, must satisfy the relation (`domain.camera.relation_in_space`,
  scale the table's extent in view); control: the target where it stands now.

    echogen world --split heldout --seed 7 --count 100 --out /tmp/heldout3d
    PYTHONPATH=training .venv/bin/python -m experiments.depth_3d /tmp/heldout3d [--no-model]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from echogen_ros.domain.camera import Box3D, Pinhole, relation_in_space
from echogen_ros.domain.relations import Truth
from echogen_ros.model.layout import box_iou
from echogen_ros.planning.commands import PlanningError
from echogen_ros.planning.goal import place_goal
from echogen_ros.runtime.space import DepthRange, measure, surface_point
from echogen_ros.world.dataset import has_target


def _xyxy(bbox: list[float]) -> tuple[float, float, float, float]:
    x, y, w, h = bbox
    return (x, y, x + w, y + h)


def _stats(errors: list[float]) -> dict:
    if not errors:
        return {"count": 0}
    e = np.asarray(errors) * 100
    return {"count": len(errors), "median_cm": round(float(np.median(e)), 3),
            "p95_cm": round(float(np.percentile(e, 95)), 3), "max_cm": round(float(e.max()), 3)}  # fmt: skip


class Scene:
    def __init__(self, root: Path, info: dict, annotations: list[dict]) -> None:
        self.info, self.annotations = info, {a["id"]: a for a in annotations}
        camera = info["camera"]
        self.camera = Pinhole.from_k(camera["K"], info["width"], info["height"])
        self.to_table = np.asarray(camera["camera_to_table"])
        units = cv2.imread(str(root / "depth" / info["file_name"]), cv2.IMREAD_UNCHANGED)
        self.depth = units.astype(np.float32) * camera["depth_scale"]
        self.depth[units == 0] = np.nan
        self.table_depth = float(self.to_table[2, 3])

    def truth(self, ann_id: int) -> tuple[np.ndarray, np.ndarray]:
        b = self.annotations[ann_id]["box3d"]
        return np.asarray(b["center"]), np.asarray(b["size"])

    def error(self, box: tuple, ann_id: int, control: bool = False) -> float | None:
        if control:  # the 2D box on the table plane: no depth
            placed = self.camera.box_at_depth(box, self.table_depth, self.table_depth)
        else:
            placed = measure(box, self.depth, self.camera, DepthRange()).box
        if placed is None:
            return None
        center = np.asarray(placed.transformed(self.to_table, "table").center)
        return float(np.linalg.norm(center - self.truth(ann_id)[0]))

    def goal(self, instruction: dict) -> tuple[Truth, Truth, bool] | None:
        """(the relation at the goal pose, the relation where the target stands now, whether the pose is on the
        surface it should stand on: the table, or the anchor's top for "on"), in 3D; None: no goal."""
        target = _xyxy(self.annotations[instruction["target_ann_id"]]["bbox"])
        anchors = [_xyxy(self.annotations[a]["bbox"]) for a in instruction["anchor_ann_ids"]]
        others = [_xyxy(a["bbox"]) for k, a in self.annotations.items()
                  if k != instruction["target_ann_id"] and k not in instruction["anchor_ann_ids"]]  # fmt: skip
        try:
            size = (self.camera.width, self.camera.height)
            goal_box = place_goal(instruction["relation"], target, anchors, others, *size)
        except PlanningError:
            return None
        standing = measure(target, self.depth, self.camera, DepthRange()).box
        if standing is None:
            return None
        point, _ = surface_point(goal_box, standing.size[2], self.depth, self.camera, DepthRange(), target)
        if point is None:
            return None
        at_goal = (self.to_table @ np.append(point, 1.0))[:3]
        now = Box3D(*self.truth(instruction["target_ann_id"]))
        anchor_boxes = [Box3D(*self.truth(a)) for a in instruction["anchor_ann_ids"]]
        scale = self.camera.height * self.table_depth / self.camera.fy  # the table's extent in view, metres
        under = anchor_boxes[0].center[2] + anchor_boxes[0].size[2] / 2 if instruction["relation"] == "on" else 0.0
        at, was = (relation_in_space(instruction["relation"], box, anchor_boxes, scale)
                   for box in (now.standing_at(at_goal), now))  # fmt: skip
        return at, was, abs(at_goal[2] - under) <= 0.002


def run(root: Path, use_model: bool, limit: int) -> dict:
    data = json.loads((root / "annotations.json").read_text())
    by_image: dict[int, list] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    model = None
    if use_model:
        from echogen_ros.model.echogen import EchoGen

        model = EchoGen.load()
    errors = {"truth": [], "truth_control": [], "model_found": [], "model_right": [], "model_control": []}
    unplaced = {"truth": 0, "model": 0}
    goals = {"at_goal": [], "now": [], "on_surface": [], "no_goal": 0, "fails": []}
    images = data["images"][:limit] if limit else data["images"]
    scenes = {info["id"]: Scene(root, info, by_image[info["id"]]) for info in images}
    for ref in data["refs"]:
        scene = scenes.get(ref["image_id"])
        if scene is None or not has_target(ref):
            continue
        truth_box = _xyxy(scene.annotations[ref["ann_id"]]["bbox"])
        for key, control in (("truth", False), ("truth_control", True)):
            e = scene.error(truth_box, ref["ann_id"], control)
            if e is None:
                unplaced["truth"] += 1
            else:
                errors[key].append(e)
        if model is not None:
            rgb = cv2.cvtColor(cv2.imread(str(root / "images" / scene.info["file_name"])), cv2.COLOR_BGR2RGB)
            found = model.find(rgb, ref["sentences"][0]["sent"])
            if found.found:
                box = found.detections[0].box
                e = scene.error(box, ref["ann_id"])
                if e is None:
                    unplaced["model"] += 1
                else:
                    errors["model_found"].append(e)
                    if box_iou(box, truth_box) >= 0.5:
                        errors["model_right"].append(e)
                errors["model_control"].append(scene.error(box, ref["ann_id"], control=True))
    for ins in data["instructions"]:
        scene = scenes.get(ins["image_id"])
        if scene is None or ins["action"] != "put":
            continue
        outcome = scene.goal(ins)
        if outcome is None:
            goals["no_goal"] += 1
            continue
        goals["at_goal"].append(outcome[0] == Truth.TRUE)
        goals["now"].append(outcome[1] == Truth.TRUE)
        goals["on_surface"].append(outcome[2])
        if outcome[0] != Truth.TRUE or not outcome[2]:
            goals["fails"].append(f"image {ins['image_id']}: {ins['instruction']}")
    return {
        "scenes": len(scenes),
        "centre_error": {k: _stats(v) for k, v in errors.items()},
        "no_3d_box": unplaced,
        "goal_poses": {"count": len(goals["at_goal"]), "relation_holds": round(float(np.mean(goals["at_goal"])), 4),
                       "control_target_where_it_stands": round(float(np.mean(goals["now"])), 4),
                       "on_its_surface": round(float(np.mean(goals["on_surface"])), 4),
                       "no_goal": goals["no_goal"], "fails": goals["fails"]},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--no-model", action="store_true", help="truth boxes only")
    parser.add_argument("--limit", type=int, default=0, help="first N scenes (0: all)")
    args = parser.parse_args()
    print(json.dumps(run(args.export, not args.no_model, args.limit), indent=1))


if __name__ == "__main__":
    main()
