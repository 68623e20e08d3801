"""The VQ-VAE paths that training and inference share, on transformers' `JanusVQVAE`.

Codes are matched by cosine similarity (l2-normalised latents and codebook, as in LlamaGen/Janus), which
is exactly what `JanusVQVAE.decode` assumes when it normalises codebook entries. `soft_decode` mixes the
normalised codebook with token probabilities: DJO's differentiable path from logits to pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.janus.modeling_janus import JanusVQVAE

from echogen_ros.model import layout_decoder

COMMITMENT = 0.25


def _codebook(vq: JanusVQVAE) -> torch.Tensor:
    return F.normalize(vq.quantize.embedding.weight, dim=-1)  # (V, C)


def encode_latent(vq: JanusVQVAE, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels (B, 3, S, S) in [-1, 1] → l2-normalised latents (B, C, h, w) before quantisation."""
    return F.normalize(vq.quant_conv(vq.encoder(pixels)), dim=1)


def quantize(vq: JanusVQVAE, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels (B, 3, S, S) in [-1, 1] → (tokens (B, N), straight-through latents (B, C, h, w), codebook loss)."""
    return quantize_latent(vq, encode_latent(vq, pixels))


def quantize_latent(vq: JanusVQVAE, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, c, h, w = latent.shape
    flat = latent.permute(0, 2, 3, 1).reshape(-1, c)
    codebook = _codebook(vq)
    with torch.autocast(latent.device.type, enabled=False):  # near-ties: the choice must not depend on autocast
        tokens = (flat.float() @ codebook.float().T).argmax(-1)
    quantized = codebook[tokens].view(b, h, w, c).permute(0, 3, 1, 2)
    loss = F.mse_loss(quantized, latent.detach()) + COMMITMENT * F.mse_loss(latent, quantized.detach())
    return tokens.view(b, h * w), latent + (quantized - latent).detach(), loss


def decode_latent(
    vq: JanusVQVAE, latent: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
) -> torch.Tensor:
    """Latents (B, C, h, w) → pixels (B, 3, S, S) in roughly [-1, 1]; with a layout's objects (labels
    (B, O, D), normalised boxes (B, O, 4); `generation.label_boxes`), a decoder map reads them
    (`layout_decoder`)."""
    return layout_decoder.decode(vq, latent, labels, boxes)


def token_latents(vq: JanusVQVAE, tokens: torch.Tensor) -> torch.Tensor:
    """Image tokens (B, h·w) → their l2-normalised codebook entries (B, C, h, w), as `JanusVQVAE.decode` reads them."""
    b, h, w = tokens.shape[0], *vq.quantize.quant_state_dims
    return _codebook(vq)[tokens].view(b, h, w, -1).permute(0, 3, 1, 2)


@torch.no_grad()
def encode_tokens(vq: JanusVQVAE, pixels: torch.Tensor) -> torch.Tensor:
    """Pixels (B, 3, S, S) → image tokens (B, N) (what L2I learns to produce)."""
    return quantize(vq, pixels)[0]


def soft_decode(
    vq: JanusVQVAE, probs: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
) -> torch.Tensor:
    """Token distributions (B, N, V) → pixels, differentiably (a probability-weighted codebook mix); the
    layout's objects as in `decode_latent`."""
    b, n, _ = probs.shape
    side = int(round(n**0.5))
    mixed = probs.to(vq.quantize.embedding.weight.dtype) @ _codebook(vq)  # (B, N, C)
    return decode_latent(vq, mixed.view(b, side, side, -1).permute(0, 3, 1, 2), labels, boxes)
