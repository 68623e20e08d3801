"""The DJO stage (differentiable joint optimisation): generate and ground in one differentiable pass, so the
grounding loss reaches the generator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import vq
from echogen_ros.model.generation import image_features
from echogen_training.config import DJOConfig
from echogen_training.data.batches import I2LBatch, L2IBatch
from echogen_training.data.device import batch_to
from echogen_training.forward import i2l_loss, l2i_logits, l2i_loss
from echogen_training.stages.base import Metrics, Stage


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

    def forward(self, l2i: L2IBatch, i2l: I2LBatch | None, tau: float) -> tuple[torch.Tensor, Metrics]:
        model = self.model
        tokens = vq.encode_tokens(model.model.vqmodel, l2i.gen_pixels)
        logits = l2i_logits(model, l2i.seq, tokens)
        l2i_ce, l2i_acc = l2i_loss(logits, tokens)
        soft = F.gumbel_softmax(logits, tau=tau, hard=self.config.hard, dim=-1)  # (B, N, V)
        # drawn from the codes alone: the grounding loss grades what the generator drew, never what a
        # layout-reading decoder (`model.decoder_map`) adds from the layout
        generated = vq.soft_decode(model.model.vqmodel, soft).clamp(-1, 1)
        size = model.config.vision_config.image_size
        generated = F.interpolate(generated, size=(size, size), mode="bilinear", align_corners=False)
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


class DJOStage(Stage):
    name = "djo"

    def objective(self) -> nn.Module:
        return DJOObjective(self.model, self.config.djo, self.batcher)

    def cpu_inputs(self, records, step: int) -> dict:
        return {"l2i": self.batcher.l2i(records), "i2l": self.batcher.i2l(records)}

    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        tau = gumbel_tau(step, self.config.optim.max_steps, self.config.djo)
        return {"l2i": batch_to(cpu["l2i"], device), "i2l": batch_to(cpu["i2l"], device), "tau": tau}
