"""The one training loop. Stages differ only by their objective and how a step's inputs are drawn."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import generation, layout_decoder
from echogen_ros.model.echogen import EXTRA_BEAMS, EchoGen
from echogen_ros.model.layout import Detection, assign_boxes, distinct, label_groups
from echogen_ros.model.letterbox import Letterbox
from echogen_training import distributed, state
from echogen_training.config import TrainConfig, to_dict
from echogen_training.data.batches import Batcher, PatchBatch, Sequences, to_pixels
from echogen_training.data.sources import build_stream, random_layout
from echogen_training.evaluate import evaluate
from echogen_training.forward import l2i_logits, token_logprobs
from echogen_training.logger import Logger
from echogen_training.objectives import (
    DJOObjective,
    GRPOObjective,
    PMTPObjective,
    VisionObjective,
    VQObjective,
    gumbel_tau,
)
from echogen_training.rewards import group_advantages, layout_reward

NON_FINITE_EXIT = 3
BUDGET_RESERVE = 0.08  # of run.time_budget_s, kept for evaluations, checkpoints and the final save
# fractions of run.time_budget_s at which max_steps is fitted again to the mean step rate since step 5: the
# first fit (after warm-up) can see start-up slowness (input workers filling, first kernels) that later
# goes away, and a mean over more steps shrugs off a passing slowdown. A refit early in the cosine schedule
# moves the LR curve only slightly.
BUDGET_REFITS = (0.25, 0.5)
BUDGET_REFIT_STEPS = 25  # a refit waits for this many steps since the last fit


class NonFiniteLoss(RuntimeError):
    pass


def build_model(config: TrainConfig) -> EchoGen:
    init = config.model.init
    dtype = getattr(torch, config.model.dtype)
    if init.startswith("janus-pro:"):
        model = EchoGen.from_janus_pro(init.split(":", 1)[1], bins=config.model.bins or 1000, dtype=dtype)
    elif Path(init).is_dir():
        model = EchoGen.load(init, dtype=dtype)
    else:
        model = EchoGen.create(init, seed=config.run.seed, bins=config.model.bins or None)
    if config.model.image_positions:  # kept by every later stage: it is saved in the model's config.json
        generation.enable_image_positions(model.model, model.scheme)
    if config.model.layout_map:
        generation.enable_layout_map(model.model, model.scheme)
    if config.model.decoder_map and layout_decoder.attach(model.model) is None:
        layout_decoder.enable(model.model)
    return model


def lr_factor(step: int, config) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.context = distributed.setup()
        seed = config.run.seed + self.context.rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.out = Path(config.run.out)
        self.echogen = build_model(config)
        self.model = self.echogen.model.to(self.context.device).train()
        self.batcher = Batcher(self.echogen, seed=seed)
        self.objective = self._objective().to(self.context.device)  # its own heads too (pointer, vision, GAN)
        self.sharded = self.context.world > 1 and config.run.distributed == "fsdp"
        if self.sharded and config.stage == "vision":
            raise ValueError("the vision stage hands its word classifier to the embeddings: run it with ddp")
        if self.sharded and config.stage == "vq" and config.vq.restart_every > 0:
            raise ValueError("vq.restart_every edits the sharded codebook: run the VQ stage with ddp")
        if config.data.workers < 0 or config.data.prefetch < 1:
            raise ValueError(f"data.workers must be ≥ 0 and data.prefetch ≥ 1, got {config.data.workers}, "
                             f"{config.data.prefetch}")  # fmt: skip
        if config.run.time_budget_s < 0:
            raise ValueError(f"run.time_budget_s must be ≥ 0 (0: no budget), got {config.run.time_budget_s}")
        for name in ("decolour", "recolour"):
            if not 0 <= (chance := getattr(config.vision, name)) <= 1:
                raise ValueError(f"vision.{name} must be a probability in [0, 1], got {chance}")
        for name in ("recolour", "desaturate", "tokenized"):
            if not 0 <= (chance := getattr(config.pmtp, name)) <= 1:
                raise ValueError(f"pmtp.{name} must be a probability in [0, 1], got {chance}")
        if config.pmtp.recolour + config.pmtp.desaturate > 1:
            raise ValueError("pmtp.recolour + pmtp.desaturate must be at most 1 (a frame gets one of them)")
        if config.vision.decolour + config.vision.recolour > 1:
            raise ValueError("vision.decolour + vision.recolour must be at most 1 (a frame gets one of them)")
        if config.pmtp.schedule not in ("parallel", "alternate"):
            raise ValueError(f"pmtp.schedule must be parallel or alternate, got {config.pmtp.schedule!r}")
        if self.sharded and config.stage == "cycle_rl":
            raise ValueError(
                "cycle_rl samples with whole weights: run it with run.distributed=ddp (FSDP: vq, pmtp, djo)"
            )
        self.reference = None
        if config.stage == "cycle_rl":
            self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)
        checkpoint = state.latest(self.out, report=print if self.context.is_main else lambda text: None)
        if checkpoint is not None:  # weights before sharding; optimizer state after
            self.model.load_state_dict(EchoGen.load(checkpoint / "model").model.state_dict())
        self.wrapped = distributed.wrap(self.objective, self.context, config.run.distributed, self._shard_units())
        params = [p for p in self.objective.parameters() if p.requires_grad]
        o = config.optim
        self.optimizer = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, o))
        self.stream = build_stream(config.data, self.context.rank, self.context.world)
        self.rl_rng = np.random.default_rng(seed)
        self.generator = torch.Generator()
        self.step = 0
        self.metrics: dict[str, float] = {}
        self._rate_mark: tuple[float, int] | None = None  # (seconds, step) at step 5 of this invocation
        self._fit_step = 0  # the step of the last fit
        self._fitted = False  # run.time_budget_s: max_steps fitted to the budget (restored on resume)
        self._step_cap = config.optim.max_steps  # the configured maximum: no fit goes above it
        self._refits = BUDGET_REFITS
        if checkpoint is not None:
            self._resume(checkpoint)
        self._step_base, self._position_base, self._draws = self.step, self.stream.position, 0
        self._loader, self._loader_iter = self._make_loader(), None

    # ---- set-up ------------------------------------------------------------------------------
    def _objective(self) -> nn.Module:
        c, model = self.config, self.model
        vq_params = set(map(id, model.model.vqmodel.parameters()))
        vision_params = {id(p) for m in (model.model.vision_model, model.model.aligner) for p in m.parameters()}
        for p in model.parameters():
            if c.stage == "vision":
                p.requires_grad_(id(p) in vision_params)
            elif c.stage != "vq" and c.model.freeze_vision and id(p) in vision_params:
                p.requires_grad_(False)
            else:
                p.requires_grad_((id(p) in vq_params) == (c.stage == "vq"))
        if c.stage in ("pmtp", "djo", "cycle_rl") and c.model.generation_only:
            janus = model.model
            path = (janus.generation_embeddings, janus.generation_aligner, janus.generation_head)
            generating = {id(p) for m in path for p in m.parameters()}
            for p in model.parameters():
                p.requires_grad_(id(p) in generating)
        if c.stage == "pmtp" and c.model.vision_only:
            for p in model.parameters():
                p.requires_grad_(id(p) in vision_params)
        if c.stage == "vq" and c.vq.decoder_only:
            vqmodel = model.model.vqmodel
            parts = (vqmodel.post_quant_conv, vqmodel.decoder, getattr(vqmodel, "decoder_map", None))
            decoder = {id(p) for m in parts if m is not None for p in m.parameters()}
            for p in vqmodel.parameters():
                p.requires_grad_(id(p) in decoder)
        if c.stage == "vq":
            return VQObjective(model, c.vq)
        if c.stage == "vision":
            scheme = self.echogen.scheme
            named = set(scheme.special.values()) | set(range(scheme.bin_offset, scheme.bin_offset + scheme.bins))
            words = [i for i in range(model.config.text_config.vocab_size) if i not in named]
            return VisionObjective(model, c.vision, words)
        if c.stage == "pmtp":
            return PMTPObjective(model, c.pmtp, self.echogen.image_size)
        if c.stage == "djo":
            return DJOObjective(model, c.djo, self.batcher)
        return GRPOObjective(model, c.cycle_rl)

    def _extra_modules(self) -> dict[str, nn.Module]:
        modules = {"discriminator": getattr(self.objective, "discriminator", None)}
        if getattr(self.objective, "pointer", None) is not None:
            modules["pointer"] = self.objective.pointer
        if self.config.stage == "vision":
            modules["vision_heads"] = nn.ModuleDict({"words": self.objective.words, "box": self.objective.box})
        if self.config.vq.restart_every > 0:
            modules["code_usage"] = getattr(self.objective, "usage", None)
        return {k: v for k, v in modules.items() if v is not None}

    def _make_loader(self) -> torch.utils.data.DataLoader | None:
        """`data.workers` forked processes build input draws ahead of the step (rendering, letterboxing,
        tokenising), in draw order: the same inputs as building them in the training process."""
        workers = self.config.data.workers
        if workers <= 0 or self.config.stage == "cycle_rl":  # RL draws its inputs by sampling the model
            return None
        return torch.utils.data.DataLoader(
            _Draws(self), batch_size=None, sampler=_Counter(), num_workers=workers, collate_fn=_as_is,
            prefetch_factor=self.config.data.prefetch, multiprocessing_context="fork",
            generator=torch.Generator(),  # its worker seeds must not come from (and shift) the global RNG
        )  # fmt: skip

    def _fit_budget(self, now: float, logger: Logger) -> None:
        """run.time_budget_s: once past warm-up, fit max_steps to the time left at the measured step rate
        (so the LR schedule still ends annealed), fit it again at BUDGET_REFITS of the budget, and stop at
        the budget whatever happens. `now`: seconds since this invocation's loop started, the same on every
        rank (`distributed.slowest`)."""
        c = self.config
        budget, done = c.run.time_budget_s, self.step - self._step_base
        if done == 5:  # rate measured after start-up (first kernels, worker start)
            self._rate_mark = (now, self.step)
        first = not self._fitted and self._rate_mark and done >= max(25, c.optim.warmup_steps - self._step_base)
        again = (self._fitted and self._refits and now >= budget * self._refits[0]
                 and self.step - self._fit_step >= BUDGET_REFIT_STEPS)  # fmt: skip
        if first or again:
            mark_time, mark_step = self._rate_mark
            per_step = (now - mark_time) / max(1, self.step - mark_step)
            fit = self.step + int((budget * (1 - BUDGET_RESERVE) - now) / per_step)
            c.optim.max_steps = max(self.step + 1, min(self._step_cap, fit))
            # a refit point passed by now is dropped (a late first fit is not followed at once by another)
            self._refits = tuple(f for f in self._refits if budget * f > now)
            self._fitted, self._fit_step = True, self.step
            logger.retotal(c.optim.max_steps)
            logger.message(f"time budget {budget:.0f} s: {per_step * 1000:.0f} ms/step, max_steps {c.optim.max_steps}")
        if now > budget and self.step < c.optim.max_steps:
            c.optim.max_steps = self.step
            logger.message(f"time budget {budget:.0f} s spent: stopping at step {self.step}")

    def _shard_units(self) -> list[nn.Module]:
        """FSDP units: every transformer layer of the language model and of the vision encoder. The VQ stage's
        objective holds only the VQ (sharded as one unit, its root), so it shards no layer of the rest."""
        if self.config.stage == "vq":
            return []
        janus = self.model.model
        return [*janus.language_model.layers, *janus.vision_model.encoder.layers]

    def _resume(self, path: Path) -> None:
        trainer, optimizer_state = state.restore(path, self.scheduler, self._extra_modules())
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            options = StateDictOptions(full_state_dict=True)
            set_optimizer_state_dict(self.objective, self.optimizer, optimizer_state, options=options)
        else:
            self.optimizer.load_state_dict(optimizer_state)
        self.step = trainer["step"]
        self.stream.position = trainer["data_position"]
        if self.config.run.time_budget_s > 0 and trainer.get("budget_fitted"):
            self.config.optim.max_steps = trainer["config"]["optim"]["max_steps"]
            self._fitted, self._refits = True, ()  # the schedule of the first invocation stays as it was
        self.metrics = trainer.get("metrics", {})

    # ---- one step ------------------------------------------------------------------------------
    def _reseed(self, step: int, micro: int = 0) -> None:
        """Per-draw randomness derived from (seed, rank, step, micro-batch), so a resumed run draws the same
        and the micro-batches of one step (optim.grad_accum) draw independently. The first micro-batch keeps
        the key (seed, rank, step); the others extend it past the sub-keys 1..3 used below."""
        key = [self.config.run.seed, self.context.rank, step] + ([3 + micro] if micro else [])
        self.batcher.rng = np.random.default_rng(key)
        self.batcher.colour_rng = np.random.default_rng([*key, 3])
        self.rl_rng = np.random.default_rng([*key, 1])
        self.generator.manual_seed(int(np.random.default_rng([*key, 2]).integers(2**62)))

    def _draw_step(self, draw: int) -> int:
        """The step input draw `draw` belongs to (draws count from this invocation's start; grad_accum per step)."""
        return self._step_base + draw // self.config.optim.grad_accum

    def _draw_records(self, draw: int) -> list:
        """The records of input draw `draw`."""
        c = self.config
        self._reseed(self._draw_step(draw), draw % c.optim.grad_accum)
        self.stream.position = self._position_base + draw * c.data.batch_size
        return self.stream.take(c.data.batch_size)

    def cpu_inputs(self, draw: int) -> dict:
        """The CPU side of input draw `draw`: a pure function of it, so `data.workers` processes build
        draws ahead of the training step, identically to building them here."""
        c = self.config
        records = self._draw_records(draw)
        if c.stage == "vq":
            size = self.echogen.image_size
            frames = [Letterbox(r.width, r.height, size).apply(r.load_image()) for r in records]
            if getattr(self.model.model.vqmodel, "decoder_map", None) is None:
                return {"pixels": to_pixels(frames)}
            return {"pixels": to_pixels(frames), "layouts": [self.batcher.layout(r) for r in records]}
        if c.stage == "vision":
            grid = self.echogen.vision_size // self.model.config.vision_config.patch_size
            vocab = self.model.config.text_config.vocab_size
            return {"batch": self.batcher.patches(records, grid, vocab, c.vision.decolour, c.vision.recolour)}
        if c.stage in ("pmtp", "djo"):
            dropout = c.pmtp.condition_dropout if c.stage == "pmtp" else 0.0
            looks = (c.pmtp.recolour, c.pmtp.desaturate, c.pmtp.tokenized) if c.stage == "pmtp" else (0.0,) * 3
            l2i, i2l = self.batcher.l2i(records, dropout), self.batcher.i2l(records, *looks)
            if c.stage == "pmtp" and c.pmtp.schedule == "alternate":  # naive joint training: a task per step
                l2i, i2l = (l2i, None) if self._draw_step(draw) % 2 == 0 else (None, i2l)
            return {"l2i": l2i, "i2l": i2l}
        raise ValueError(f"stage {c.stage} draws its inputs with the model")

    def _device_inputs(self, cpu: dict) -> dict:
        c, device = self.config, self.context.device
        if c.stage == "vq":
            inputs = {"pixels": _pixels_to(cpu["pixels"], device), "step": self.step}
            if "layouts" in cpu:  # the decoder map reads the frames' layouts (the LM's embeddings: fixed here)
                with torch.no_grad():
                    inputs["labels"], inputs["boxes"] = generation.label_boxes(self.model, cpu["layouts"])
            return inputs
        if c.stage == "vision":
            patches = cpu["batch"]
            moved = {f.name: getattr(patches, f.name).to(device, non_blocking=True)
                     for f in dataclasses.fields(patches) if f.name != "pixels"}  # fmt: skip
            return {"batch": PatchBatch(pixels=_pixels_to(patches.pixels, device), **moved)}
        inputs = {"l2i": _to_device(cpu["l2i"], device), "i2l": _to_device(cpu["i2l"], device)}
        if c.stage == "djo":
            inputs["tau"] = gumbel_tau(self.step, c.optim.max_steps, c.djo)
        return inputs

    def _inputs(self) -> dict:
        c = self.config
        draw, self._draws = self._draws, self._draws + 1
        if c.stage == "cycle_rl":
            return self._rl_inputs(self._draw_records(draw))
        if self._loader is None:
            cpu = self.cpu_inputs(draw)
        else:
            if self._loader_iter is None:
                self._loader_iter = iter(self._loader)
            cpu = next(self._loader_iter)
        self.stream.position = self._position_base + (draw + 1) * c.data.batch_size
        return self._device_inputs(cpu)

    @torch.no_grad()
    def _rl_inputs(self, records) -> dict:
        """Sample G images per layout, ground every object back, and score the groups (GRPO)."""
        c, model, device = self.config.cycle_rl, self.model, self.context.device
        layouts, captions = [], []
        for record in records[: c.layouts_per_step]:
            if c.layout_source == "random":
                objects, caption = random_layout(self.rl_rng)
                layouts.append([(self.batcher.text(label), box) for label, box in objects])
            else:
                box = Letterbox(record.width, record.height, self.echogen.image_size)
                objects = record.objects[: self.echogen.max_objects]
                layouts.append([(self.batcher.text(label), box.normalised(b)) for label, b in objects])
                caption = record.caption
            captions.append(caption)
        layouts = [layout for layout in layouts for _ in range(c.group_size)]
        captions = [caption for caption in captions for _ in range(c.group_size)]
        cond, uncond = (_seq_to(s, device) for s in self.batcher.layout_prompts(layouts, captions))
        model.eval()
        tokens = generation.generate_image_tokens(
            model, cond.ids, uncond.ids, self.echogen.scheme.generation_tokens, c.guidance, c.temperature,
            self.generator, mask=cond.mask,
        )  # fmt: skip
        rewards = torch.tensor([layout_reward([b for _, b in lay], pred, c.l1_weight)
                                for lay, pred in zip(layouts, self._ground_back(tokens, layouts))])  # fmt: skip
        old_logp = token_logprobs(l2i_logits(model, cond, tokens), tokens)
        ref_logp = token_logprobs(l2i_logits(self.reference, cond, tokens), tokens)
        model.train()
        self.metrics_extra = {"reward": float(rewards.mean()), "reward_std": float(rewards.std())}
        advantages = group_advantages(rewards, c.group_size).to(device)
        i2l = _to_device(self.batcher.i2l(records), device) if c.i2l_weight > 0 else None
        return {"prompts": cond, "tokens": tokens, "advantages": advantages, "old_logp": old_logp,
                "ref_logp": ref_logp, "i2l": i2l}  # fmt: skip

    def _ground_back(self, tokens: torch.Tensor, layouts) -> list[list[tuple] | None]:
        frames = generation.decode_image(self.model, tokens, layouts).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        size = self.echogen.vision_size
        pixels = torch.nn.functional.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        features = generation.image_features(self.model, pixels.to(self.echogen.dtype))
        rows = [(ids, box) for layout in layouts for ids, box in layout]
        index = torch.tensor([i for i, layout in enumerate(layouts) for _ in layout], device=tokens.device)
        batch = self.batcher.i2l_rows(rows, pixels, index.tolist())
        prompt_len = batch.seq.ids.shape[1] - 6  # drop the training target (4 bins, </box>, <eos>)
        ids, mask = batch.seq.ids[:, :prompt_len].to(tokens.device), batch.seq.mask[:, :prompt_len].to(tokens.device)
        embeds = generation.embed(self.model, ids, features[index])
        _, _, found = generation.decode_boxes(self.model, self.echogen.scheme, embeds, mask)
        boxes = [tuple(coords) for coords in found.tolist()]  # refined, as EchoGen.ground gives them
        out, k = [], 0
        for layout in layouts:
            out.append(self._alike_apart(layout, boxes[k : k + len(layout)], embeds[k : k + len(layout)],
                                         mask[k : k + len(layout)]))  # fmt: skip
            k += len(layout)
        return out

    def _alike_apart(self, layout, boxes: list[tuple], embeds: torch.Tensor, mask: torch.Tensor) -> list[tuple]:
        """`boxes` (greedy, one per object) with the objects of a label the layout names n times given the
        label's n best distinct boxes, matched by IoU, as `EchoGen.ground_layout` grounds back in the cycle
        check (alone, two red cups get the same box and one always fails)."""
        boxes = list(boxes)
        for rows in label_groups([tuple(ids) for ids, _ in layout]).values():
            if len(rows) < 2:
                continue
            prompt = embeds[rows[0], mask[rows[0]].bool()][None]  # the label's prompt without its padding
            beams = generation.beam_boxes(self.model, self.echogen.scheme, prompt, len(rows) + EXTRA_BEAMS)
            candidates = distinct([Detection(tuple(coords), score, "") for _, score, coords in beams])[: len(rows)]
            match = assign_boxes([layout[r][1] for r in rows], [d.box for d in candidates])
            for r, j in zip(rows, match):
                if j is not None:
                    boxes[r] = candidates[j].box
        return boxes

    def train_step(self) -> dict[str, float]:
        c = self.config
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(c.run.autocast)
        totals: dict[str, float] = {}
        self.metrics_extra = {}
        for _ in range(c.optim.grad_accum):
            inputs = self._inputs()
            with torch.autocast(self.context.device.type, dtype=autocast, enabled=autocast is not None):
                loss, metrics = self.wrapped(**inputs)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite loss {loss.item()} at step {self.step}")
            (loss / c.optim.grad_accum).backward()
            for key, value in {"loss": loss.item(), **metrics}.items():
                totals[key] = totals.get(key, 0.0) + value / c.optim.grad_accum
        norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.objective.parameters() if p.requires_grad], c.optim.grad_clip
        )
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # a DTensor under FSDP
        if not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(f"non-finite gradient norm at step {self.step}")
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if hasattr(self.objective, "after_step"):
            self.metrics_extra.update(self.objective.after_step(self.step))
        self.step += 1
        totals.update(self.metrics_extra, lr=self.scheduler.get_last_lr()[0], grad_norm=float(norm))
        return distributed.average(totals, self.context)

    # ---- the loop -------------------------------------------------------------------------------
    def _full_states(self) -> tuple[dict | None, dict]:
        """(full model state dict or None when unsharded, optimizer state); collective under FSDP."""
        if not self.sharded:
            return None, self.optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model = get_model_state_dict(self.objective, options=options)
        optimizer = get_optimizer_state_dict(self.objective, self.optimizer, options=options)
        return self._model_state(model), optimizer

    def _model_state(self, objective_state: dict) -> dict:
        """The Janus model's full state dict from the sharded objective's: its `model.` entries, or, in the VQ
        stage (whose objective holds the VQ as `vq.`), the live model's other weights, never sharded there,
        with the VQ's gathered ones."""
        if self.config.stage != "vq":
            return {k[len("model.") :]: v for k, v in objective_state.items() if k.startswith("model.")}
        if not objective_state:  # a rank other than the main one (cpu_offload gathers on rank 0 only)
            return {}
        inner = "model.vqmodel."
        whole = {k: v.detach().cpu() for k, v in self.model.state_dict().items() if not k.startswith(inner)}
        whole.update({inner + k[len("vq.") :]: v for k, v in objective_state.items() if k.startswith("vq.")})
        return whole

    def _unsharded(self) -> EchoGen | None:
        """The model with whole weights for evaluation: under FSDP a copy gathered on the main rank
        (collective; other ranks get None)."""
        model_state, _ = self._full_states()
        if model_state is None:
            return self.echogen
        if not self.context.is_main:
            return None
        whole = EchoGen(JanusForConditionalGeneration(self.model.config), self.echogen.tokenizer, self.echogen.manifest)
        layout_decoder.attach(whole.model)  # the config's decoder map is not a Janus module: built here, filled next
        whole.model.load_state_dict(model_state)
        return whole

    def save(self) -> None:
        model_state, optimizer_state = self._full_states()
        if self.context.is_main:
            state.save(self.out, self.step, self.echogen, optimizer_state, self.scheduler, self.stream.position,
                       to_dict(self.config), self.metrics, self._extra_modules(), model_state,
                       {"budget_fitted": self._fitted}, keep_every=self.config.run.keep_every)  # fmt: skip
        distributed.barrier(self.context)

    def run(self) -> int:
        c = self.config
        logger = Logger(self.out, self.context.is_main, c.optim.max_steps, self.step, c.run.progress)
        stop_at = self.step + c.run.stop_after if c.run.stop_after else c.optim.max_steps
        started = time.monotonic()
        try:
            while self.step < min(stop_at, c.optim.max_steps):
                try:
                    metrics = self.train_step()
                except NonFiniteLoss as exc:
                    logger.message(
                        f"stopping: {exc}; the last good checkpoint is kept in {state.checkpoint_root(self.out)}"
                    )
                    return NON_FINITE_EXIT
                logger.advance()
                if c.run.time_budget_s > 0:
                    self._fit_budget(distributed.slowest(time.monotonic() - started, self.context), logger)
                if self.step % c.run.log_every == 0 or self.step == c.optim.max_steps:
                    logger.log(self.step, metrics)
                if c.eval.every and (self.step % c.eval.every == 0 or self.step == c.optim.max_steps):
                    model = self._unsharded()
                    if self.context.is_main:
                        self.metrics = evaluate(model, c.eval, c.stage)
                        logger.log(self.step, self.metrics, prefix="eval")
                    distributed.barrier(self.context)
                if self.step % c.run.save_every == 0 or self.step in (c.optim.max_steps, stop_at):
                    self.save()
            if self.step < c.optim.max_steps:
                logger.message(f"stopped after {c.run.stop_after} steps at step {self.step}; rerun to resume")
                return 0
            if hasattr(self.objective, "hand_over"):
                self.objective.hand_over(self._device_inputs(self.cpu_inputs(self._draws))["batch"].pixels)
            model_state, _ = self._full_states()
            if self.context.is_main:
                self.echogen.save(self.out / "final", stage=c.stage, metrics=self.metrics, state_dict=model_state)
                logger.message(f"done: {self.out / 'final'}")
            return 0
        finally:
            self._loader_iter = None  # shuts the input workers down
            logger.close()
            distributed.teardown(self.context)


