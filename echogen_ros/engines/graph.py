"""The grounding path as one exportable module: pixels + prompt ids → four box tokens, their
probabilities, the refined (sub-bin) coordinates and the no-target probability. Prefill once, then an
unrolled 3-step decode over an explicit key/value cache, using the weights of the HF Janus model (no HF
cache objects, no Python control flow on data: ONNX/TensorRT-ready).

Same computation as `EchoGen.ground_many` (greedy over the bin tokens); parity is tested.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import JanusForConditionalGeneration

from echogen_ros.model.generation import BOX_TOKENS, refine
from echogen_ros.model.scheme import TokenScheme

NEG = -1e9  # additive mask value (finite: fp16-safe after scaling)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class GroundingGraph(nn.Module):
    """forward(pixels (P, 3, S, S) float, ids (B, T) int64, mask (B, T) int64) → tokens (B, 4) int64,
    probs (B, 4) float, coords (B, 4) float (normalised x1 y1 x2 y2, `generation.refine`), absent (B,)
    float (the no-target token's probability in place of the first bin, as `generation.decode_boxes`).

    P is 1 (one image, many expressions) or B. Prompts are left-padded (mask 0 on the left).
    """

    def __init__(self, model: JanusForConditionalGeneration, scheme: TokenScheme) -> None:
        super().__init__()
        self.model = model
        self.lm = model.model.language_model
        self.image_token = int(model.config.image_token_id)
        self.bin_offset, self.bins, self.no_target = scheme.bin_offset, scheme.bins, scheme.no_target
        text = model.config.text_config
        self.heads, self.kv_heads = text.num_attention_heads, text.num_key_value_heads
        self.head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads

    def forward(
        self, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = ids.shape[0]
        features = self.model.model.get_image_features(pixels).pooler_output  # (P, N, D)
        features = features.expand(batch, -1, -1)
        embeds = self._embed(ids, features)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = mask.bool()
        causal = torch.ones(ids.shape[1], ids.shape[1], dtype=torch.bool, device=ids.device).tril()
        allowed = causal[None, None] & keep[:, None, None, :]
        hidden, cache = self._layers(embeds, positions, allowed, None)
        tokens, probs, coords, absent = [], [], [], None
        last = positions[:, -1:]
        for step in range(BOX_TOKENS):
            token, prob, coord, empty = self._pick(hidden[:, -1])
            absent = empty if absent is None else absent
            tokens.append(token)
            probs.append(prob)
            coords.append(coord)
            if step == BOX_TOKENS - 1:
                break
            last = last + 1
            keep = torch.cat([keep, torch.ones_like(keep[:, :1])], dim=1)
            hidden, cache = self._layers(self.lm.embed_tokens(token[:, None]), last, keep[:, None, None, :], cache)
        return torch.stack(tokens, 1), torch.stack(probs, 1), torch.stack(coords, 1), absent

    def _embed(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        text = self.lm.embed_tokens(ids)
        is_image = ids == self.image_token
        index = (is_image.long().cumsum(-1) - 1).clamp(min=0)  # k-th <image> token takes feature k
        gathered = features.gather(1, index[..., None].expand(-1, -1, features.shape[-1]))
        return torch.where(is_image[..., None], gathered.to(text.dtype), text)

    def _pick(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        every = self.model.lm_head(self.lm.norm(hidden)).float().softmax(-1)
        probs = every[:, self.bin_offset : self.bin_offset + self.bins]
        best = probs.argmax(-1)
        chosen = probs.gather(1, best[:, None])[:, 0]
        return best + self.bin_offset, chosen, refine(probs, best), every[:, self.no_target]

    def _layers(self, x, positions, allowed, cache):
        cos, sin = self.lm.rotary_emb(x, positions)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, d)
        new_cache = []
        for i, layer in enumerate(self.lm.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            shape = (*h.shape[:2], -1, self.head_dim)
            q = attn.q_proj(h).view(shape).transpose(1, 2)
            k = attn.k_proj(h).view(shape).transpose(1, 2)
            v = attn.v_proj(h).view(shape).transpose(1, 2)
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
            if cache is not None:
                k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
            new_cache.append((k, v))
            if self.kv_heads != self.heads:
                k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
                v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            scores = scores.masked_fill(~allowed, NEG)
            out = scores.softmax(-1) @ v
            x = x + attn.o_proj(out.transpose(1, 2).reshape(*x.shape[:2], -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return x, new_cache
