"""What a training stage is: everything that differs between stages (the objective, which parameters train,
how a step's inputs are drawn and moved to the device, extra modules saved with the checkpoint, FSDP units,
its config checks, what an evaluation measures), behind one interface the loop calls."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from echogen_ros.model import vision_stem
from echogen_ros.model.echogen import EchoGen
from echogen_training import evaluate
from echogen_training.config import ConfigError, TrainConfig
from echogen_training.data.batches import Batcher
from echogen_training.data.records import Record

Metrics = dict[str, float]


def parameter_ids(*modules: nn.Module) -> set[int]:
    return {id(p) for m in modules if m is not None for p in m.parameters()}


def vision_ids(janus) -> set[int]:
    """The vision encoder and its aligner (what the language model reads images through)."""
    return parameter_ids(janus.model.vision_model, janus.model.aligner)


def stem_ids(janus) -> set[int]:
    """The vision stem beside the patch embedding, where the model has one (echogen_ros.model.vision_stem)."""
    return parameter_ids(vision_stem.stem_of(janus))


def language_ids(janus) -> set[int]:
    """The language model: its transformer and the text head (tied to its token embeddings in the tabletop preset)."""
    return parameter_ids(janus.model.language_model, janus.lm_head)


def refuse_vision_only(config: TrainConfig) -> None:
    """model.vision_only is the pmtp stage's (grounding loss alone); every other stage refuses it."""
    if config.model.vision_only:
        raise ConfigError(
            "model.vision_only trains the encoder by the grounding loss alone: use it in the pmtp stage with "
            "pmtp.tasks=[i2l] (the vision stage trains the encoder on its own objective)"
        )


class Stage:
    """The default is a stage that trains the language model (pmtp, djo, cycle_rl); the others override."""

    name = ""
    draws_in_workers = True  # `data.workers` may build its inputs (False: it samples the model to draw them)
    uses_generation = True  # it trains through the generation path (model.generation_only makes sense)

    def __init__(self, config: TrainConfig, echogen: EchoGen, batcher: Batcher) -> None:
        self.config, self.echogen, self.batcher = config, echogen, batcher
        self.model = echogen.model  # the Janus model

    # ---- set-up ------------------------------------------------------------------------------
    @classmethod
    def check(cls, config: TrainConfig) -> None:
        """Raise ConfigError for settings this stage cannot honour (called by `config.load_config`, after the
        checks of each value on its own)."""
        if config.model.generation_only and not cls.uses_generation:
            raise ConfigError(
                f"model.generation_only trains the generation path, which the {cls.name} stage does not use"
            )
        refuse_vision_only(config)

    def sharding_problem(self) -> str | None:
        """Why this stage cannot run under FSDP, or None when it can."""
        return None

    def set_trainable(self) -> None:
        """Mark the parameters this stage trains (requires_grad)."""
        c, janus = self.config.model, self.model
        vq, vision = parameter_ids(janus.model.vqmodel), vision_ids(janus)
        for p in janus.parameters():
            p.requires_grad_(id(p) not in vq and not (c.freeze_vision and id(p) in vision))
        if c.generation_only:
            path = (janus.model.generation_embeddings, janus.model.generation_aligner, janus.model.generation_head)
            generating = parameter_ids(*path)
            for p in janus.parameters():
                p.requires_grad_(id(p) in generating)

    def objective(self) -> nn.Module:
        raise NotImplementedError

    def prepare(self) -> None:
        """Anything made from the initial weights before a checkpoint is loaded (cycle_rl: its reference)."""

    def extra_modules(self, objective: nn.Module) -> dict[str, nn.Module]:
        """Training-only modules saved with each checkpoint (heads, critics, counters)."""
        return {}

    def shard_units(self) -> list[nn.Module]:
        """FSDP units: every transformer layer of the language model and of the vision encoder."""
        janus = self.model.model
        return [*janus.language_model.layers, *janus.vision_model.encoder.layers]

    def model_state(self, objective_state: dict) -> dict:
        """The Janus model's full state dict from the (gathered) objective's: its `model.` entries."""
        return {k[len("model.") :]: v for k, v in objective_state.items() if k.startswith("model.")}

    # ---- inputs --------------------------------------------------------------------------------
    def reseed(self, key: list[int]) -> None:
        """Seed the stage's own per-draw randomness from the draw's key (the batcher's is seeded already)."""

    def cpu_inputs(self, records: list[Record], step: int) -> dict:
        """The CPU side of one draw: a pure function of `records`, `step` and the seeded generators."""
        raise NotImplementedError

    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        """`cpu_inputs` moved to `device`: the keyword arguments of the objective's forward."""
        raise NotImplementedError

    # ---- around the optimizer step and at the end ------------------------------------------------
    def after_step(self, objective: nn.Module, step: int) -> Metrics:
        return {}

    def finish(self, objective: nn.Module, next_inputs: Callable[[], dict]) -> None:
        """At the end of the stage, before the final model is saved."""

    def measure(self, echogen: EchoGen, samples: list) -> Metrics:
        """What an evaluation reports for this stage on held-out world `samples`."""
        return {**evaluate.grounding_and_cycle(echogen, samples), **self.spread(echogen, samples)}

    @staticmethod
    def spread(echogen: EchoGen, samples: list) -> Metrics:
        return {"feature_spread": evaluate.feature_spread(echogen, samples)}
