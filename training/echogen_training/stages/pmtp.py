"""The PMTP stage (parallel multi-task pre-training): layout→image and image→layout batches in one step,
sharing the layout tokens; `pmtp.schedule=alternate` is the naive joint-training ablation (a task per step).
The `inventory` task (image → every object, `scheme.inventory_prompt`) rides with the grounding batch: it
lists the frames that batch shows as recorded (their image features computed once) and frames of its own."""

from __future__ import annotations

import torch
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import inventory, vq
from echogen_ros.model.generation import image_features
from echogen_ros.world.catalog import CATEGORIES
from echogen_training.config import PMTP_TASKS, ConfigError, PMTPConfig, TrainConfig
from echogen_training.data.batches import I2LBatch, InventoryBatch, L2IBatch
from echogen_training.data.device import batch_to
from echogen_training.forward import category_loss, i2l_loss, l2i_logits, l2i_loss, through_tokenizer, token_loss
from echogen_training.stages.base import Metrics, Stage, refuse_vision_only, vision_ids


class PMTPObjective(nn.Module):
    """L2I and I2L batches in parallel, sharing layout tokens (weights per task; ablations drop one)."""

    def __init__(self, model: JanusForConditionalGeneration, config: PMTPConfig, image_size: int) -> None:
        super().__init__()
        self.model, self.config = model, config
        self.image_size = image_size  # the generation size, to which pmtp.tokenized scales grounding frames
        hidden = model.config.text_config.hidden_size
        self.pointer = nn.Linear(hidden, 1) if config.pointer_weight > 0 and "i2l" in config.tasks else None
        self.categories = None  # training-only, as the pointer
        if config.category_weight > 0 and "i2l" in config.tasks:
            # at zero, the head learns before its gradient reaches the encoder: a random head's would be noise there
            self.categories = nn.Linear(hidden, len(CATEGORIES))
            nn.init.zeros_(self.categories.weight)
            nn.init.zeros_(self.categories.bias)

    def forward(
        self, l2i: L2IBatch | None, i2l: I2LBatch | None, inventory: InventoryBatch | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        loss, metrics = torch.zeros((), device=self.model.device), {}
        if l2i is not None and "l2i" in self.config.tasks:
            tokens = vq.encode_tokens(self.model.model.vqmodel, l2i.gen_pixels)
            l2i_ce, l2i_acc = l2i_loss(l2i_logits(self.model, l2i.seq, tokens), tokens)
            loss = loss + self.config.l2i_weight * l2i_ce
            metrics.update(l2i_ce=l2i_ce.item(), l2i_acc=l2i_acc.item())
        grounding = i2l is not None and "i2l" in self.config.tasks
        if grounding and i2l.tokenized is not None and bool(i2l.tokenized.any()):
            i2l.pixels = through_tokenizer(self.model, i2l.pixels, i2l.tokenized, self.image_size, i2l.layouts)
        features = None  # the grounding frames' features, when the inventory shares them
        if inventory is not None and "inventory" in self.config.tasks:
            frames = inventory.pixels if not grounding else torch.cat([i2l.pixels, inventory.pixels])
            features = image_features(self.model, frames)
            listing_ce, listing_acc, _ = token_loss(self.model, inventory.seq, features[inventory.image_index])
            loss = loss + self.config.inventory_weight * listing_ce
            metrics.update(inventory_ce=listing_ce.item(), inventory_acc=listing_acc.item())
            features = features[: len(i2l.pixels)] if grounding else None
        if grounding and self.categories is not None and i2l.categories is not None:
            if features is None:  # computed once, for the category head and the grounding loss both
                features = image_features(self.model, i2l.pixels)
            category_ce, category_acc = category_loss(self.categories, features, i2l.categories)
            loss = loss + self.config.category_weight * category_ce
            metrics.update(category_ce=category_ce.item(), category_acc=category_acc.item())
        if grounding:
            if self.pointer is not None:
                i2l_ce, i2l_acc, pointer_ce, pointer_acc = i2l_loss(self.model, i2l, features, self.pointer)
                loss = loss + self.config.pointer_weight * pointer_ce
                metrics.update(pointer_ce=pointer_ce.item(), pointer_acc=pointer_acc.item())
            else:
                i2l_ce, i2l_acc = i2l_loss(self.model, i2l, features)
            loss = loss + self.config.i2l_weight * i2l_ce
            metrics.update(i2l_ce=i2l_ce.item(), i2l_acc=i2l_acc.item())
        return loss, metrics


class PMTPStage(Stage):
    name = "pmtp"

    def __init__(self, config: TrainConfig, echogen, batcher) -> None:
        super().__init__(config, echogen, batcher)
        if "inventory" in config.pmtp.tasks:  # the models it saves say they were trained to list scenes
            echogen.manifest = inventory.with_capability(echogen.manifest)

    @classmethod
    def check(cls, config: TrainConfig) -> None:
        unknown = [task for task in config.pmtp.tasks if task not in PMTP_TASKS]
        if unknown or not config.pmtp.tasks:
            raise ConfigError(f"pmtp.tasks must be some of {', '.join(PMTP_TASKS)}, got {list(config.pmtp.tasks)}")
        if config.pmtp.category_weight > 0 and "i2l" not in config.pmtp.tasks:
            raise ConfigError("pmtp.category_weight names objects in the grounding frames: it needs the i2l task")
        c = config.model
        if c.generation_only and "l2i" not in config.pmtp.tasks:
            raise ConfigError("model.generation_only with pmtp needs the l2i task (pmtp.tasks=[l2i])")
        if c.vision_only:
            if tuple(config.pmtp.tasks) != ("i2l",):
                refuse_vision_only(config)
            if c.generation_only or c.freeze_vision:
                raise ConfigError(
                    "model.vision_only leaves nothing to train with model.generation_only or freeze_vision"
                )

    def set_trainable(self) -> None:
        super().set_trainable()
        if self.config.model.vision_only:
            vision = vision_ids(self.model)
            for p in self.model.parameters():
                p.requires_grad_(id(p) in vision)

    def objective(self) -> nn.Module:
        return PMTPObjective(self.model, self.config.pmtp, self.echogen.image_size)

    def extra_modules(self, objective: nn.Module) -> dict[str, nn.Module]:
        heads = {"pointer": objective.pointer, "categories": objective.categories}
        return {name: head for name, head in heads.items() if head is not None}

    def cpu_inputs(self, records, step: int) -> dict:
        c = self.config.pmtp
        l2i = self.batcher.l2i(records, c.condition_dropout)
        i2l = self.batcher.i2l(records, c.recolour, c.desaturate, c.tokenized, c.no_target, c.no_target_relation,
                               categories=c.category_weight > 0)  # fmt: skip
        listing = None
        if "inventory" in c.tasks:
            listing = self.batcher.inventory(records, i2l if "i2l" in c.tasks else None)
        if c.schedule == "alternate":  # naive joint training: a task per step (the inventory with grounding)
            l2i, i2l, listing = (l2i, None, None) if step % 2 == 0 else (None, i2l, listing)
        return {"l2i": l2i, "i2l": i2l, "inventory": listing}

    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        return {name: batch_to(batch, device) for name, batch in cpu.items()}
