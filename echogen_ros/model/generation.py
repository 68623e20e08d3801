"""The two decoding loops on a Janus model, as plain functions (no state beyond the KV cache).

- `decode_boxes`: I2L greedy decoding of the four box-bin tokens (constrained to bins), batched with
  left padding, and the probability of the no-target answer in place of the first bin; `beam_boxes`: the k
  best boxes of one prompt, each coordinate a peak of its bin distribution (so the k are different
  readings, not one box shifted by a bin). Both also give each coordinate below bin
  resolution (`refine`).
- `generate_image_tokens`: L2I sampling of image tokens through the generation head with
  classifier-free guidance (conditional and unconditional prompts in one batch of two), on
  `draw_image_tokens`, the free-running loop that DJO also draws its differentiable samples with.

Image-token positions (an EchoGen option, off in Janus): when the model config carries
`image_positions` ({grid, bin_offset, bins}), the input that predicts image token k also gets the
embeddings of the coordinate-bin tokens of token k's cell centre (x and y), the same tokens layouts
write boxes with, so "where am I drawing" and "where does the layout put the cup" meet in one space.

Layout map (an EchoGen option, off in Janus): when the config carries `layout_map` ({grid, bin_offset,
bins, ref, ref_end, box, box_end}), the input that predicts image token k also gets, for every object of
the prompt, the mean embedding of its label's words times the fraction of token k's cell its box covers.
It is read from the prompt's own tokens, so an unconditional (all-`<pad>`) prompt gets none: classifier-free
guidance and condition dropout need nothing extra. Attention alone has to learn "x1 <= my x < x2" from bin
embeddings; the map hands every cell what the layout puts there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache, JanusForConditionalGeneration

from echogen_ros.model import layout_decoder, vq
from echogen_ros.model.layout_decoder import box_cover
from echogen_ros.model.pixels import to_uint8
from echogen_ros.model.scheme import BOX, BOX_END, REF, REF_END, TokenScheme

BOX_TOKENS = 4
# Sub-bin coordinates: the probability-weighted mean of the bin centres within REFINE_BINS bins of the chosen
# (most probable) bin. On the world's test split (seen compositions; held-out scenes not used to choose it),
# ±1, 2, 4, 8 bins lifted a model's mAcc (runs/rec_G) from 0.598 to 0.622, 0.630, 0.631, 0.631; all 128 bins
# (the full mean) fell to 0.507, pulled by far-off modes. See docs/benchmarks.md.
REFINE_BINS = 4


def image_features(model: JanusForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) in [-1, 1] → aligned vision features (B, N, D)."""
    return model.model.get_image_features(pixels).pooler_output


