"""The Cycle RL stage (GRPO): sample groups of images per layout, ground every object back in them, reward the
groups by how well the boxes come back, and update the generator with the clipped policy loss for
`cycle_rl.epochs` optimiser steps on each group (its old log-probabilities frozen when it was sampled)."""

from __future__ import annotations

import copy
from dataclasses import fields

import numpy as np
import torch
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import generation, grounding
from echogen_ros.model.pixels import unit_tensor
from echogen_training.config import ConfigError, CycleRLConfig, TrainConfig
from echogen_training.data.batches import I2LBatch, Sequences
from echogen_training.data.device import batch_to, seq_to
from echogen_training.data.sources import random_layout
from echogen_training.forward import i2l_loss, l2i_logits, token_logprobs
from echogen_training.rewards import clip_stats, group_advantages, grpo_loss, guided_logprobs, layout_reward
from echogen_training.stages.base import Metrics, Stage


def sampled_logprobs(
    model: nn.Module, cond: Sequences, uncond: Sequences, tokens: torch.Tensor, config: CycleRLConfig
) -> torch.Tensor:
    """Log-probabilities (B, N) of sampled `tokens` under the distribution the stage samples from: guidance
    and temperature applied to the conditional and unconditional logits (`cycle_rl.guided_logprobs`), or the
    conditional policy's alone (the ablation)."""
    if not config.guided_logprobs:
        return token_logprobs(l2i_logits(model, cond, tokens), tokens)
    both = Sequences(*(torch.cat([getattr(cond, f.name), getattr(uncond, f.name)]) for f in fields(Sequences)))
    logits = l2i_logits(model, both, torch.cat([tokens, tokens]))  # (2B, N, V): one pass for both prompts
    return guided_logprobs(*logits.chunk(2), tokens, config.guidance, config.temperature)


class GRPOObjective(nn.Module):
    """Clipped policy-gradient loss on sampled image tokens with group advantages and a k3 KL penalty;
    reports the share of tokens where the clip binds (`clipped`) and the mean ratio."""

    def __init__(self, model: JanusForConditionalGeneration, config: CycleRLConfig) -> None:
        super().__init__()
        self.model, self.config = model, config

    def forward(
        self,
        prompts: Sequences,
        uncond: Sequences,
        tokens: torch.Tensor,
        advantages: torch.Tensor,
        old_logp: torch.Tensor,
        ref_logp: torch.Tensor,
        i2l: I2LBatch | None = None,
    ) -> tuple[torch.Tensor, Metrics]:
        c = self.config
        logp = sampled_logprobs(self.model, prompts, uncond, tokens, c)
        loss, surrogate, kl = grpo_loss(logp, old_logp, ref_logp, advantages, c.clip, c.kl_beta)
        clipped, ratio = clip_stats(logp.detach(), old_logp, advantages[:, None], c.clip)
        metrics = {"policy": -surrogate.item(), "kl": kl.item(), "clipped": clipped.item(), "ratio": ratio.item()}
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
        self._groups: dict[int, tuple[int, dict, Metrics]] = {}  # micro-batch -> (step sampled, group, rewards)
        self._step, self._micro = -1, 0  # which micro-batch of which step device_inputs is drawing

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        super().check(config)
        c = config.cycle_rl
        if c.epochs < 1:
            raise ConfigError(f"cycle_rl.epochs is the optimiser steps per sampled group: >= 1, got {c.epochs}")
        if c.guided_logprobs and c.temperature <= 0:
            raise ConfigError(
                "cycle_rl.temperature <= 0 samples greedily, which has no log-probabilities: set a temperature > 0 "
                "or cycle_rl.guided_logprobs=false"
            )

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

    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        """The group this micro-batch trains on: sampled afresh every `cycle_rl.epochs` steps (and after a
        resume), reused as it was sampled (tokens, advantages, old and reference log-probs) in between."""
        c = self.config.cycle_rl
        self._step, self._micro = step, (self._micro + 1 if step == self._step else 0)
        sampled, group, self._rewards = self._groups.get(self._micro, (-1, {}, {}))
        if sampled < 0 or sampled // c.epochs != step // c.epochs:
            group, self._rewards = self.sample_group(cpu["records"], device)
            self._groups[self._micro] = (step, group, self._rewards)
        i2l = batch_to(self.batcher.i2l(cpu["records"]), device) if c.i2l_weight > 0 else None
        return {**group, "i2l": i2l}

    @torch.no_grad()
    def sample_group(self, records, device: torch.device) -> tuple[dict, Metrics]:
        """Sample G images per layout, ground every object back, and score the groups (GRPO): the
        objective's inputs with the old and reference log-probabilities frozen now, and the rewards."""
        c, model = self.config.cycle_rl, self.model
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
        old_logp = sampled_logprobs(model, cond, uncond, tokens, c)
        ref_logp = sampled_logprobs(self.reference, cond, uncond, tokens, c)
        model.train()
        advantages = group_advantages(rewards, c.group_size).to(device)
        group = {"prompts": cond, "uncond": uncond, "tokens": tokens, "advantages": advantages,
                 "old_logp": old_logp, "ref_logp": ref_logp}  # fmt: skip
        return group, {"reward": float(rewards.mean()), "reward_std": float(rewards.std())}

    def after_step(self, objective: nn.Module, step: int) -> Metrics:
        """The rewards of the group the step trained on (the same on each of its `cycle_rl.epochs` steps)."""
        return self._rewards

    def ground_back(self, tokens: torch.Tensor, layouts) -> list[list[tuple]]:
        """Every object of each layout grounded back in the image its row of `tokens` draws (normalised
        boxes), as the cycle check grounds back (`grounding.ground_layouts`). The tokens are drawn by the
        decoder that reads codes only: the reward is for what the generator drew, never for objects a
        layout-reading decoder (`model.decoder_map`) adds from the layout."""
        frames = unit_tensor(generation.decode_image(self.model, tokens).permute(0, 3, 1, 2))
        size = self.echogen.vision_size
        pixels = torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        features = generation.image_features(self.model, pixels.to(self.echogen.dtype))
        return grounding.ground_layouts(self.model, self.echogen.scheme, features, layouts)
