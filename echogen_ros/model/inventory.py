"""The scene inventory: every object of a frame as (label, box, probability), from one greedy pass of the same
model (the inventory prompt of `scheme`: I2L without an expression).

Decoding is greedy, held to the inventory's grammar, on the KV cache: after the image and after each object,
`<ref>` (one more object) or `<eos>` (no more); a label is words, then `</ref>` (at most MAX_LABEL_TOKENS
words); `<box>`, four bins and `</box>` follow, the tokens nothing chooses fed with the one before them.

Each object's signals (`ObjectSignals`): `listed`, the probability of its `<ref>` (that there is one more
object); `label`, the geometric mean of its label tokens' probabilities (words and `</ref>`); `box`, that of
its four bins. Its raw score is their product. A model whose manifest holds an inventory calibration (fitted
on val by `echogen-train calibrate-inventory`) reports instead the probability that a true object of that
label overlaps the box at IoU ≥ 0.5.

Only a model trained for it lists scenes: a training run with the `inventory` task records the capability in
the manifest (`capabilities`); `parse_scene` refuses a model without it (`InventoryUnsupported`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import DynamicCache

from echogen_ros.model import generation
from echogen_ros.model.confidence import Calibration, logit
from echogen_ros.model.finding import outside_domain
from echogen_ros.model.layout import Detection
from echogen_ros.model.scheme import BOX, BOX_END, EOS, REF, REF_END

CAPABILITY = "inventory"  # in a manifest's "capabilities" once a training run included the task
MAX_LABEL_TOKENS = 6  # words of one label ("the dark red cup" is 4); then `</ref>` is forced
MANIFEST_KEY = "inventory_calibration"


class InventoryUnsupported(ValueError):
    """The model was not trained to list scenes."""


@dataclass(frozen=True)
class ObjectSignals:
    listed: float  # P(<ref>): that there is one more object
    label: float  # geometric mean of the label tokens' probabilities (words and </ref>)
    box: float  # geometric mean of the four bins' probabilities

    @property
    def score(self) -> float:
        return self.listed * self.label * self.box


class InventoryCalibration(Calibration):
    """P(a true object of the label overlaps the box at IoU ≥ 0.5) from an object's `ObjectSignals`."""

    SIGNALS = ("listed", "label", "box")
    FEATURES = ("logit_listed", "logit_label", "logit_box", "bias")
    TOOL = "calibrate-inventory"

    @staticmethod
    def inputs(signals: ObjectSignals) -> list[float]:
        return [logit(signals.listed), logit(signals.label), logit(signals.box), 1.0]


@dataclass(frozen=True)
class SceneInventory:
    """What `EchoGen.parse_scene` lists: the objects (top to bottom, then left to right) and how to read them."""

    objects: tuple[Detection, ...]  # label "red cup", box in input pixels, score: the probability when calibrated
    out_of_domain: bool = False  # the frame is unlike the training scenes: nothing is listed (see reason)
    calibrated: bool = False  # scores are calibrated probabilities (else the raw score, `ObjectSignals.score`)
    reason: str = ""  # why nothing is listed ("" when something is)
    latency_ms: float = 0.0
    signals: tuple[ObjectSignals, ...] = field(default=(), repr=False, compare=False)  # per object

    def to_json(self) -> dict:
        return {
            "objects": [{"label": d.label, **{k: v for k, v in d.to_json().items() if k != "label"}}
                        for d in self.objects],
            "out_of_domain": self.out_of_domain,
            "calibrated": self.calibrated,
            "reason": self.reason,
            "latency_ms": round(self.latency_ms, 2),
        }  # fmt: skip


def capable(manifest: dict) -> bool:
    return CAPABILITY in manifest.get("capabilities", [])


def with_capability(manifest: dict) -> dict:
    """`manifest` recording that its model was trained to list scenes."""
    return {**manifest, "capabilities": sorted({*manifest.get("capabilities", []), CAPABILITY})}


def require(manifest: dict) -> None:
    if not capable(manifest):
        raise InventoryUnsupported(
            "this model was not trained to list a scene (its manifest has no 'inventory' capability): train it "
            "with the pmtp task inventory (training/echogen_training/configs/tabletop_inventory.yaml)"
        )


@dataclass(frozen=True)
class Listed:
    """One object as decoded: label ids, normalised coordinates (refined, `generation.refine`), signals."""

    label: list[int]
    coords: list[float]
    signals: ObjectSignals