def embed(
    model: JanusForConditionalGeneration, ids: torch.Tensor, features: torch.Tensor | None = None
) -> torch.Tensor:
    """Token ids (B, T) → embeddings (B, T, D), with `<image>` positions replaced by `features`."""
    embeds = model.get_input_embeddings()(ids)
    if features is not None:
        mask = (ids == model.config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(mask, features.to(embeds.dtype))
    return embeds


def hidden_states(
    model: JanusForConditionalGeneration,
    embeds: torch.Tensor,
    mask: torch.Tensor | None = None,
    positions: torch.Tensor | None = None,
    cache: DynamicCache | None = None,
) -> torch.Tensor:
    out = model.model.language_model(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, cache=cache, use_cache=cache is not None
    )
    return out.last_hidden_state


def set_generation_grid(model: JanusForConditionalGeneration, grid: int) -> None:
    """Make the VQ decode `grid` × `grid` codes. Janus ties its VQ grid to the vision patch grid (JanusConfig
    resets `vq_config.num_patches` to the encoder's on every load), so a model whose tokenizer writes a finer
    grid than its encoder reads (the manifest's `generation_tokens`) is set after construction."""
    model.config.vq_config.num_patches = grid
    model.model.vqmodel.quantize.quant_state_dims = [grid, grid]


def image_positions(model: JanusForConditionalGeneration) -> torch.Tensor | None:
    """(N, D) position inputs of the N image tokens in raster order, or None when the model has none."""
    spec = getattr(model.config, "image_positions", None)
    if not spec:
        return None
    grid, offset, bins = int(spec["grid"]), int(spec["bin_offset"]), int(spec["bins"])
    embeddings = model.get_input_embeddings()
    device = embeddings.weight.device
    cells = ((torch.arange(grid, device=device) + 0.5) / grid * bins).long().clamp(max=bins - 1) + offset
    return embeddings(cells.repeat(grid)) + embeddings(cells.repeat_interleave(grid))  # x varies fastest


def enable_image_positions(model: JanusForConditionalGeneration, scheme: TokenScheme) -> None:
    """Switch image-token positions on (for a model about to be trained with them; saved in config.json)."""
    grid = round(scheme.generation_tokens**0.5)
    model.config.image_positions = {"grid": grid, "bin_offset": scheme.bin_offset, "bins": scheme.bins}


def layout_map(model: JanusForConditionalGeneration, ids: torch.Tensor) -> torch.Tensor | None:
    """(B, N, D) layout-map inputs of the N image tokens for L2I prompts `ids` (B, T), or None when the
    model has no layout map. Objects are parsed from `<ref> words </ref> <box> 4 bins </box>` runs."""
    spec = getattr(model.config, "layout_map", None)
    if not spec:
        return None
    grid, offset, bins = int(spec["grid"]), int(spec["bin_offset"]), int(spec["bins"])
    rows = [_layout_objects(row, spec, offset, bins) for row in ids.tolist()]
    labels, boxes = label_boxes(model, rows)  # (B, O, D), (B, O, 4)
    if labels.shape[1] == 0:
        return labels.new_zeros(ids.shape[0], grid * grid, labels.shape[2])
    cover = box_cover(boxes, grid).to(labels.dtype)  # (B, O, N)
    return torch.einsum("bon,bod->bnd", cover, labels)


def label_boxes(
    model: JanusForConditionalGeneration, rows: list[list[tuple[list[int], Sequence[float]]]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's layout objects as (label word ids, normalised box) → (labels (B, O, D): each label's mean
    word embedding, boxes (B, O, 4)), padded to the longest row with zero labels and zero boxes (which cover
    nothing): how the layout map and the decoder map (`layout_decoder`) read a layout."""
    embeddings = model.get_input_embeddings()
    device, width = embeddings.weight.device, embeddings.weight.shape[1]
    count = max((len(r) for r in rows), default=0)
    if count == 0:
        return embeddings.weight.new_zeros(len(rows), 0, width), torch.zeros(len(rows), 0, 4, device=device)
    words = max(len(label) for r in rows for label, _ in r)
    label_ids = torch.zeros(len(rows), count, words, dtype=torch.long)
    word_mask = torch.zeros(len(rows), count, words)
    boxes = torch.zeros(len(rows), count, 4)
    for i, objects in enumerate(rows):
        for j, (label, box) in enumerate(objects):
            label_ids[i, j, : len(label)] = torch.tensor(label)
            word_mask[i, j, : len(label)] = 1
            boxes[i, j] = torch.tensor(list(box))
    word_mask = word_mask.to(device)
    labels = (embeddings(label_ids.to(device)) * word_mask[..., None]).sum(2)
    labels = labels / word_mask.sum(2, keepdim=True).clamp(min=1)  # padding objects are 0
    return labels, boxes.to(device)


def _layout_objects(row: list[int], spec: dict, offset: int, bins: int) -> list[tuple[list[int], list[float]]]:
    """(label ids, normalised box from bin centres) of every well-formed object run in a prompt row."""
    ref, ref_end, box, box_end = (int(spec[k]) for k in ("ref", "ref_end", "box", "box_end"))
    objects, i = [], 0
    while i < len(row):
        if row[i] != ref:
            i += 1
            continue
        try:
            close = row.index(ref_end, i + 1)
        except ValueError:
            break
        coords = row[close + 2 : close + 6]
        if (
            close + 6 < len(row)
            and row[close + 1] == box
            and row[close + 6] == box_end
            and all(offset <= t < offset + bins for t in coords)
            and close > i + 1
        ):
            objects.append((row[i + 1 : close], [(t - offset + 0.5) / bins for t in coords]))
            i = close + 7
        else:
            i = close + 1
    return objects


def enable_layout_map(model: JanusForConditionalGeneration, scheme: TokenScheme) -> None:
    """Switch the layout map on (for a model about to be trained with it; saved in config.json)."""
    s = scheme.special
    model.config.layout_map = {
        "grid": round(scheme.generation_tokens**0.5), "bin_offset": scheme.bin_offset, "bins": scheme.bins,
        "ref": s[REF], "ref_end": s[REF_END], "box": s[BOX], "box_end": s[BOX_END],
    }  # fmt: skip


def _bin_probs(
    model: JanusForConditionalGeneration, scheme: TokenScheme, hidden: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities of the bin tokens (B, bins) under the full vocabulary softmax, and of the no-target
    token (B,) under the same softmax."""
    probs = model.lm_head(hidden).float().softmax(-1)
    return probs[:, scheme.bin_offset : scheme.bin_offset + scheme.bins], probs[:, scheme.no_target]


def refine(probs: torch.Tensor, best: torch.Tensor, window: int = REFINE_BINS) -> torch.Tensor:
    """Bin probabilities (B, bins) and chosen bins (B,) → normalised coordinates (B,): the probability-weighted
    mean of the bin centres within `window` of the chosen bin (0: its centre; no data-dependent shapes:
    exportable)."""
    bins = probs.shape[-1]
    index = torch.arange(bins, device=probs.device)
    # comparisons, not abs() of integers (TensorRT 8.5 has no integer abs)
    near = (index[None] >= best[:, None] - window) & (index[None] <= best[:, None] + window)
    weights = probs * near.to(probs.dtype)
    centres = (index.to(probs.dtype) + 0.5) / bins
    total = weights.sum(-1)
    chosen = (best.to(probs.dtype) + 0.5) / bins
    # if every bin's probability underflowed (mass on non-bin tokens, or FP16), the chosen bin's centre
    return torch.where(total > 0, (weights * centres).sum(-1) / total.clamp_min(1e-30), chosen)


def decode_boxes(
    model: JanusForConditionalGeneration,
    scheme: TokenScheme,
    embeds: torch.Tensor,
    mask: torch.Tensor,
    window: int = REFINE_BINS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy box tokens (B, 4), their probabilities (B, 4), the normalised coordinates (B, 4) refined over
    `window` bins, and the probability (B,) of the empty box (`scheme.NO_TARGET` in place of the first bin:
    no object is what the prompt names), for left-padded prompts. The box is decoded either way: a caller
    decides what an absent probability means."""
    cache = DynamicCache(config=model.config.text_config)
    if bool(mask.all()):  # no padding: let the model build its causal mask (faster)
        mask = positions = None
    else:
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = hidden_states(model, embeds, mask, positions, cache)[:, -1]
    tokens, probs, coords, absent = [], [], [], None
    for step in range(BOX_TOKENS):
        p, empty = _bin_probs(model, scheme, hidden)
        absent = empty if absent is None else absent
        best = p.argmax(-1)
        tokens.append(best + scheme.bin_offset)
        probs.append(p.gather(1, best[:, None])[:, 0])
        coords.append(refine(p, best, window))
        if step == BOX_TOKENS - 1:
            break
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            positions = positions[:, -1:] + 1
        step_embeds = model.get_input_embeddings()(tokens[-1][:, None])
        hidden = hidden_states(model, step_embeds, mask, positions, cache)[:, -1]
    return torch.stack(tokens, 1), torch.stack(probs, 1), torch.stack(coords, 1), absent


def bin_peaks(probs: torch.Tensor, window: int = REFINE_BINS) -> torch.Tensor:
    """Bin probabilities (B, bins) → (B, bins) bool: the bins with some probability that are at least as probable
    as every bin within `window` either side (the modes a coordinate could be read at; both bins of a tie). The
    most probable bin is always one, even in a row that is all zeros or NaN (an fp16 overflow), so decoding
    always has a candidate."""
    peaks = (probs >= F.max_pool1d(probs[:, None], 2 * window + 1, 1, window)[:, 0]) & (probs > 0)
    return peaks.scatter(1, probs.argmax(-1, keepdim=True), True)


def beam_boxes(
    model: JanusForConditionalGeneration, scheme: TokenScheme, embeds: torch.Tensor, k: int
) -> list[tuple[list[int], float, list[float]]]:
    """`beam_search`'s boxes."""
    return beam_search(model, scheme, embeds, k)[0]


def beam_search(
    model: JanusForConditionalGeneration, scheme: TokenScheme, embeds: torch.Tensor, k: int
) -> tuple[list[tuple[list[int], float, list[float]]], float]:
    """The k most probable box-token sequences of one prompt (1, T, D) whose every coordinate is a peak of its
    bin distribution (the most probable bin within REFINE_BINS either side): (tokens, geometric-mean prob,
    refined normalised coordinates).

    Without the peak rule the k best sequences are one box read k ways (x1 in bin 40, 41 or 39: the
    neighbours of a sure bin carry most of the rest of its mass, and `refine` folds them in anyway); with it
    a runner-up is another reading: the second of two red cups, or the cup a vague expression may also mean.
    Each step's most probable bin is always a candidate, so one beam is greedy decoding. The prompt runs once;
    its KV cache is then reordered to the surviving beams' parents at each step (a beam search's usual
    bookkeeping), so a step costs one token per beam. Also the no-target probability (`decode_boxes`)."""
    cache = DynamicCache(config=model.config.text_config)
    hidden = hidden_states(model, embeds, cache=cache)[:, -1]  # (1, D): the prompt, once
    beams: list[tuple[list[int], float, list[float]]] = [([], 0.0, [])]
    absent = None
    for step in range(BOX_TOKENS):
        probs, empty = _bin_probs(model, scheme, hidden)  # (len(beams), bins)
        absent = float(empty[0]) if absent is None else absent
        logs = probs.clamp_min(1e-30).log().masked_fill(~bin_peaks(probs), -math.inf)
        top = logs.topk(min(k, scheme.bins), dim=-1)
        width = top.indices.shape[1]  # every beam's candidates refined in one call
        refined = refine(probs.repeat_interleave(width, 0), top.indices.reshape(-1)).view(len(beams), width)
        candidates = [
            (parent, tokens + [scheme.bin_offset + int(j)], total + float(v), [*coords, float(c)])
            for parent, ((tokens, total, coords), values, indices, near) in enumerate(
                zip(beams, top.values, top.indices, refined)
            )
            for v, j, c in zip(values, indices, near)
            if float(v) != -math.inf  # fewer peaks than k: the rest are no candidates
        ]
        chosen = sorted(candidates, key=lambda c: -c[2])[:k]
        beams = [(tokens, total, coords) for _, tokens, total, coords in chosen]
        if step == BOX_TOKENS - 1:
            break
        cache.reorder_cache(torch.tensor([parent for parent, *_ in chosen], device=embeds.device))
        last = torch.tensor([[tokens[-1]] for tokens, _, _ in beams], device=embeds.device)
        hidden = hidden_states(model, model.get_input_embeddings()(last), cache=cache)[:, -1]
    return [(tokens, math.exp(total / BOX_TOKENS), coords) for tokens, total, coords in beams], absent


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: the logits image tokens are drawn from (over the temperature), u + g·(c − u),
    from the conditional and unconditional prompts' logits. Sampling and Cycle RL's log-probabilities both."""
    return uncond + guidance * (cond - uncond)


def code_embeddings(model: JanusForConditionalGeneration, tokens: torch.Tensor) -> torch.Tensor:
    """Image tokens (B, n) → their generation inputs (B, n, D); weights over the codebook (B, n, V) → the
    inputs of the weighted mix of code embeddings (DJO's straight-through one-hots: a token's input in value,
    differentiable in the weights)."""
    if not tokens.is_floating_point():
        return model.prepare_embeddings_for_image_generation(tokens)
    table = model.model.generation_embeddings.weight
    return model.model.generation_aligner(tokens.to(table.dtype) @ table)


def image_token_inputs(
    model: JanusForConditionalGeneration,
    tokens: torch.Tensor,
    first: int,
    maps: torch.Tensor | None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The inputs (B, n, D) that follow image tokens (B, n), the first of them image token `first - 1`: each
    token's embedding (cast to `dtype`), plus, where the model has them, the position (`image_positions`) and
    the layout's share (`maps`, from `layout_map`) of the token it predicts (`first`, `first + 1`, ...). One
    definition for sampling (`generate_image_tokens`, a token at a time) and teacher forcing (training).
    `tokens` may also be weights over the codebook (B, n, V) (`code_embeddings`)."""
    embeds = code_embeddings(model, tokens)
    embeds = embeds.to(dtype) if dtype is not None else embeds
    cells, span = image_positions(model), slice(first, first + tokens.shape[1])
    if cells is not None:
        embeds = embeds + cells[span].to(embeds.dtype)
    if maps is not None:
        embeds = embeds + maps[:, span].to(embeds.dtype)
    return embeds


def generate_image_tokens(
    model: JanusForConditionalGeneration,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    count: int,
    guidance: float,
    temperature: float,
    generator: torch.Generator,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample `count` image tokens (B, count) for B layout prompts with classifier-free guidance.

    `cond` and `uncond` are (B, T) and share the left-padding `mask` (an unconditional prompt has its
    conditional twin's length); None means no padding.
    """

    def sample(logits: torch.Tensor) -> torch.Tensor:
        if temperature <= 0:
            return logits.argmax(-1, keepdim=True)
        probs = (logits / temperature).softmax(-1)
        return torch.multinomial(probs.cpu(), 1, generator=generator).to(logits.device)

    return torch.cat(draw_image_tokens(model, cond, uncond, count, guidance, sample, mask), dim=1)


def draw_image_tokens(
    model: JanusForConditionalGeneration,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    count: int,
    guidance: float,
    draw: Callable[[torch.Tensor], torch.Tensor],
    mask: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The image-token loop, free-running: `draw` turns each step's guided logits (B, V) into the token drawn,
    ids (B, 1) or weights over the codebook (B, 1, V), which is the next step's input; the `count` draws, in
    order. `uncond` None: the conditional prompts alone (their logits, `guidance` unused). Differentiable
    when called with gradients on (DJO draws straight-through one-hots)."""
    batch = cond.shape[0]
    cache = DynamicCache(config=model.config.text_config)
    halves = 1 if uncond is None else 2
    ids = cond if uncond is None else torch.cat([cond, uncond])
    positions = None
    if mask is not None:
        mask = mask.repeat(halves, 1)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    hidden = hidden_states(model, embed(model, ids), mask, positions, cache)[:, -1]
    maps = layout_map(model, ids)  # (halves·B, N, D): the unconditional half's prompts have no objects
    tokens = []
    for _ in range(count):
        logits = model.model.generation_head(hidden).float()  # (halves·B, codebook)
        if uncond is not None:
            logits = guided_logits(logits[:batch], logits[batch:], guidance)
        tokens.append(draw(logits))  # (B, 1) or (B, 1, V)
        if len(tokens) == count:
            break
        step = image_token_inputs(model, torch.cat([tokens[-1]] * halves), len(tokens), maps)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(halves * batch, 1)], dim=1)
            positions = positions[:, -1:] + 1
        hidden = hidden_states(model, step, mask, positions, cache)[:, -1]
    return tokens


def decoder_layout(
    model: JanusForConditionalGeneration, layouts: list[list[tuple[list[int], Sequence[float]]]] | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """What the VQ decoder reads of `layouts`: their `label_boxes` when the model has a decoder map
    (`layout_decoder`); (None, None), computing nothing, without one or without layouts."""
    if layouts is None or getattr(model.model.vqmodel, "decoder_map", None) is None:
        return None, None
    return label_boxes(model, layouts)


def decode_image(
    model: JanusForConditionalGeneration,
    tokens: torch.Tensor,
    layouts: list[list[tuple[list[int], Sequence[float]]]] | None = None,
) -> torch.Tensor:
    """Image tokens (B, N) → RGB uint8 (B, S, S, 3). `layouts` (per row: the layout's (label ids, normalised
    box) objects) reach the decoder when the model has a decoder map (`layout_decoder`); otherwise unused."""
    vqmodel = model.model.vqmodel
    labels, boxes = decoder_layout(model, layouts)
    if labels is not None:
        pixels = layout_decoder.decode(vqmodel, vq.token_latents(vqmodel, tokens), labels, boxes)
        pixels = pixels.permute(0, 2, 3, 1).float()
    else:
        pixels = model.decode_image_tokens(tokens).float()  # (B, S, S, 3) in [-1, 1]
    return to_uint8(pixels)
