"""One module per stage whose forward returns (loss, metrics): the only thing that differs by stage.

They are nn.Modules so that DDP/FSDP wrap them and gradients synchronise through `forward`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model import vq
from echogen_ros.model.generation import decoder_layout, image_features
from echogen_training.config import CycleRLConfig, DJOConfig, PMTPConfig, VisionConfig, VQConfig
from echogen_training.data.batches import I2LBatch, L2IBatch, PatchBatch, Sequences
from echogen_training.forward import i2l_loss, l2i_logits, l2i_loss, through_tokenizer, token_logprobs
from echogen_training.rewards import grpo_loss

Metrics = dict[str, float]


class PatchDiscriminator(nn.Module):
    """A small PatchGAN critic for the optional adversarial VQ loss (hinge)."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels * 2, 4, 2, 1), nn.GroupNorm(8, channels * 2), nn.LeakyReLU(0.2),
            nn.Conv2d(channels * 2, 1, 3, 1, 1),
        )  # fmt: skip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(pixels)


def detail_weights(pixels: torch.Tensor, strength: float) -> torch.Tensor:
    """1 + strength · local contrast (distance to the 9×9 local mean), normalised to mean 1 per image.

    On tabletop frames most pixels are table; without this, a small VQ learns the table and drops objects.
    """
    if strength <= 0:
        return torch.ones_like(pixels[:, :1])
    contrast = (
        (pixels - F.avg_pool2d(pixels, 9, stride=1, padding=4, count_include_pad=False)).abs().sum(1, keepdim=True)
    )
    weights = 1 + strength * contrast
    return weights / weights.mean(dim=(2, 3), keepdim=True)


