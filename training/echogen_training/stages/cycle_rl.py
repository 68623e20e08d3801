"""The Cycle RL stage (GRPO): sample groups of images per layout, ground every object back in them, reward the
groups by how well the boxes come back, and update the generator with the clipped policy loss."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import generation, grounding
from echogen_ros.model.pixels import unit_tensor
from echogen_training.config import CycleRLConfig
from echogen_training.data.batches import I2LBatch, Sequences
from echogen_training.data.device import batch_to, seq_to
from echogen_training.data.sources import random_layout
from echogen_training.forward import i2l_loss, l2i_logits, token_logprobs
from echogen_training.rewards import group_advantages, grpo_loss, layout_reward
from echogen_training.stages.base import Metrics, Stage


class GRPOObjective(nn.Module):
    """Clipped policy-gradient loss on sampled image tokens with group advantages and a k3 KL penalty."""

    def __init__(self, model: JanusForConditionalGeneration, config: CycleRLConfig) -> None:
        super().__init__()
        self.model, self.config = model, config

    def forward(
        self,
        prompts: Sequences,
        tokens: torch.Tensor,
        advantages: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor,
        i2l: I2LBatch | None = None,
    ) -> tuple[torch.Tensor, Metrics]:
        logp = token_logprobs(l2i_logits(self.model, prompts, tokens), tokens)
        loss, surrogate, kl = grpo_loss(logp, old_logp, ref_logp, advantages, self.config.clip, self.config.kl_beta)
        metrics = {"policy": -surrogate.item(), "kl": kl.item()}
        if i2l is not None and self.config.i2l_weight > 0:
            i2l_ce, _ = i2l_loss(self.model, i2l)
            loss = loss + self.config.i2l_weight * i2l_ce
            metrics["i2l_ce"] = i2l_ce.item()
        return loss, metrics


class CycleRLStage(Stage):
    name = "cycle_rl"
    draws_in_workers = False  # its inputs are sampled from the model

    def __init__(self, config, echogen, batcher) -> None:
        super().__init__(config, echogen, batcher)
        self.rng = np.random.default_rng(config.run.seed)  # random layouts (cycle_rl.layout_source=random)
        self.generator = torch.Generator()  # image-token sampling
        self.reference: nn.Module | None = None
        self._rewards: Metrics = {}

    def sharding_problem(self) -> str | None:
        return "cycle_rl samples with whole weights: run it with run.distributed=ddp (FSDP: vq, pmtp, djo)"

    def objective(self) -> nn.Module:
        return GRPOObjective(self.model, self.config.cycle_rl)

    def prepare(self) -> None:
        """The KL reference: the policy as the stage starts (before any checkpoint of this run is loaded)."""
        self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)

    def reseed(self, key: list[int]) -> None:
        self.rng = np.random.default_rng([*key, 1])
        self.generator.manual_seed(int(np.random.default_rng([*key, 2]).integers(2**62)))

    def cpu_inputs(self, records, step: int) -> dict:
        return {"records": records}

    @torch.no_grad()
    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        """Sample G images per layout, ground every object back, and score the groups (GRPO)."""
        c, model, records = self.config.cycle_rl, self.model, cpu["records"]
        layouts, captions = [], []
        for record in records[: c.layouts_per_step]:
            if c.layout_source == "random":
                objects, caption = random_layout(self.rng)
                layouts.append([(self.batcher.text(label), box) for label, box in objects])
            else:
                layouts.append(self.batcher.layout(record))
                caption = record.caption
            captions.append(caption)
        layouts = [layout for layout in layouts for _ in range(c.group_size)]
        captions = [caption for caption in captions for _ in range(c.group_size)]
        cond, uncond = (seq_to(s, device) for s in self.batcher.layout_prompts(layouts, captions))
        model.eval()
        tokens = generation.generate_image_tokens(
            model, cond.ids, uncond.ids, self.echogen.scheme.generation_tokens, c.guidance, c.temperature,
            self.generator, mask=cond.mask,
        )  # fmt: skip
        rewards = torch.tensor([layout_reward([b for _, b in lay], pred, c.l1_weight)
                                for lay, pred in zip(layouts, self.ground_back(tokens, layouts))])  # fmt: skip
        old_logp = token_logprobs(l2i_logits(model, cond, tokens), tokens)
        ref_logp = token_logprobs(l2i_logits(self.reference, cond, tokens), tokens)
        model.train()
        self._rewards = {"reward": float(rewards.mean()), "reward_std": float(rewards.std())}
        advantages = group_advantages(rewards, c.group_size).to(device)
        i2l = batch_to(self.batcher.i2l(records), device) if c.i2l_weight > 0 else None
        return {"prompts": cond, "tokens": tokens, "advantages": advantages, "old_logp": old_logp,
                "ref_logp": ref_logp, "i2l": i2l}  # fmt: skip

    def after_step(self, objective: nn.Module, step: int) -> Metrics:
        rewards, self._rewards = self._rewards, {}
        return rewards

    def ground_back(self, tokens: torch.Tensor, layouts) -> list[list[tuple]]:
        """Every object of each layout grounded back in the image its row of `tokens` draws (normalised
        boxes), as the cycle check grounds back (`grounding.ground_layouts`)."""
        frames = unit_tensor(generation.decode_image(self.model, tokens, layouts).permute(0, 3, 1, 2))
        size = self.echogen.vision_size
        pixels = torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        features = generation.image_features(self.model, pixels.to(self.echogen.dtype))
        return grounding.ground_layouts(self.model, self.echogen.scheme, features, layouts)
