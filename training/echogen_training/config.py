"""Training configuration: nested dataclasses, loaded from YAML, unknown keys rejected.

`load_config(path, ["optim.lr=3e-4", "data.batch_size=16"])` applies dotted overrides (YAML-typed) on top
of the file; `to_dict` gives the resolved config that is saved with every checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from echogen_ros.model.checkpoint import PIPELINE_STAGES as STAGES  # the stages, in pipeline order, written once
from echogen_ros.world.catalog import SPLITS


@dataclass
class ModelConfig:
    init: str = "tabletop"  # a preset name (random init), an EchoGen model directory, or "janus-pro:<dir>"
    bins: int = 0  # box-coordinate bins; 0 = the preset's (tabletop 128), 1000 for Janus-Pro
    dtype: str = "float32"  # parameter dtype; autocast below decides compute precision
    freeze_vision: bool = False  # pmtp/djo/cycle_rl: keep the vision encoder + aligner fixed (a pre-trained tower)
    image_positions: bool = False  # give image-token inputs their cell's coordinate-bin embeddings (generation.py)
    layout_map: bool = False  # give image-token inputs the labels of the layout boxes covering their cell
    # give the VQ decoder the layout's labels at every scale (echogen_ros/model/layout_decoder.py; off in Janus)
    decoder_map: bool = False
    # pmtp/djo/cycle_rl: train only the generation path (code embeddings, their aligner, the generation head),
    # everything else fixed: how a transplanted tokenizer's new codes are learned before the rest is unfrozen
    generation_only: bool = False
    # pmtp with pmtp.tasks=[i2l]: train only the vision encoder and its aligner by the grounding loss, the
    # language model and the generation path fixed: grounding learns while imagined scenes stay bit-identical
    vision_only: bool = False


@dataclass
class DataConfig:
    source: str = "world"  # world | folder | coco | refcoco
    path: str = ""  # folder (echogen world export), COCO annotations dir, or RefCOCO dir
    image_dir: str = ""  # COCO/RefCOCO images (default: <path>/images)
    seed: int = 0
    split: str = "train"
    count: int = 0  # world scenes in the split; 0 = infinite stream
    min_objects: int = 2
    max_objects: int = 8
    batch_size: int = 16
    render_scales: tuple[float, ...] = (0.5, 0.75, 1.0)  # world frames rendered at these × 640×480
    scale_range: tuple[float, float] = (1.0, 1.0)  # world objects' sizes × a uniform draw (SceneConfig.scale_range)
    border_cut: float = 0.0  # how far world objects may stand past the border (SceneConfig.border_cut)
    workers: int = 0  # > 0: processes that build input batches ahead of the step (0: in the training process)
    prefetch: int = 4  # batches each worker keeps ready


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    max_steps: int = 1000
    grad_accum: int = 1
    grad_clip: float = 1.0
    min_lr_ratio: float = 0.1
    # the language model's learning rate (its transformer, text embeddings and head) as this × lr; the vision
    # encoder, the generation path and the objective's own heads keep lr. Below 1 a continuation trains the
    # encoder at full rate and the language model slower (at 0.25 × it still lost held-out compositions as at
    # 1 ×: docs/benchmarks.md, 2026-12-07 session 17)
    language_lr_scale: float = 1.0
    # a vision stem's learning rate (echogen_ros.model.vision_stem, added by grow-vision --stem) as this × lr: it
    # starts at zero, and at lr 1e-4 it had reached 0.4 % of the patch embedding's size after 500 steps (session 18)
    stem_lr_scale: float = 1.0


@dataclass
class VQConfig:
    reconstruction: str = "l1"  # l1 | mse
    detail_weight: float = 0.0  # > 0: weight pixels by local contrast (small objects are not lost to background)
    codebook_weight: float = 1.0
    # > 0: add the gradient-difference (edge) loss: |∂recon − ∂frame| over neighbouring pixels, so softened
    # edges (rounded corners, lost handles) cost what they cost a shape detector, not a few pixels' L1
    edge_weight: float = 0.0
    adversarial_weight: float = 0.0  # > 0 enables the patch discriminator (hinge loss)
    adversarial_start: int = 500
    restart_every: int = 0  # > 0: re-seed codes unused for this many steps with batch latents (0: off)
    # train only the decoder (post_quant_conv + decoder): the encoder and codebook stay fixed, so the codes,
    # and a generator already trained on them, stay valid while the token → pixel mapping improves
    decoder_only: bool = False


@dataclass
class VisionConfig:
    """Dense pre-training of a from-scratch vision encoder + aligner (the role SigLIP's pre-training plays
    for Janus-Pro): every patch predicts the label words and box of the object centred in it."""

    word_weight: float = 1.0
    box_weight: float = 5.0
    # probability that a frame is shown in grey (luminance), its colour words dropped from the targets: the
    # encoder must tell categories apart by shape, not by the colours they were seen in (held-out pairs)
    decolour: float = 0.0
    # probability that a frame's hues are turned by a random angle (30..330°), its colour words dropped from
    # the targets: every category is shown in every hue, unnamed (colour jitter, as detectors train with)
    recolour: float = 0.0


# layout → image, image → box of an expression, image → every object (the scene inventory; a model trained
# with it records the capability in its manifest: echogen_ros.model.inventory)
PMTP_TASKS = ("l2i", "i2l", "inventory")


@dataclass
class PMTPConfig:
    l2i_weight: float = 1.0
    i2l_weight: float = 1.0
    condition_dropout: float = 0.1  # replace the L2I condition by <pad> (classifier-free guidance)
    # of PMTP_TASKS; ablations: ("i2l",) grounding-only, ("l2i",) generation-only
    tasks: tuple[str, ...] = ("l2i", "i2l")
    inventory_weight: float = 1.0  # the inventory task's (every object of a frame listed: scheme.inventory_prompt)
    pointer_weight: float = 0.0  # > 0: auxiliary pointer loss (which image token holds the referred object)
    # > 0: auxiliary category loss on the grounding frames' image features: a linear head on each patch that holds
    # an object's centre names its world category (`forward.category_loss`). The grounding loss alone leaves small
    # objects' categories out of the features the language model reads (docs/benchmarks.md, 2026-12-07)
    category_weight: float = 0.0
    schedule: str = "parallel"  # parallel: both tasks every step (PMTP); alternate: one task per step (naive joint)
    # probability that an I2L frame whose expression names no colour has its hues turned by a random angle
    # (30..330°): the referent is unchanged, so grounding learns every category in every hue
    recolour: float = 0.0
    # probability (drawn with recolour's: together at most 1) that such a frame is faded instead: saturation
    # scaled by a random 0..0.2, brightness kept. Turning hues never makes a colour pale, so without this
    # bright objects (yellow, orange) are never seen whitish: a white bowl is a bowl no grounding frame showed
    desaturate: float = 0.0
    # probability that a grounding frame (any expression) is shown as the image tokenizer writes it: scaled to
    # the generation size, sent through the VQ (nearest codes, decoded) and scaled back up. Imagined scenes
    # reach the grounder that way (the cycle check, goal verification); real frames never do otherwise
    tokenized: float = 0.0
    # probability that a grounding row asks for one of its frame's no-target expressions ("the ball" on a
    # table without one), whose answer is the empty box (`scheme.NO_TARGET`); 0 draws what runs drew before
    no_target: float = 0.0
    # probability that such a no-target row asks for the frame's relation no object satisfies ("the cup left of
    # the plate" when every cup is right of it), when it has one; otherwise its kinds are drawn alike. Those are
    # the no-target expressions the model missed most (docs/benchmarks.md, 2026-12-06); 0 draws as before
    no_target_relation: float = 0.0


@dataclass
class DJOConfig:
    grounding_weight: float = 0.5
    l2i_weight: float = 1.0
    i2l_weight: float = 1.0
    tau_start: float = 1.0
    tau_end: float = 0.3
    tau_schedule: str = "cosine"  # cosine | linear | exponential
    hard: bool = True  # straight-through Gumbel-softmax
    # free_running: the generator draws the image tokens itself, each step's straight-through Gumbel sample its
    # next input (the paper's DJO); teacher_forced: the logits of the real frame's tokens (the ablation)
    mode: str = "free_running"
    # classifier-free guidance of the drawn tokens, u + g·(c − u) as inference samples; 1: the conditional
    # logits alone (no unconditional pass)
    guidance: float = 1.0


@dataclass
class CycleRLConfig:
    group_size: int = 4
    layouts_per_step: int = 4
    layout_source: str = "world"  # world | random | data
    clip: float = 0.2
    kl_beta: float = 0.04
    l1_weight: float = 0.5  # λ in reward = mean IoU − λ·L1
    guidance: float = 3.0
    temperature: float = 1.0
    i2l_weight: float = 0.0  # optional supervised grounding loss kept during RL
    epochs: int = 2  # optimiser steps on each sampled group (old log-probs frozen at sampling; 1: one step)
    guided_logprobs: bool = True  # log-probs of the guided, tempered distribution sampled (false: conditional)


@dataclass
class EvalConfig:
    every: int = 200
    scenes: int = 50
    split: str = "test"  # not heldout: a periodic evaluation is looked at to decide, which spends a held-out set
    seed: int = 1000


@dataclass
class RunConfig:
    out: str = "runs/echogen"
    seed: int = 0
    autocast: str = "bf16"  # bf16 | fp16 | none
    distributed: str = "ddp"  # ddp | fsdp (used under torchrun)
    save_every: int = 200
    keep_every: int = 0  # > 0: checkpoints at multiples of this step are kept; otherwise only the last two are
    log_every: int = 10
    progress: bool = True
    stop_after: int = 0  # stop (with a checkpoint) after this many steps in this invocation; 0 = run to the end
    time_budget_s: float = 0.0  # > 0: fit optim.max_steps (a cap) to this wall time (per invocation; the fit
    # is made after warm-up, made again at a quarter and half of the budget, and kept on resume); stop at it


@dataclass
class TrainConfig:
    stage: str = "pmtp"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    vq: VQConfig = field(default_factory=VQConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    pmtp: PMTPConfig = field(default_factory=PMTPConfig)
    djo: DJOConfig = field(default_factory=DJOConfig)
    cycle_rl: CycleRLConfig = field(default_factory=CycleRLConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)


class ConfigError(ValueError):
    """A config file or override that cannot be applied."""


def _build(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where or 'config'}; known: {', '.join(sorted(names))}"
        )
    values = {}
    for name, value in data.items():
        kind = hints[name]
        path = f"{where}.{name}" if where else name
        values[name] = _build(kind, value, path) if dataclasses.is_dataclass(kind) else _coerce(kind, value, path)
    return cls(**values)


def _coerce(kind, value, path: str):
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        args = typing.get_args(kind)
        inner = args[0]
        return tuple(_coerce(inner, v, path) for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{path} must be float, got {value!r}") from None
    if kind in (int, float, str, bool) and not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{path} must be {kind.__name__}, got {value!r}")
    return value


def _set(data: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] = (), stage: str | None = None) -> TrainConfig:
    """Read YAML (or start from defaults), apply `key.sub=value` overrides, validate."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        _set(data, key.strip(), yaml.safe_load(raw))
    if stage is not None:
        data["stage"] = stage
    config = _build(TrainConfig, data, "")
    if config.stage not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    for section in (f.name for f in dataclasses.fields(config) if dataclasses.is_dataclass(getattr(config, f.name))):
        for key, value in dataclasses.asdict(getattr(config, section)).items():
            if key.endswith("_weight") and value < 0:
                raise ConfigError(f"{section}.{key} is a loss weight: it must be >= 0, got {value}")
    if min(config.run.save_every, config.run.log_every) < 1 or config.run.keep_every < 0:
        raise ConfigError("run.save_every and run.log_every must be >= 1, run.keep_every >= 0 (0: off)")
    if config.vq.decoder_only and config.vq.restart_every > 0:
        raise ConfigError("vq.decoder_only keeps the codebook fixed: set vq.restart_every=0")
    if config.data.workers < 0 or config.data.prefetch < 1:
        raise ConfigError(f"data.workers must be ≥ 0 and data.prefetch ≥ 1, got {config.data.workers}, "
                          f"{config.data.prefetch}")  # fmt: skip
    for name, most in (("language_lr_scale", 10), ("stem_lr_scale", 100)):
        if not 0 < (scale := getattr(config.optim, name)) <= most:
            raise ConfigError(f"optim.{name} must be in (0, {most}], got {scale}")
    if config.run.time_budget_s < 0:
        raise ConfigError(f"run.time_budget_s must be ≥ 0 (0: no budget), got {config.run.time_budget_s}")
    chances = ("recolour", "desaturate", "tokenized", "no_target", "no_target_relation")
    for section, names in (("vision", ("decolour", "recolour")), ("pmtp", chances)):
        for name in names:
            if not 0 <= (chance := getattr(getattr(config, section), name)) <= 1:
                raise ConfigError(f"{section}.{name} must be a probability in [0, 1], got {chance}")
    if config.pmtp.recolour + config.pmtp.desaturate > 1:
        raise ConfigError("pmtp.recolour + pmtp.desaturate must be at most 1 (a frame gets one of them)")
    if config.vision.decolour + config.vision.recolour > 1:
        raise ConfigError("vision.decolour + vision.recolour must be at most 1 (a frame gets one of them)")
    if config.eval.split not in SPLITS:
        raise ConfigError(f"eval.split must be one of {', '.join(SPLITS)}, got {config.eval.split!r}")
    if config.pmtp.schedule not in ("parallel", "alternate"):
        raise ConfigError(f"pmtp.schedule must be parallel or alternate, got {config.pmtp.schedule!r}")
    from echogen_training.stages import stage_type  # the stages import this module's types

    stage_type(config.stage).check(config)  # what the stage cannot honour
    return config


def to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)