@torch.inference_mode()
def parse_scene(model, image: np.ndarray, threshold: float = 0.0) -> SceneInventory:
    """Every object `model` (an EchoGen) lists in `image` (RGB uint8), at or above `threshold` (0: all)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
    require(model.manifest)
    start = time.perf_counter()
    pixels, letterbox = model.pixels(image)
    features = generation.image_features(model.model, pixels)
    calibration = model.inventory_calibration
    calibrated = calibration is not None
    if why := outside_domain(model, features):
        return SceneInventory((), True, calibrated, why, (time.perf_counter() - start) * 1000)
    listed = read_objects(model, features)
    kept, signals = [], []
    for item in listed:
        score = calibration.probability(item.signals) if calibrated else item.signals.score
        if score >= threshold:
            label = model.tokenizer.decode(item.label, skip_special_tokens=True).strip()
            kept.append(model.detection(letterbox, item.coords, score, label))
            signals.append(item.signals)
    reason = ""
    if not kept:
        reason = f"every object listed is below the threshold {threshold:g}" if listed else "the model lists nothing"
    latency = (time.perf_counter() - start) * 1000
    return SceneInventory(tuple(kept), False, calibrated, reason, latency, tuple(signals))


def read_objects(model, features: torch.Tensor) -> list[Listed]:
    """The objects an EchoGen lists in image `features` (1, N, D), greedily, at most its `max_objects`."""
    janus, scheme = model.model, model.scheme
    prompt = torch.tensor([scheme.inventory_prompt()], device=features.device)
    return decode_inventory(janus, scheme, generation.embed(janus, prompt, features), model.max_objects)


def decode_inventory(janus, scheme, embeds: torch.Tensor, max_objects: int) -> list[Listed]:
    """Greedy decoding of an inventory after prompt `embeds` (1, T, D), held to its grammar (module doc)."""
    s, cache = scheme.special, DynamicCache(config=janus.config.text_config)
    limit = janus.config.text_config.max_position_embeddings
    words = _word_mask(scheme, janus.lm_head.out_features, embeds.device)
    length = embeds.shape[1]

    def feed(*tokens: int) -> torch.Tensor:  # the next token's probabilities (V,) under the full softmax
        nonlocal length
        length += len(tokens)
        ids = torch.tensor([tokens], device=embeds.device)
        return _probs(janus, generation.hidden_states(janus, janus.get_input_embeddings()(ids), cache=cache))

    probs = _probs(janus, generation.hidden_states(janus, embeds, cache=cache))
    objects: list[Listed] = []
    # one object is at most <ref>, the label, </ref> <box>, 4 bins, </box>
    while len(objects) < max_objects and length + MAX_LABEL_TOKENS + 8 <= limit and probs[s[REF]] > probs[s[EOS]]:
        listed = float(probs[s[REF]])
        label, label_probs = [], []
        probs = feed(s[REF])
        while True:
            allowed = words.clone() if len(label) < MAX_LABEL_TOKENS else torch.zeros_like(words)
            allowed[s[REF_END]] = bool(label)
            token = int(probs.masked_fill(~allowed, -1.0).argmax())
            label_probs.append(float(probs[token]))
            if token == s[REF_END]:
                break
            label.append(token)
            probs = feed(token)
        probs = feed(s[REF_END], s[BOX])
        bins, coords, box_probs = [], [], []
        for step in range(4):
            p = probs[scheme.bin_offset : scheme.bin_offset + scheme.bins]
            best = p.argmax()
            bins.append(scheme.bin_offset + int(best))
            box_probs.append(float(p[best]))
            coords.append(float(generation.refine(p[None], best[None])[0]))
            probs = feed(bins[-1]) if step < 3 else feed(bins[-1], s[BOX_END])
        objects.append(Listed(label, coords, ObjectSignals(listed, _mean(label_probs), _mean(box_probs))))
    return objects


def _probs(janus, hidden: torch.Tensor) -> torch.Tensor:
    return janus.lm_head(hidden[0, -1]).float().softmax(-1)


def _mean(probs: list[float]) -> float:
    """Geometric mean."""
    return math.exp(sum(math.log(max(p, 1e-30)) for p in probs) / len(probs))


def _word_mask(scheme, vocab: int, device: torch.device) -> torch.Tensor:
    """(V,) bool: the tokens a label may hold (neither special nor a bin)."""
    mask = torch.ones(vocab, dtype=torch.bool, device=device)
    mask[list(scheme.special.values())] = False
    mask[scheme.bin_offset : scheme.bin_offset + scheme.bins] = False
    return mask
