"""The vision stage: the vision encoder and aligner trained on dense per-patch targets (which words and which
box each patch shows), then handed over to the language model (`VisionObjective.hand_over`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.generation import image_features
from echogen_training.config import VisionConfig
from echogen_training.data.batches import PatchBatch
from echogen_training.data.device import pixels_to
from echogen_training.stages.base import Metrics, Stage, vision_ids


class VisionObjective(nn.Module):
    """Per-patch word (multi-label) and box heads on the aligned vision features, normalised as the
    language model's input norm sees them. The heads are training-only; the encoder + aligner are kept."""

    MAX_VOCAB = 20_000  # a Janus-Pro vocabulary (100k) comes with a pre-trained encoder: no need for this

    def __init__(self, model: JanusForConditionalGeneration, config: VisionConfig, word_ids: list[int]) -> None:
        super().__init__()
        vocab, width = model.config.text_config.vocab_size, model.config.text_config.hidden_size
        if vocab > self.MAX_VOCAB:
            raise ValueError(f"the vision stage is for from-scratch presets (vocabulary {vocab} > {self.MAX_VOCAB})")
        self.model, self.config, self.word_ids = model, config, word_ids
        self.words = nn.Linear(width, vocab)
        self.box = nn.Linear(width, 4)

    @torch.no_grad()
    def hand_over(self, pixels: torch.Tensor) -> None:
        """Prepare the language model to read the encoder, at the end of the stage:

        - the word classifier's rows become the word embeddings (at the embeddings' own scale): a patch
          showing a red cup and the tokens "red", "cup" then point the same way, so grounding starts with
          expression and image in one space instead of having to align them;
        - the aligner's last layer is rescaled so image features have the word embeddings' norm (the heads
          read layer-normed features, so this loses nothing). Features far larger than the text drown what
          attention adds to them: a patch could not hear the expression.
        """
        embeddings = self.model.get_input_embeddings().weight
        rows = torch.tensor(self.word_ids, device=embeddings.device)
        scale = embeddings[rows].norm(dim=-1).mean()
        classifier = self.words.weight[rows].float()
        embeddings[rows] = (classifier / classifier.norm(dim=-1, keepdim=True) * scale).to(embeddings.dtype)
        features = image_features(self.model, pixels.to(embeddings.dtype))
        factor = scale / features.float().norm(dim=-1).mean()
        aligner = self.model.model.aligner
        last = aligner.hidden_layers[-1] if len(aligner.hidden_layers) else aligner.fc1
        last.weight.mul_(factor.to(last.weight.dtype))
        last.bias.mul_(factor.to(last.bias.dtype))

    def forward(self, batch: PatchBatch) -> tuple[torch.Tensor, Metrics]:
        features = image_features(self.model, batch.pixels)
        features = F.layer_norm(features.float(), features.shape[-1:])
        word_logits = self.words(features).float()
        word_loss = F.binary_cross_entropy_with_logits(word_logits, batch.words, reduction="none").sum(-1).mean()
        present = batch.present
        boxes = self.box(features[present]).float().sigmoid()
        box_loss = F.l1_loss(boxes, batch.boxes[present]) if bool(present.any()) else boxes.sum() * 0
        loss = self.config.word_weight * word_loss + self.config.box_weight * box_loss
        with torch.no_grad():
            hit = ((word_logits > 0) == (batch.words > 0.5)).all(-1)
        metrics = {"word_bce": word_loss.item(), "box_l1": box_loss.item(),
                   "object_patch_acc": hit[present].float().mean().item() if bool(present.any()) else 0.0,
                   "empty_patch_acc": hit[~present].float().mean().item()}  # fmt: skip
        return loss, metrics


class VisionStage(Stage):
    name = "vision"
    uses_generation = False

    def sharding_problem(self) -> str | None:
        return "the vision stage hands its word classifier to the embeddings: run it with ddp"

    def set_trainable(self) -> None:
        vision = vision_ids(self.model)
        for p in self.model.parameters():
            p.requires_grad_(id(p) in vision)

    def objective(self) -> nn.Module:
        scheme = self.echogen.scheme
        named = set(scheme.special.values()) | set(range(scheme.bin_offset, scheme.bin_offset + scheme.bins))
        words = [i for i in range(self.model.config.text_config.vocab_size) if i not in named]
        return VisionObjective(self.model, self.config.vision, words)

    def extra_modules(self, objective: nn.Module) -> dict[str, nn.Module]:
        return {"vision_heads": nn.ModuleDict({"words": objective.words, "box": objective.box})}

    def cpu_inputs(self, records, step: int) -> dict:
        grid = self.echogen.vision_size // self.model.config.vision_config.patch_size
        vocab, c = self.model.config.text_config.vocab_size, self.config.vision
        return {"batch": self.batcher.patches(records, grid, vocab, c.decolour, c.recolour)}

    def device_inputs(self, cpu: dict, device: torch.device, step: int) -> dict:
        patches = cpu["batch"]
        moved = {f.name: getattr(patches, f.name).to(device, non_blocking=True)
                 for f in dataclasses.fields(patches) if f.name != "pixels"}  # fmt: skip
        return {"batch": PatchBatch(pixels=pixels_to(patches.pixels, device), **moved)}

    def finish(self, objective: nn.Module, next_inputs: Callable[[], dict]) -> None:
        objective.hand_over(next_inputs()["batch"].pixels)

    def measure(self, echogen: EchoGen, samples: list) -> Metrics:
        return self.spread(echogen, samples)