def edge_error(recon: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Mean |∂recon − ∂pixels| over horizontal and vertical neighbour differences (a gradient-difference loss).

    Per-pixel L1 pays little for a softened edge: a rounded block corner moves a handful of pixels. This pays
    for every edge pixel whose step is not as sharp as the frame's; flat table costs nothing on either side.
    """
    dx = (recon[..., :, 1:] - recon[..., :, :-1]) - (pixels[..., :, 1:] - pixels[..., :, :-1])
    dy = (recon[..., 1:, :] - recon[..., :-1, :]) - (pixels[..., 1:, :] - pixels[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


class CodeUsage(nn.Module):
    """Dead-code restarts: codes no batch picked during a window of `every` steps are re-seeded with
    encoder latents of the current batch, so the codebook does not collapse onto the table's few colours.
    The hit counts are a buffer, saved with the trainer's checkpoint (resume stays exact)."""

    def __init__(self, codes: int, every: int) -> None:
        super().__init__()
        self.every = every
        self.register_buffer("hits", torch.zeros(codes, dtype=torch.long))
        self.latents: torch.Tensor | None = None

    def observe(self, tokens: torch.Tensor, latent: torch.Tensor) -> None:
        self.hits += torch.bincount(tokens.flatten(), minlength=self.hits.numel())
        self.latents = latent.detach().permute(0, 2, 3, 1).reshape(-1, latent.shape[1]).float()

    @torch.no_grad()
    def restart(self, codebook: torch.Tensor, step: int) -> int:
        """After the optimizer step `step` (0-based): re-seed dead codes at the window's end; returns how many."""
        if self.every <= 0 or (step + 1) % self.every or self.latents is None:
            return 0
        hits = self.hits.clone()
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(hits)
        dead = (hits == 0).nonzero().flatten()
        if dead.numel():
            generator = torch.Generator().manual_seed(step)
            pick = torch.randint(self.latents.shape[0], (dead.numel(),), generator=generator)
            fresh = self.latents[pick].to(codebook.device)
            fresh = fresh + 0.01 * torch.randn(fresh.shape, generator=generator).to(fresh.device)
            if torch.distributed.is_initialized():  # every rank takes rank 0's latents
                torch.distributed.broadcast(fresh, src=0)
            codebook[dead] = fresh.to(codebook.dtype)
        self.hits.zero_()
        return int(dead.numel())


class VQObjective(nn.Module):
    def __init__(self, model: JanusForConditionalGeneration, config: VQConfig) -> None:
        super().__init__()
        self.vq, self.config = model.model.vqmodel, config
        self.discriminator = PatchDiscriminator() if config.adversarial_weight > 0 else None
        self.usage = CodeUsage(self.vq.quantize.embedding.num_embeddings, config.restart_every)

    def after_step(self, step: int) -> Metrics:
        restarted = self.usage.restart(self.vq.quantize.embedding.weight, step)
        return {"codes_restarted": float(restarted)} if restarted else {}

    def forward(
        self, pixels: torch.Tensor, step: int, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Metrics]:
        """`labels`, `boxes`: the frames' layouts (`generation.label_boxes`), for a VQ with a decoder map."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.decoder_only):
            raw = vq.encode_latent(self.vq, pixels)
            tokens, latent, codebook_loss = vq.quantize_latent(self.vq, raw)
        if self.training:
            self.usage.observe(tokens, raw)
        recon = vq.decode_latent(self.vq, latent, labels, boxes)
        error = (recon - pixels).abs() if self.config.reconstruction == "l1" else (recon - pixels).pow(2)
        rec_loss = (detail_weights(pixels, self.config.detail_weight) * error).mean()
        loss = rec_loss + self.config.codebook_weight * codebook_loss
        metrics = {"recon": rec_loss.item(), "codebook": codebook_loss.item(),
                   "codes_used": float(tokens.unique().numel())}  # fmt: skip
        if self.config.edge_weight > 0:
            edge = edge_error(recon, pixels)
            loss = loss + self.config.edge_weight * edge
            metrics["edge"] = edge.item()
        if self.discriminator is not None and step >= self.config.adversarial_start:
            d_loss = (
                F.relu(1 - self.discriminator(pixels)).mean() + F.relu(1 + self.discriminator(recon.detach())).mean()
            )
            frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            g_loss = -torch.func.functional_call(self.discriminator, frozen, (recon,)).mean()
            loss = loss + self.config.adversarial_weight * g_loss + d_loss
            metrics.update(d_loss=d_loss.item(), g_adv=g_loss.item())
        return loss, metrics


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


class PMTPObjective(nn.Module):
    """L2I and I2L batches in parallel, sharing layout tokens (weights per task; ablations drop one)."""

    def __init__(self, model: JanusForConditionalGeneration, config: PMTPConfig, image_size: int) -> None:
        super().__init__()
        self.model, self.config = model, config
        self.image_size = image_size  # the generation size, to which pmtp.tokenized scales grounding frames
        hidden = model.config.text_config.hidden_size
        self.pointer = nn.Linear(hidden, 1) if config.pointer_weight > 0 and "i2l" in config.tasks else None

    def forward(self, l2i: L2IBatch | None, i2l: I2LBatch | None) -> tuple[torch.Tensor, Metrics]:
        loss, metrics = torch.zeros((), device=self.model.device), {}
        if l2i is not None and "l2i" in self.config.tasks:
            tokens = vq.encode_tokens(self.model.model.vqmodel, l2i.gen_pixels)
            l2i_ce, l2i_acc = l2i_loss(l2i_logits(self.model, l2i.seq, tokens), tokens)
            loss = loss + self.config.l2i_weight * l2i_ce
            metrics.update(l2i_ce=l2i_ce.item(), l2i_acc=l2i_acc.item())
        if i2l is not None and "i2l" in self.config.tasks:
            if i2l.tokenized is not None and bool(i2l.tokenized.any()):
                i2l.pixels = through_tokenizer(self.model, i2l.pixels, i2l.tokenized, self.image_size, i2l.layouts)
            if self.pointer is not None:
                i2l_ce, i2l_acc, pointer_ce, pointer_acc = i2l_loss(self.model, i2l, pointer=self.pointer)
                loss = loss + self.config.pointer_weight * pointer_ce
                metrics.update(pointer_ce=pointer_ce.item(), pointer_acc=pointer_acc.item())
            else:
                i2l_ce, i2l_acc = i2l_loss(self.model, i2l)
            loss = loss + self.config.i2l_weight * i2l_ce
            metrics.update(i2l_ce=i2l_ce.item(), i2l_acc=i2l_acc.item())
        return loss, metrics


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
        labels, boxes = decoder_layout(model, l2i.layouts)  # (None, None) without a decoder map
        generated = vq.soft_decode(model.model.vqmodel, soft, labels, boxes).clamp(-1, 1)
        size = model.config.vision_config.image_size
        generated = F.interpolate(generated, size=(size, size), mode="bilinear", align_corners=False)
        features = image_features(model, generated.to(model.dtype))
        rows = [(ids, box) for objects in l2i.layouts for ids, box in objects]
        index = [i for i, objects in enumerate(l2i.layouts) for _ in objects]
        grounding = self.batcher.i2l_rows(rows, generated, index)
        ground_ce, ground_acc = i2l_loss(model, _to(grounding, tokens.device), features)
        c = self.config
        loss = c.l2i_weight * l2i_ce + c.grounding_weight * ground_ce
        metrics = {"l2i_ce": l2i_ce.item(), "l2i_acc": l2i_acc.item(), "djo_ground_ce": ground_ce.item(),
                   "djo_ground_acc": ground_acc.item(), "tau": tau}  # fmt: skip
        if i2l is not None and c.i2l_weight > 0:
            i2l_ce, i2l_acc = i2l_loss(model, i2l)
            loss = loss + c.i2l_weight * i2l_ce
            metrics.update(i2l_ce=i2l_ce.item(), i2l_acc=i2l_acc.item())
        return loss, metrics


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


def _to(batch: I2LBatch, device: torch.device) -> I2LBatch:
    seq = batch.seq
    moved = Sequences(*(t.to(device) for t in (seq.ids, seq.mask, seq.positions, seq.labels)))
    patch = batch.patch.to(device) if batch.patch is not None else None
    return I2LBatch(moved, batch.pixels, batch.image_index.to(device), patch)