class _Draws(torch.utils.data.Dataset):
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def __getitem__(self, draw: int) -> dict:
        cpu = self.trainer.cpu_inputs(draw)
        return cpu if self.trainer.context.device.type == "cpu" else _pack_pixels(cpu)


PIXEL_FIELDS = ("pixels", "gen_pixels")


def _pack_pixels(cpu: dict) -> dict:
    """Pixels back to the uint8 they were made from (to_pixels is u / 127.5 - 1, exactly invertible): a
    quarter of the bytes for the worker → trainer hand-off when training on an accelerator, where
    `_pixels_to` restores the same floats on the device."""
    for key, value in cpu.items():
        if key in PIXEL_FIELDS and torch.is_tensor(value):
            cpu[key] = _to_bytes(value)
        elif dataclasses.is_dataclass(value):
            for name in PIXEL_FIELDS:
                pixels = getattr(value, name, None)
                if pixels is not None and pixels.is_floating_point():
                    setattr(value, name, _to_bytes(pixels))
    return cpu


def _to_bytes(pixels: torch.Tensor) -> torch.Tensor:
    return ((pixels + 1.0) * 127.5).round().to(torch.uint8)


def _pixels_to(pixels: torch.Tensor, device) -> torch.Tensor:
    pixels = pixels.to(device, non_blocking=True)
    return pixels.float() / 127.5 - 1.0 if pixels.dtype == torch.uint8 else pixels


class _Counter(torch.utils.data.Sampler):
    def __iter__(self):
        return itertools.count()


def _as_is(item):
    return item


def _to_device(batch, device):
    if batch is None:
        return None
    batch.seq = _seq_to(batch.seq, device)
    for name in ("image_index", "patch", "tokenized"):
        if getattr(batch, name, None) is not None:
            setattr(batch, name, getattr(batch, name).to(device))
    for name in PIXEL_FIELDS:
        if getattr(batch, name, None) is not None:
            setattr(batch, name, _pixels_to(getattr(batch, name), device))
    return batch


def _seq_to(seq: Sequences, device) -> Sequences:
    return Sequences(seq.ids.to(device), seq.mask.to(device), seq.positions.to(device), seq.labels.to(device))
