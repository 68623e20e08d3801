"""Teacher-forced forward passes of both tasks on a Janus model (what every stage's loss is built on)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import vq
from echogen_ros.model.generation import (
    decoder_layout,
    embed,
    hidden_states,
    image_features,
    image_token_inputs,
    layout_map,
)
from echogen_training.data.batches import IGNORE, I2LBatch, Sequences


@torch.no_grad()
def through_tokenizer(
    model: JanusForConditionalGeneration,
    pixels: torch.Tensor,
    rows: torch.Tensor,
    size: int,
    layouts: list[list[tuple[list[int], Sequence[float]]]] | None = None,
) -> torch.Tensor:
    """`pixels` (I, 3, Sv, Sv) in [-1, 1] with the frames where `rows` is true replaced by what the image
    tokenizer makes of them: area-scaled to the generation size `size`, encoded to the nearest codes, decoded
    and scaled back up (bilinear), the way an imagined scene reaches the grounder. `layouts` (per frame: its
    objects' (label ids, normalised box)) reach a decoder map (`layout_decoder`), as an imagined scene's
    layout does; without a decoder map they are unused."""
    if rows.shape != pixels.shape[:1] or rows.dtype != torch.bool:
        raise ValueError(f"rows must be a bool mask of the {pixels.shape[0]} frames, got {tuple(rows.shape)}")
    if layouts is not None and len(layouts) != pixels.shape[0]:
        raise ValueError(f"layouts must hold one layout per frame ({pixels.shape[0]}), got {len(layouts)}")
    vqmodel = model.model.vqmodel
    small = F.interpolate(pixels[rows].float(), size=(size, size), mode="area")
    latent = vq.quantize(vqmodel, small.to(next(vqmodel.parameters()).dtype))[1]
    chosen = None if layouts is None else [layouts[i] for i in rows.nonzero().flatten().tolist()]
    labels, boxes = decoder_layout(model, chosen)
    decoded = vq.decode_latent(vqmodel, latent, labels, boxes).float().clamp(-1, 1)
    shown = pixels.clone()
    shown[rows] = F.interpolate(decoded, size=pixels.shape[-2:], mode="bilinear", align_corners=False).to(pixels.dtype)
    return shown


def i2l_loss(
    model: JanusForConditionalGeneration,
    batch: I2LBatch,
    features: torch.Tensor | None = None,
    pointer: nn.Module | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy of the box tokens (through the LM head) and the exact-token accuracy.

    `features` (I, N, D) replaces encoding `batch.pixels` (DJO passes features of generated images).
    With a `pointer` head (hidden → 1 logit), also the pointer loss and accuracy: a softmax over the image
    tokens' final hidden states must pick the patch holding the target's centre. It supervises the step
    grounding hinges on (which patch is the referred object) densely; the head is training-only.
    """
    seq = batch.seq
    if features is None:
        features = image_features(model, batch.pixels)
    loss, accuracy, hidden = token_loss(model, seq, features[batch.image_index])
    if pointer is None:
        return loss, accuracy
    rows = hidden.shape[0]
    image = hidden[seq.ids == model.config.image_token_id].view(rows, -1, hidden.shape[-1])
    scores = pointer(image).squeeze(-1).float()  # (B, N)
    aimed = batch.patch != IGNORE  # rows with a target (a no-target row has no patch to point at)
    if not bool(aimed.any()):
        return loss, accuracy.detach(), scores.sum() * 0.0, scores.new_tensor(0.0)
    pointer_loss = F.cross_entropy(scores[aimed], batch.patch[aimed])
    pointer_acc = (scores[aimed].argmax(-1) == batch.patch[aimed]).float().mean()
    return loss, accuracy.detach(), pointer_loss, pointer_acc.detach()


def category_loss(head: nn.Module, features: torch.Tensor, categories: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Cross-entropy and accuracy of a linear `head` naming, from each patch's image feature (I, N, D; layer-normed
    as the vision stage's heads read them), the category of the object centred there (`categories` (I, N), IGNORE
    where none is: `batches.patch_categories`). It asks the features the language model reads to say what every
    object is, small ones too, which the grounding loss alone does not (docs/benchmarks.md, 2026-12-07)."""
    if categories.shape != features.shape[:2]:
        wanted = tuple(features.shape[:2])
        raise ValueError(f"categories {tuple(categories.shape)} must name each of the features' {wanted} patches")
    named = categories != IGNORE
    logits = head(F.layer_norm(features.float(), features.shape[-1:])).float()
    if not bool(named.any()):
        return logits.sum() * 0.0, logits.new_tensor(0.0)
    loss = F.cross_entropy(logits[named], categories[named])
    return loss, (logits[named].argmax(-1) == categories[named]).float().mean().detach()


def token_loss(
    model: JanusForConditionalGeneration, seq: Sequences, features: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy (through the LM head) of the labelled tokens of left-padded rows that read image
    `features` (B, N, D) at their `<image>` tokens, the exact-token accuracy, and the final hidden states
    (B, T, D): the grounding and inventory losses both."""
    hidden = hidden_states(model, embed(model, seq.ids, features), seq.mask, seq.positions)
    logits = model.lm_head(hidden[:, :-1]).float()
    labels = seq.labels[:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)
    scored = labels != IGNORE
    accuracy = (logits.argmax(-1)[scored] == labels[scored]).float().mean()
    return loss, accuracy.detach(), hidden


def l2i_logits(model: JanusForConditionalGeneration, prompts: Sequences, tokens: torch.Tensor) -> torch.Tensor:
    """Image-token logits (B, N, codebook) for left-padded prompts followed by `tokens` (B, N)."""
    batch, count = tokens.shape
    prompt = embed(model, prompts.ids)
    images = image_token_inputs(model, tokens[:, :-1], 1, layout_map(model, prompts.ids), prompt.dtype)
    embeds = torch.cat([prompt, images], dim=1)
    mask = torch.cat([prompts.mask, prompts.mask.new_ones(batch, count - 1)], dim=1)
    steps = torch.arange(1, count, device=tokens.device).expand(batch, -1)
    positions = torch.cat([prompts.positions, prompts.positions[:, -1:] + steps], dim=1)
    hidden = hidden_states(model, embeds, mask, positions)
    start = prompts.ids.shape[1] - 1  # the last prompt position predicts the first image token
    return model.model.generation_head(hidden[:, start : start + count]).float()


def l2i_loss(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
    return loss, (logits.argmax(-1) == tokens).float().mean().detach()


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (B, N) of `tokens` under `logits` (B, N, V)."""
    return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
