"""The one training loop: the step, the run, saving and resuming. Everything that differs by stage is the
stage's (`stages/`); the time budget is `budget.py`, whole states under FSDP `fsdp_state.py`."""

from __future__ import annotations

import itertools
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from transformers import JanusForConditionalGeneration

from echogen_ros.model import generation, layout_decoder, vision_stem
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.presets import PRESETS
from echogen_training import distributed, fsdp_state, state
from echogen_training.budget import TimeBudget
from echogen_training.config import TrainConfig, to_dict
from echogen_training.data.batches import Batcher
from echogen_training.data.device import pack_pixels
from echogen_training.data.sources import build_stream
from echogen_training.evaluate import evaluate
from echogen_training.logger import Logger
from echogen_training.stages import stage_type
from echogen_training.stages.base import language_ids, stem_ids

NON_FINITE_EXIT = 3


class NonFiniteLoss(RuntimeError):
    pass


def build_model(config: TrainConfig) -> EchoGen:
    init = config.model.init
    dtype = getattr(torch, config.model.dtype)
    if init.startswith("janus-pro:"):
        model = EchoGen.from_janus_pro(init.split(":", 1)[1], bins=config.model.bins or 1000, dtype=dtype)
    elif Path(init).is_dir():
        model = EchoGen.load(init, dtype=dtype)
    elif init not in PRESETS:  # a directory that is not there yet, most often the previous stage's output
        raise ValueError(
            f"model.init={init!r} is neither a model directory nor a preset ({', '.join(PRESETS)}); "
            "a stage's config starts from the previous stage's final model: run that stage first, or set "
            "model.init=PRESET|DIR"
        )
    else:
        model = EchoGen.create(init, seed=config.run.seed, bins=config.model.bins or None)
    if config.model.image_positions:  # kept by every later stage: it is saved in the model's config.json
        generation.enable_image_positions(model.model, model.scheme)
    if config.model.layout_map:
        generation.enable_layout_map(model.model, model.scheme)
    if config.model.decoder_map and layout_decoder.attach(model.model) is None:
        layout_decoder.enable(model.model)
    return model


