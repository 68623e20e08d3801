"""The DJO stage (differentiable joint optimisation): generate and ground in one differentiable pass, so the
grounding loss reaches the generator.

The generator draws the image free-running (`djo.mode=free_running`, the paper's): at each of the N image-token
steps a straight-through Gumbel-softmax sample of its own logits (a one-hot in value, the softmax's gradient) is
the next step's input, so the grounding loss reaches every step's logits through the samples after it. The
ablation (`teacher_forced`) samples each position from the logits of the real frame's tokens: one parallel
pass, a resample of the real frame. Either way the VQ decoder draws the codes alone (never a decoder map's
layout) and classifier-free guidance is `djo.guidance` (1: the conditional logits, no unconditional pass)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import vq
from echogen_ros.model.generation import draw_image_tokens, guided_logits, image_features
from echogen_training.config import ConfigError, DJOConfig, TrainConfig
from echogen_training.data.batches import I2LBatch, L2IBatch, Sequences
from echogen_training.data.device import batch_to, seq_to
from echogen_training.forward import i2l_loss, l2i_logits, l2i_loss
from echogen_training.stages.base import Metrics, Stage

DJO_MODES = ("free_running", "teacher_forced")


def gumbel_tau(step: int, total: int, config: DJOConfig) -> float:
    """Gumbel-softmax temperature annealed from tau_start to tau_end over `total` steps."""
    t = min(max(step / max(total, 1), 0.0), 1.0)
    a, b = config.tau_start, config.tau_end
    if config.tau_schedule == "linear":
        return a + (b - a) * t
    if config.tau_schedule == "exponential":
        return a * (b / a) ** t
    if config.tau_schedule == "cosine":
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown tau_schedule {config.tau_schedule!r}; use cosine, linear or exponential")


class DJOObjective(nn.Module):
    """Generate and ground in one differentiable pass: Gumbel-softmax over image-token logits → soft
    codebook mix → VQ decoder → vision encoder → grounding loss back into the generator."""

    def __init__(self, model: JanusForConditionalGeneration, config: DJOConfig, batcher) -> None:
        super().__init__()
        self.model, self.config, self.batcher = model, config, batcher

    def forward(
        self, l2i: L2IBatch, i2l: I2LBatch | None, tau: float, uncond: Sequences | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        """`uncond`: the unconditional prompts of `l2i`'s rows, for guidance (None: the conditional logits)."""
        model = self.model
        generated, logits, tokens = self.imagine(l2i, uncond, tau)
        l2i_ce, l2i_acc = l2i_loss(logits, tokens)
        features = image_features(model, generated.to(model.dtype))
        rows = [(ids, box) for objects in l2i.layouts for ids, box in objects]
        index = [i for i, objects in enumerate(l2i.layouts) for _ in objects]
        grounding = self.batcher.i2l_rows(rows, generated, index)
        ground_ce, ground_acc = i2l_loss(model, batch_to(grounding, tokens.device), features)
        c = self.config
        loss = c.l2i_weight * l2i_ce + c.grounding_weight * ground_ce
        metrics = {"l2i_ce": l2i_ce.item(), "l2i_acc": l2i_acc.item(), "djo_ground_ce": ground_ce.item(),
                   "djo_ground_acc": ground_acc.item(), "tau": tau}  # fmt: skip
        if i2l is not None and c.i2l_weight > 0:
            i2l_ce, i2l_acc = i2l_loss(model, i2l)
            loss = loss + c.i2l_weight * i2l_ce
            metrics.update(i2l_ce=i2l_ce.item(), i2l_acc=i2l_acc.item())
        return loss, metrics

    def imagine(
        self, l2i: L2IBatch, uncond: Sequences | None, tau: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The images the generator draws for `l2i`'s layouts (B, 3, Sv, Sv) in [-1, 1] at the vision size,
        differentiably, and the teacher-forced logits (B, N, V) of the real frames' tokens (B, N) (the L2I loss's)."""
        vqmodel = self.model.model.vqmodel
        tokens = vq.encode_tokens(vqmodel, l2i.gen_pixels)
        logits = l2i_logits(self.model, l2i.seq, tokens)
        soft = self.draw(l2i.seq, uncond, logits, tokens, tau)  # (B, N, V)
        # drawn from the codes alone: the grounding loss grades what the generator drew, never what a
        # layout-reading decoder (`model.decoder_map`) adds from the layout
        generated = vq.soft_decode(vqmodel, soft).clamp(-1, 1)
        size = self.model.config.vision_config.image_size
        return F.interpolate(generated, size=(size, size), mode="bilinear", align_corners=False), logits, tokens

    def draw(
        self, prompts: Sequences, uncond: Sequences | None, logits: torch.Tensor, tokens: torch.Tensor, tau: float
    ) -> torch.Tensor:
        """The generated image's tokens (B, N, V): straight-through Gumbel samples of the (guided) logits, drawn
        free-running, or over `logits`, the teacher-forced logits of the real frame's `tokens` (B, N)."""
        c = self.config
        if c.mode == "teacher_forced":
            if uncond is not None:
                logits = guided_logits(logits, l2i_logits(self.model, uncond, tokens), c.guidance)
            return F.gumbel_softmax(logits, tau=tau, hard=c.hard, dim=-1)
        drawn = draw_image_tokens(
            self.model, prompts.ids, None if uncond is None else uncond.ids, tokens.shape[1], c.guidance,
            lambda step: F.gumbel_softmax(step, tau=tau, hard=c.hard, dim=-1)[:, None], prompts.mask,
        )  # fmt: skip
        return torch.cat(drawn, dim=1)


class DJOStage(Stage):
    name = "djo"

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        super().check(config)
        c = config.djo
        if c.mode not in DJO_MODES:
            raise ConfigError(f"djo.mode must be one of {', '.join(DJO_MODES)}, got {c.mode!r}")
        if c.guidance < 0:
            raise ConfigError(f"djo.guidance must be >= 0 (1: the conditional logits alone), got {c.guidance}")

    def objective(self) -> nn.Module:
        return DJOObjective(self.model, self.config.djo, self.batcher)

    def cpu_inputs(self, records, step: int) -> dict:
        l2i, uncond = self.batcher.l2i(records), None
        if l2i is not None and self.config.djo.guidance != 1:  # the same rows (those with objects), unconditional
            captions = [record.caption for record in records if record.objects]
            uncond = self.batcher.layout_prompts(l2i.layouts, captions)[1]
            if uncond.ids.shape != l2i.seq.ids.shape:
                raise RuntimeError("DJO's unconditional prompts do not pair with its L2I rows")
        return {"l2i": l2i, "i2l": self.batcher.i2l(records), "uncond": uncond}

    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        tau = gumbel_tau(step, self.config.optim.max_steps, self.config.djo)
        uncond = None if cpu.get("uncond") is None else seq_to(cpu["uncond"], device)
        return {"l2i": batch_to(cpu["l2i"], device), "i2l": batch_to(cpu["i2l"], device), "tau": tau,
                "uncond": uncond}  # fmt: skip
