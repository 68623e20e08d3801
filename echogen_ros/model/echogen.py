"""`EchoGen`: one Janus model that grounds expressions in images and imagines images of layouts."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from tokenizers import Tokenizer
from transformers import JanusForConditionalGeneration
from transformers.utils import logging as hf_logging

from echogen_ros.model import (
    checkpoint,
    drawing,
    finding,
    generation,
    grounding,
    inventory,
    label_listing,
    layout_decoder,
    vision_stem,
)
from echogen_ros.model.confidence import Calibration
from echogen_ros.model.domain import DomainCheck, read_domain_check
from echogen_ros.model.initialisation import structure_positions
from echogen_ros.model.layout import (
    Detection,
    Layout,
    LayoutObject,
    assign_boxes,
    box_iou,
    label_groups,
    rescale_box,
)  # fmt: skip
from echogen_ros.model.letterbox import Letterbox, check_image
from echogen_ros.model.listing import DEFAULT_LISTING, LISTING_METHODS, finish
from echogen_ros.model.pixels import unit_array
from echogen_ros.model.presets import PRESETS, downsampling, janus_config
from echogen_ros.model.scheme import I2L_LAYOUT, IMAGE, PAD, TokenLayout, token_layout
from echogen_ros.model.tokenizer import build_word_tokenizer, encode_text, extend_tokenizer, token_scheme

hf_logging.disable_progress_bar()
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"
NO_DEFAULT = (
    "no embedded default model is installed in this echogen_ros: pass a model directory "
    "(--model DIR or EchoGen.load(DIR)), create a random-weight one with `echogen model-init --out DIR`, "
    "or train one with echogen-train (training/)"
)


@dataclass(frozen=True)
class CycleResult:
    image: np.ndarray  # imagined RGB uint8 (H, W, 3)
    grounded: Layout  # objects grounded back in the imagined image
    ious: list[float]  # per object, in layout order
    mean_iou: float


# (pixels (1|B, 3, S, S) float32, ids (B, T) int64, mask (B, T) int64) → greedy box tokens (B, 4), their
# probabilities (B, 4), refined normalised coordinates (B, 4) and the no-target probability (B,), as numpy
# or tensors: what an exported grounding graph's engine runs in place of torch (echogen_ros.engines wraps a
# model with one)
BoxDecoder = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple]


class EchoGen:
    def __init__(self, model: JanusForConditionalGeneration, tokenizer: Tokenizer, manifest: dict) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.manifest = manifest
        layout = manifest["scheme"].get("i2l_layout", I2L_LAYOUT)
        if layout != I2L_LAYOUT:
            raise checkpoint.CheckpointError(
                f"model was trained with the I2L prompt order {layout!r}; this echogen_ros uses {I2L_LAYOUT!r}"
            )
        scheme = manifest["scheme"]
        # a manifest from before the two grids were separate has no generation_tokens: one grid, as in Janus
        self.scheme = token_scheme(tokenizer, scheme["bins"], scheme["image_tokens"], scheme.get("generation_tokens"))
        grid = math.isqrt(self.scheme.generation_tokens)
        codes = int(manifest["image_size"]) // downsampling(model.config.vq_config.channel_multiplier)
        if grid * grid != self.scheme.generation_tokens or grid != codes:
            raise checkpoint.CheckpointError(
                f"the manifest's {self.scheme.generation_tokens} generation tokens are not the {codes} × {codes} "
                f"codes its VQ writes for {manifest['image_size']} px images"
            )
        generation.set_generation_grid(self.model, grid)
        self.vision_size = int(manifest["vision_size"])
        self.image_size = int(manifest["image_size"])
        self.max_objects = int(manifest.get("max_objects", 12))
        self.guidance = float(manifest.get("guidance", 3.0))
        self.temperature = float(manifest.get("temperature", 1.0))
        try:
            weights = manifest.get("files", {}).get(checkpoint.WEIGHTS)
            self.calibration = Calibration.from_manifest(manifest.get("calibration"), weights)
            self.inventory_calibration = inventory.InventoryCalibration.from_manifest(
                manifest.get(inventory.MANIFEST_KEY), weights
            )
            # `find`'s second look (finding.look) where the calibration was fitted with it, at the bound it records
            below = self.calibration.fitted_on.get("second_look_below") if self.calibration is not None else None
            self.second_look_below: float | None = float(below) if below is not None else None
        except (ValueError, KeyError, TypeError) as exc:
            raise checkpoint.CheckpointError(f"the manifest's calibration is unusable: {exc}") from None
        self.domain: DomainCheck | None = None  # `load` reads the directory's (echogen_ros.model.domain)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, preset: str = "tabletop", seed: int = 0, bins: int | None = None) -> EchoGen:
        """A randomly initialised model of a preset (what training starts from); `bins` overrides the
        preset's number of box-coordinate bins."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        spec = PRESETS[preset] if not bins else replace(PRESETS[preset], bins=bins)
        tokenizer = build_word_tokenizer(spec.bins)
        torch.manual_seed(seed)
        config = janus_config(spec, tokenizer.get_vocab_size(), tokenizer.token_to_id(IMAGE))
        manifest = _manifest(preset, config, spec.bins, spec.max_objects, spec.image_size // spec.vq_downsample)
        echogen = cls(JanusForConditionalGeneration(config), tokenizer, manifest)
        structure_positions(echogen.model, echogen.scheme)
        return echogen

    @classmethod
    def from_janus_pro(cls, directory: str | Path, bins: int = 1000, dtype: torch.dtype | None = None) -> EchoGen:
        """A Janus-Pro checkpoint directory (config.json, safetensors, tokenizer.json) extended with our
        layout tokens, embeddings resized: ready for training."""
        directory = Path(directory)
        tokenizer_file = directory / checkpoint.TOKENIZER
        if not tokenizer_file.is_file():
            raise checkpoint.CheckpointError(f"{directory} has no {checkpoint.TOKENIZER}; is it a Janus-Pro directory?")
        model = JanusForConditionalGeneration.from_pretrained(directory, dtype=dtype or torch.float32)
        tokenizer = extend_tokenizer(Tokenizer.from_file(str(tokenizer_file)), bins)
        model.resize_token_embeddings(tokenizer.get_vocab_size())
        model.config.image_token_id = tokenizer.token_to_id(IMAGE)
        return cls(model, tokenizer, _manifest("janus-pro", model.config, bins, 16))

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu", dtype: torch.dtype | None = None) -> EchoGen:
        """Load a model directory (None: the embedded default), checking its manifest and hashes."""
        directory = Path(path) if path is not None else DEFAULT_MODEL_DIR
        if path is None and not (directory / checkpoint.MANIFEST).is_file():
            raise checkpoint.CheckpointError(NO_DEFAULT)
        manifest = checkpoint.read_manifest(directory)
        dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
        try:
            with checkpoint.quiet_extra_weights(directory / checkpoint.CONFIG):
                model = JanusForConditionalGeneration.from_pretrained(directory, dtype=dtype, use_safetensors=True)
            layout_decoder.load(model, directory / checkpoint.WEIGHTS)
            vision_stem.load(model, directory / checkpoint.WEIGHTS)
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            raise checkpoint.CheckpointError(f"cannot load weights from {directory}: {exc}") from None
        try:
            tokenizer = Tokenizer.from_file(str(directory / checkpoint.TOKENIZER))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for a malformed file
            raise checkpoint.CheckpointError(f"cannot read {checkpoint.TOKENIZER} in {directory}: {exc}") from None
        echogen = cls(model.to(device), tokenizer, manifest)
        echogen.domain = read_domain_check(directory, manifest)
        return echogen

    def save(
        self, path: str | Path, stage: str | None = None, metrics: dict | None = None, state_dict: dict | None = None
    ) -> Path:
        """Write config, safetensors weights, tokenizer.json and the hashed manifest to `path`.
        `state_dict` replaces the live weights (a training run's gathered full state under FSDP)."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory, safe_serialization=True, state_dict=state_dict)
        self.tokenizer.save(str(directory / checkpoint.TOKENIZER))
        manifest = dict(self.manifest)
        manifest["scheme"] = {**manifest["scheme"], "i2l_layout": I2L_LAYOUT}  # what this code trains and runs
        if stage is not None:
            manifest["stage"] = stage
        if metrics is not None:
            manifest["metrics"] = metrics
        manifest.pop("domain", None)  # fitted on the weights it came with: refit with `echogen-train fit-domain`
        manifest.pop("calibration", None)  # the same: calibrate again with `echogen-train calibrate`
        manifest.pop(inventory.MANIFEST_KEY, None)  # and `echogen-train calibrate-inventory`
        self.manifest = checkpoint.write_manifest(directory, manifest)
        return directory

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ---- image → layout ------------------------------------------------------------------------
    def pixels_array(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """Letterboxed, normalised (1, 3, S, S) float32 array of an RGB uint8 image, and its letterbox."""
        check_image(image)
        box = Letterbox(image.shape[1], image.shape[0], self.vision_size)
        frame = unit_array(box.apply(image))
        return np.ascontiguousarray(frame.transpose(2, 0, 1)[None]), box

    def pixels(self, image: np.ndarray) -> tuple[torch.Tensor, Letterbox]:
        """The same as a tensor on the model's device and dtype."""
        array, box = self.pixels_array(image)
        return torch.from_numpy(array).to(self.device, self.dtype), box

    @torch.inference_mode()
    def domain_distance(self, image: np.ndarray) -> float | None:
        """How far `image` lies from the training renders (`DomainCheck.distance`; above `self.domain.threshold`
        it is out of domain), or None for a model without a domain check."""
        if self.domain is None:
            return None
        return self.domain.distance(generation.image_features(self.model, self.pixels(image)[0]))

    def expression_ids(self, expression: str) -> list[int]:
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError("expression is empty")
        ids = encode_text(self.tokenizer, expression.strip())
        if not ids:
            raise ValueError(f"expression {expression!r} has no tokens")
        return ids

    @torch.inference_mode()
    def ground(
        self, image: np.ndarray, expression: str, top_k: int = 1, decode: BoxDecoder | None = None
    ) -> list[Detection]:
        """Up to `top_k` boxes (input-image pixels) for what `expression` names, best first, no two overlapping
        at IoU ≥ 0.5: different objects, not one object read twice (fewer where the model sees fewer).
        `decode` (see `decode_grounding`) serves top_k = 1; more candidates always come from torch's beams."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k == 1:
            return [self.ground_many(image, [expression], decode)[0]]
        pixels, letterbox = self.pixels(image)
        features = generation.image_features(self.model, pixels)
        return finding.candidates(self, features, letterbox, expression, top_k)[0]

    def find(
        self, image: np.ndarray, phrase: str, threshold: float = finding.DEFAULT_THRESHOLD, top_k: int = 1
    ) -> finding.Finding:
        """What a planner may act on (`finding.Finding`): the referent of `phrase` with the probability that the
        box is it, or not found and why (unknown words, a frame out of the training domain, nothing there that
        the phrase names, not sure enough). Boxes below `threshold` are never returned."""
        return finding.find_all(self, image, [phrase], threshold, top_k)[0]

    def find_many(
        self, image: np.ndarray, phrases: list[str], threshold: float = finding.DEFAULT_THRESHOLD
    ) -> list[finding.Finding]:
        """`find` for several phrases in one frame (encoded once)."""
        return finding.find_all(self, image, phrases, threshold)

    def parse_scene(
        self, image: np.ndarray, threshold: float = 0.0, method: str = DEFAULT_LISTING
    ) -> inventory.SceneInventory:
        """Every object in `image` (the scene inventory, `inventory.SceneInventory`): label ("red cup"), box in
        input pixels and score (the probability that it is there, when `calibrated`), top to bottom, then left
        to right; those below `threshold` are left out (0: every one listed). `method` (`listing.LISTING_METHODS`):
        "labels", the grounder asked for every label of the vocabulary (`label_listing`; any model), or
        "sequence", the trained one-pass listing (`inventory`; a model not trained for it raises
        `inventory.InventoryUnsupported`)."""
        return finish(self.scene_steps(image, threshold, method))

    def scene_steps(
        self, image: np.ndarray, threshold: float = 0.0, method: str = DEFAULT_LISTING
    ) -> Generator[None, None, inventory.SceneInventory]:
        """`parse_scene` in steps: a generator that yields between steps (a few labels each, by label; one step
        for the trained listing) and returns the inventory, so that a caller sharing the model can ground
        between them (the node's grounding stream)."""
        if method == "sequence":
            return inventory.parse_scene(self, image, threshold)
        if method != "labels":
            raise ValueError(f"method must be one of {', '.join(LISTING_METHODS)}, got {method!r}")
        return (yield from label_listing.listing_steps(self, image, threshold))

    def ground_layout(self, image: np.ndarray, layout: Layout, decode: BoxDecoder | None = None) -> list[Detection]:
        """Where each of the layout's objects is in `image`, in layout order. A label the layout names once is
        grounded as an expression (all of them in one batch). A label it names n times (two red cups) is
        asked for its n best distinct boxes, matched to those objects by IoU (`assign_boxes`); asking n
        times would answer n times with the same box. An object left without a box of its own (the model
        saw fewer) gets the label's best box. With `decode`, labels named once are grounded by it and
        repeated ones on torch (`ground` with top_k > 1 always runs on torch)."""
        labels = [o.label for o in layout.objects]
        groups = label_groups(labels)
        once = [label for label, where in groups.items() if len(where) == 1]
        by_label = dict(zip(once, self.ground_many(image, once, decode)))
        found: list[Detection | None] = [by_label.get(label) for label in labels]
        for label, where in groups.items():
            if len(where) == 1:
                continue
            candidates = self.ground(image, label, top_k=len(where))
            match = assign_boxes([layout.objects[i].box for i in where], [d.box for d in candidates])
            for i, j in zip(where, match):
                found[i] = candidates[j] if j is not None else candidates[0]  # `ground` gives at least one
        return found  # type: ignore[return-value]  # every slot filled above

    @torch.inference_mode()
    def ground_many(
        self, image: np.ndarray, expressions: list[str], decode: BoxDecoder | None = None
    ) -> list[Detection]:
        """The best box for each expression; the image is encoded once, prompts run as one batch."""
        if not expressions:
            return []
        array, ids, mask, letterbox = self.grounding_inputs(image, expressions)
        tokens, probs, coords, _ = self.decode_grounding(array, ids, mask, decode=decode)
        scores = grounding.raw_scores(probs)
        return [self.detection(letterbox, coords[i].tolist(), float(scores[i]), e) for i, e in enumerate(expressions)]

    def grounding_inputs(
        self, image: np.ndarray, expressions: list[str]
    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, Letterbox]:
        """What grounding runs on: the letterboxed frame (1, 3, S, S), I2L prompts left-padded to one
        length (ids, mask (B, T)), and the letterbox to map boxes back."""
        ids, mask = grounding.prompt_batch(self.scheme, [self.expression_ids(e) for e in expressions])
        array, letterbox = self.pixels_array(image)
        return array, ids, mask, letterbox

    @torch.inference_mode()
    def decode_grounding(
        self,
        array: np.ndarray,
        ids: torch.Tensor,
        mask: torch.Tensor,
        window: int = generation.REFINE_BINS,
        decode: BoxDecoder | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Greedy box tokens, their probabilities and refined coordinates (each (B, 4)) and the no-target
        probability (B,), on the CPU: by `decode` when given (an exported graph's engine, which refines over
        REFINE_BINS), else on torch over `window`."""
        if decode is not None and window != generation.REFINE_BINS:
            raise ValueError(f"an exported graph refines over {generation.REFINE_BINS} bins; use torch for {window}")
        if decode is not None:  # numpy only: no torch thread pool competing with the engine's
            out = decode(array, ids.numpy(), mask.numpy())
            return tuple(torch.from_numpy(np.asarray(v)) for v in out)  # type: ignore[return-value]
        pixels = torch.from_numpy(array).to(self.device, self.dtype)
        features = generation.image_features(self.model, pixels)
        ids, mask = ids.to(self.device), mask.to(self.device)
        features = features.expand(len(ids), -1, -1)
        tokens, probs, coords, absent = grounding.locate(self.model, self.scheme, features, ids, mask, window)
        return tokens.cpu(), probs.cpu(), coords.float().cpu(), absent.float().cpu()

    def detection(self, letterbox: Letterbox, coords: list[float], score: float, label: str) -> Detection:
        """A box from refined normalised coordinates (x1, y1, x2, y2), mapped to input-image pixels."""
        x1, y1, x2, y2 = coords
        half = 0.5 / self.scheme.bins  # a box never collapses below one bin
        (x1, x2), (y1, y2) = (_ordered(x1, x2, half), _ordered(y1, y2, half))
        x1, y1, x2, y2 = letterbox.from_normalised((x1, y1, x2, y2))
        # a box predicted in the letterbox padding is clipped to an image edge: keep it at least 1 px
        (x1, x2), (y1, y2) = _within(x1, x2, letterbox.width), _within(y1, y2, letterbox.height)
        return Detection((x1, y1, x2, y2), score, label)

    # ---- layout → image ------------------------------------------------------------------------
    def imagine(
        self,
        layout: Layout,
        caption: str | None = None,
        seed: int | None = None,
        guidance: float | None = None,
        temperature: float | None = None,
        decoder_map: bool = False,
    ) -> np.ndarray:
        """An RGB uint8 image of the layout, generated at model resolution (letterboxed) and scaled to the
        layout's size, or, for a layout over `max_imagined_side` (echogen_ros.limits), to the same shape with
        that longer side: its memory does not grow with the size a layout declares. The generated tokens
        alone are drawn; `decoder_map`: the layout-reading decoder draws them with the layout (`drawing`)."""
        if decoder_map and not drawing.has_decoder_map(self):
            raise ValueError(drawing.NO_MAP)
        return self.draw(self.imagine_tokens(layout, caption, seed, guidance, temperature), layout, decoder_map)

    def draw(self, tokens: torch.Tensor, layout: Layout, decoder_map: bool = False) -> np.ndarray:
        """Image tokens (1, N) → the picture of `layout` that `imagine` returns (`drawing.draw`)."""
        return drawing.draw(self, tokens, layout, decoder_map)

    def image_codes(self, image: np.ndarray) -> torch.Tensor:
        """The tokens (1, N) that would draw `image` best (its VQ codes, `drawing.codes`)."""
        return drawing.codes(self, image)

    @torch.inference_mode()
    def imagine_tokens(
        self, layout: Layout, caption: str | None = None, seed: int | None = None, guidance: float | None = None,
        temperature: float | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """The image tokens (1, N) the generator writes for the layout (`imagine` draws them)."""
        layout.validate(self.max_objects)
        text = caption if caption is not None else layout.caption
        objects = self.layout_objects(layout)
        cond, uncond = self.scheme.l2i_prompt(encode_text(self.tokenizer, text) if text else [], objects)
        count = self.scheme.generation_tokens
        limit = self.model.config.text_config.max_position_embeddings
        if len(cond) + count > limit:
            raise ValueError(f"layout prompt has {len(cond)} tokens; with {count} image tokens it exceeds {limit}")
        generator = torch.Generator().manual_seed(seed if seed is not None else random.getrandbits(63))
        prompts = (torch.tensor([ids], device=self.device) for ids in (cond, uncond))
        guidance = self.guidance if guidance is None else guidance
        temperature = self.temperature if temperature is None else temperature
        return generation.generate_image_tokens(self.model, *prompts, count, guidance, temperature, generator)

    def layout_objects(self, layout: Layout) -> TokenLayout:
        """A layout as the L2I prompt writes it (`scheme.token_layout`)."""
        objects = ((o.label, o.box) for o in layout.objects)
        return token_layout(self.expression_ids, layout.width, layout.height, self.image_size, objects)

    def cycle(
        self, layout: Layout, seed: int | None = None, caption: str | None = None, decode: BoxDecoder | None = None
    ) -> CycleResult:
        """Imagine the layout, then the cycle check on what was imagined (`check_cycle`)."""
        return self.check_cycle(self.imagine(layout, caption=caption, seed=seed), layout, decode)

    def check_cycle(self, image: np.ndarray, layout: Layout, decode: BoxDecoder | None = None) -> CycleResult:
        """The cycle check: ground every object of `layout` back in `image` (`ground_layout`; two red cups are
        grounded as a pair) and compare each box with its goal (IoU)."""
        height, width = image.shape[:2]
        found = self.ground_layout(image, layout.resized(width, height), decode)  # `imagine` may scale down
        sx, sy = layout.width / width, layout.height / height
        grounded = Layout(
            layout.width,
            layout.height,
            tuple(LayoutObject(o.label, rescale_box(d.box, sx, sy)) for o, d in zip(layout.objects, found)),
            layout.caption,
        )
        ious = [box_iou(o.box, d.box) for o, d in zip(layout.objects, found)]
        return CycleResult(image, grounded, ious, float(np.mean(ious)))


def _ordered(a: float, b: float, half: float) -> tuple[float, float]:
    lo, hi = min(a, b), max(a, b)
    if hi - lo < 2 * half:
        mid = (lo + hi) / 2
        lo, hi = mid - half, mid + half
    return lo, hi


def _within(lo: float, hi: float, limit: int) -> tuple[float, float]:
    if hi - lo >= 1.0:
        return lo, hi
    lo = min(lo, limit - 1.0)
    return lo, lo + 1.0


def _manifest(preset: str, config, bins: int, max_objects: int, generation_grid: int | None = None) -> dict:
    """A new model's manifest; `generation_grid` is the VQ's code grid (None: the vision patch grid, as in
    Janus, where both are `num_patches`)."""
    vision = config.vision_config.image_size // config.vision_config.patch_size
    grid = generation_grid or vision
    scheme = {"bins": bins, "image_tokens": vision * vision, "generation_tokens": grid * grid}
    return {
        "preset": preset,
        "scheme": {**scheme, "pad": PAD, "i2l_layout": I2L_LAYOUT},
        "vision_size": config.vision_config.image_size,
        "image_size": grid * downsampling(config.vq_config.channel_multiplier),
        "max_objects": max_objects,
        "stage": "init",
        "metrics": {},
    }