def param_groups(objective: torch.nn.Module, scaled: list[tuple[set[str], float]], lr: float) -> list[dict]:
    """The objective's trainable parameters: those named in a (names, scale) of `scaled` at lr × scale, the rest
    at lr. One group when every scale is 1 (every run before optim.language_lr_scale had one); no empty group."""
    trainable = [(name, p) for name, p in objective.named_parameters() if p.requires_grad]
    scaled = [(names, scale) for names, scale in scaled if scale != 1.0]
    if not scaled:
        return [{"params": [p for _, p in trainable], "lr": lr}]
    taken = set().union(*(names for names, _ in scaled))
    groups = [{"params": [p for name, p in trainable if name not in taken], "lr": lr}]
    groups += [{"params": [p for name, p in trainable if name in names], "lr": lr * scale} for names, scale in scaled]
    return [group for group in groups if group["params"]]


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
        self.stage = stage_type(config.stage)(config, self.echogen, self.batcher)
        self.sharded = self.context.world > 1 and config.run.distributed == "fsdp"
        if self.sharded and (problem := self.stage.sharding_problem()):
            raise ValueError(problem)
        self.stage.set_trainable()
        self.objective = self.stage.objective().to(self.context.device)  # its own heads too (pointer, GAN)
        self.stage.prepare()
        checkpoint = state.latest(self.out, report=print if self.context.is_main else lambda text: None)
        if checkpoint is not None:  # weights before sharding; optimizer state after
            self.model.load_state_dict(EchoGen.load(checkpoint / "model").model.state_dict())
        o = config.optim  # names, not ids: FSDP2 shards in place and keeps the names, not the parameter objects
        scaled = [(self._names(language_ids(self.model)), o.language_lr_scale),
                  (self._names(stem_ids(self.model)), o.stem_lr_scale)]  # fmt: skip
        self.wrapped = distributed.wrap(self.objective, self.context, config.run.distributed, self.stage.shard_units())
        groups = param_groups(self.objective, scaled, o.lr)
        self.optimizer = torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, o))
        self.stream = build_stream(config.data, self.context.rank, self.context.world)
        self.step = 0
        self.metrics: dict[str, float] = {}
        fitted = checkpoint is not None and self._resume(checkpoint)
        self.budget = TimeBudget(config.run.time_budget_s, config.optim, self.step)
        if fitted:
            self.budget.resumed(fitted)
        self._step_base, self._position_base, self._draws = self.step, self.stream.position, 0
        self.loader, self._loader_iter = self._make_loader(), None

    def extra_modules(self) -> dict:
        return self.stage.extra_modules(self.objective)

    def _make_loader(self) -> torch.utils.data.DataLoader | None:
        """`data.workers` forked processes build input draws ahead of the step (rendering, letterboxing,
        tokenising), in draw order: the same inputs as building them in the training process."""
        workers = self.config.data.workers
        if workers <= 0 or not self.stage.draws_in_workers:
            return None
        return torch.utils.data.DataLoader(
            _Draws(self), batch_size=None, sampler=_Counter(), num_workers=workers, collate_fn=_as_is,
            prefetch_factor=self.config.data.prefetch, multiprocessing_context="fork",
            generator=torch.Generator(),  # its worker seeds must not come from (and shift) the global RNG
        )  # fmt: skip

    def _names(self, ids: set[int]) -> set[str]:
        """The objective's names of the parameters with these ids."""
        return {name for name, p in self.objective.named_parameters() if id(p) in ids}

    def _resume(self, path: Path) -> int:
        """Load the trainer state at `path`; the max_steps a time budget fitted there (0: none)."""
        trainer, optimizer_state = state.restore(path, self.scheduler, self.extra_modules())
        fsdp_state.load_optimizer(self.objective, self.optimizer, optimizer_state, self.sharded)
        self.step = trainer["step"]
        self.stream.position = trainer["data_position"]
        self.metrics = trainer.get("metrics", {})
        if self.config.run.time_budget_s > 0 and trainer.get("budget_fitted"):
            return trainer["config"]["optim"]["max_steps"]
        return 0

    # ---- inputs ----------------------------------------------------------------------------------
    def draw_step(self, draw: int) -> int:
        """The step input draw `draw` belongs to (draws count from this invocation's start; grad_accum per step)."""
        return self._step_base + draw // self.config.optim.grad_accum

    def draw_records(self, draw: int) -> list:
        """The records of input draw `draw`, with every generator of the draw seeded from (seed, rank, step,
        micro-batch): a resumed run draws the same, and the micro-batches of one step (optim.grad_accum)
        draw independently. The first micro-batch keeps the key (seed, rank, step); the others extend it
        past the sub-keys 1..3 the batcher and the stages use."""
        c = self.config
        micro = draw % c.optim.grad_accum
        key = [c.run.seed, self.context.rank, self.draw_step(draw)] + ([3 + micro] if micro else [])
        self.batcher.rng = np.random.default_rng(key)
        self.batcher.colour_rng = np.random.default_rng([*key, 3])
        self.stage.reseed(key)
        self.stream.position = self._position_base + draw * c.data.batch_size
        return self.stream.take(c.data.batch_size)

    def cpu_inputs(self, draw: int) -> dict:
        """The CPU side of input draw `draw`: a pure function of it, so `data.workers` processes build
        draws ahead of the training step, identically to building them here."""
        return self.stage.cpu_inputs(self.draw_records(draw), self.draw_step(draw))

    def device_inputs(self, cpu: dict) -> dict:
        return self.stage.device_inputs(cpu, self.context.device, self.step)

    def next_inputs(self) -> dict:
        draw, self._draws = self._draws, self._draws + 1
        if self.loader is None:
            cpu = self.cpu_inputs(draw)
        else:
            if self._loader_iter is None:
                self._loader_iter = iter(self.loader)
            cpu = next(self._loader_iter)
        self.stream.position = self._position_base + (draw + 1) * self.config.data.batch_size
        return self.device_inputs(cpu)

    # ---- one step ------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        c = self.config
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(c.run.autocast)
        totals: dict[str, float] = {}
        for _ in range(c.optim.grad_accum):
            inputs = self.next_inputs()
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
        extra = self.stage.after_step(self.objective, self.step)
        self.step += 1
        totals.update(extra, lr=self.scheduler.get_last_lr()[0], grad_norm=float(norm))
        return distributed.average(totals, self.context)

    # ---- whole weights ---------------------------------------------------------------------------
    def _full_states(self) -> tuple[dict | None, dict]:
        """(the Janus model's full state dict, or None when unsharded; the optimizer's state)."""
        objective_state, optimizer_state = fsdp_state.full_states(self.objective, self.optimizer, self.sharded)
        return (None if objective_state is None else self.stage.model_state(objective_state)), optimizer_state

    def _unsharded(self) -> EchoGen | None:
        """The model with whole weights for evaluation: under FSDP a copy gathered on the main rank
        (collective; other ranks get None)."""
        model_state, _ = self._full_states()
        if model_state is None:
            return self.echogen
        if not self.context.is_main:
            return None
        whole = EchoGen(JanusForConditionalGeneration(self.model.config), self.echogen.tokenizer, self.echogen.manifest)
        layout_decoder.attach(whole.model)  # the config's decoder map and stem are not Janus modules: built here,
        vision_stem.attach(whole.model)  # filled next
        whole.model.load_state_dict(model_state)
        return whole

    def save(self) -> None:
        model_state, optimizer_state = self._full_states()
        if self.context.is_main:
            state.save(self.out, self.step, self.echogen, optimizer_state, self.scheduler, self.stream.position,
                       to_dict(self.config), self.metrics, self.extra_modules(), model_state,
                       {"budget_fitted": self.budget.fitted}, keep_every=self.config.run.keep_every)  # fmt: skip
        distributed.barrier(self.context)

    # ---- the loop -------------------------------------------------------------------------------
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
                    self.budget.update(distributed.slowest(time.monotonic() - started, self.context), self.step, logger)
                if self.step % c.run.log_every == 0 or self.step == c.optim.max_steps:
                    logger.log(self.step, metrics)
                if c.eval.every and (self.step % c.eval.every == 0 or self.step == c.optim.max_steps):
                    model = self._unsharded()
                    if self.context.is_main:
                        self.metrics = evaluate(model, c.eval, self.stage.measure)
                        logger.log(self.step, self.metrics, prefix="eval")
                    distributed.barrier(self.context)
                if self.step % c.run.save_every == 0 or self.step in (c.optim.max_steps, stop_at):
                    self.save()
            if self.step < c.optim.max_steps:
                logger.message(f"stopped after {c.run.stop_after} steps at step {self.step}; rerun to resume")
                return 0
            self.stage.finish(self.objective, lambda: self.device_inputs(self.cpu_inputs(self._draws)))
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
        return cpu if self.trainer.context.device.type == "cpu" else pack_pixels(cpu)


class _Counter(torch.utils.data.Sampler):
    def __iter__(self):
        return itertools.count()


def _as_is(item):
    return item
