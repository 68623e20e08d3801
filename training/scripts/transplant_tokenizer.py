"""Give a trained model another image tokenizer: the donor's VQ-VAE replaces the model's, with the parts of
the generation path that speak its codes, while everything that grounds stays as it was.

The use: the 8 × 8 tokenizer caps the imagined-scene metrics (docs/benchmarks.md, "the tokenizer is the
ceiling"), and a 16 × 16 one trained alone (`tabletop-fine`, VQ stage only) is past that cap, but a model
trained from scratch around it would have to learn grounding again. EchoGen's encoder grid and VQ grid
are independent, so the trained model's encoder, aligner and language model (all of grounding) are kept
and only generation changes:

- from the donor: the VQ-VAE, the generation embeddings (one per code) and the generation head's last
  layer (one logit per code): what means something only for its codebook;
- kept: the generation aligner (code embedding → language model) and the head's first layer (language
  model → code features), both facing the language model, which already knows what image tokens are for;
- the layout map and image-token positions (when the model has them) move to the donor's grid;
- the manifest's preset becomes the one whose shapes the result has (a `tabletop` model with a
  `tabletop-fine` tokenizer is a `tabletop-fine` model).

`--image-size S` reads the donor's VQ at another resolution. The VQ-VAE is convolutional, so the same weights
write (S / its downsampling)² codes of the same pixel size; a model may be its own donor. The result is the
starting point for a VQ stage at that size (`echogen-train vq model.init=OUT`) and then the generator's
(PMTP), which must learn to write the longer sequence; the language model's position limit grows by as many
tokens as the image gains.

Grounding is unchanged (the same weights answer I2L prompts), and imagining starts from the donor's
untrained logits: continue with PMTP to train the generator on the new codes.

`--res-blocks N` deepens the donor's VQ-VAE to N residual blocks per level (the decoder has N + 1), the added
blocks starting as identities: the same codes and pixels until the VQ stage trains them. With
`vq.decoder_only=true` that is a larger decoder for the codes the generator already writes.

    python training/scripts/transplant_tokenizer.py MODEL DONOR --out DIR [--image-size S] [--res-blocks N]

The output is a full model directory; the manifest records the donor under `training.tokenizer_transplant`
(also written to tokenizer_transplant.json beside it, which ship_model.py --continuation reads). MODEL and
DONOR are not modified, and an --out that already holds a model is refused.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch
from echogen_training import transplants
from transformers.models.janus.modeling_janus import JanusVQVAE

from echogen_ros.model import generation
from echogen_ros.model.checkpoint import CheckpointError
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.presets import PRESETS, downsampling


def compatible(model: EchoGen, donor: EchoGen) -> None:
    """Refuse a donor whose generation path could not be joined to the model's language model: the kept
    aligner and head layer fix the code-embedding width, the head's feature width and the word vocabulary."""
    mine, theirs = model.model.model, donor.model.model
    head, kept_head = theirs.generation_head.vision_head, mine.generation_head.proj_out
    embedding, kept_aligner = theirs.generation_embeddings, mine.generation_aligner.fc1
    checks = {
        "generation embedding width": (embedding.embedding_dim, kept_aligner.in_features),
        "generation head's feature width": (head.in_features, kept_head.out_features),
        "vocabulary": (donor.tokenizer.get_vocab(), model.tokenizer.get_vocab()),
        "box bins": (donor.scheme.bins, model.scheme.bins),
    }  # fmt: skip
    for what, (a, b) in checks.items():
        if a != b:
            shown = "different" if what == "vocabulary" else f"{a}, the model's {b}"
            raise ValueError(f"the donor's {what} is {shown}: not interchangeable")


def preset_of(model: EchoGen) -> str | None:
    """The preset `EchoGen.create` would build this model's shapes from (None: none does)."""
    config = model.model.config
    vision, text, vq = config.vision_config, config.text_config, config.vq_config
    shape = (vision.image_size, vision.patch_size, vision.hidden_size, vision.num_hidden_layers, text.hidden_size,
             text.num_hidden_layers, text.num_attention_heads, text.intermediate_size, vq.base_channels,
             tuple(vq.channel_multiplier), vq.num_res_blocks, vq.num_embeddings, model.image_size)  # fmt: skip
    for name, p in PRESETS.items():
        if shape == (p.vision_size, p.patch, p.vision_hidden, p.vision_layers, p.hidden, p.layers, p.heads,
                     p.intermediate, p.vq_channels, tuple(p.vq_multipliers), p.vq_res_blocks, p.codebook,
                     p.image_size):  # fmt: skip
            return name
    return None


def generation_grid(donor: EchoGen, image_size: int | None) -> tuple[int, int]:
    """(image size, codes per side) of the donor's VQ read at `image_size` (None: its own size)."""
    if image_size is None:
        return donor.image_size, math.isqrt(donor.scheme.generation_tokens)
    downsample = downsampling(donor.model.config.vq_config.channel_multiplier)
    if image_size < downsample or image_size % downsample:
        raise ValueError(f"--image-size must be a positive multiple of the donor VQ's downsampling, {downsample}")
    return image_size, image_size // downsample


def deepened(vqmodel: JanusVQVAE, res_blocks: int) -> JanusVQVAE:
    """A copy of the VQ-VAE with `res_blocks` residual blocks per encoder level (the decoder has one more per
    level). The added blocks, and the attention after each at the lowest resolution, start as identities (their
    last convolution zero), so the copy writes the same codes and draws the same pixels: more capacity for the VQ
    stage to train from where the tokenizer is (with `vq.decoder_only=true`, the decoder alone: the codes, and
    the generator's tokens, keep their meaning)."""
    have = vqmodel.config.num_res_blocks
    if res_blocks < have:
        raise ValueError(f"--res-blocks {res_blocks} would drop trained blocks: the donor's VQ has {have} per level")
    config = copy.deepcopy(vqmodel.config)
    config.num_res_blocks = res_blocks
    deeper = JanusVQVAE(config).to(next(vqmodel.parameters()).dtype)
    missing, unexpected = deeper.load_state_dict(vqmodel.state_dict(), strict=False)
    new = {"encoder.down": range(have, res_blocks), "decoder.up": range(have + 1, res_blocks + 1)}  # per level
    levels = range(len(config.channel_multiplier))
    added = tuple(f"{tower}.{n}.{kind}.{i}." for tower, blocks in new.items() for n in levels for i in blocks
                  for kind in ("block", "attn"))  # fmt: skip
    for name, param in deeper.named_parameters():
        if name.startswith(added) and name.split(".")[-2] in ("conv2", "proj_out"):  # a branch's last layer
            torch.nn.init.zeros_(param)
    stray = [k for k in missing if not k.startswith(added)]
    if unexpected or stray:  # only the added blocks may lack weights
        raise ValueError(f"the donor's VQ does not fit a deeper copy of itself: {(unexpected or stray)[:3]}")
    return deeper.eval()


def transplant(model: EchoGen, donor: EchoGen, image_size: int | None = None, res_blocks: int | None = None) -> dict:
    """Give `model` the donor's tokenizer (in place), read at `image_size` (None: the donor's) and deepened to
    `res_blocks` residual blocks per level (None: as the donor's); returns the record of what changed."""
    compatible(model, donor)
    size, grid = generation_grid(donor, image_size)
    janus, theirs = model.model.model, donor.model.model
    before = {"generation_tokens": model.scheme.generation_tokens, "image_size": model.image_size,
              "vq_res_blocks": janus.vqmodel.config.num_res_blocks}  # fmt: skip
    vqmodel = copy.deepcopy(theirs.vqmodel) if res_blocks is None else deepened(theirs.vqmodel, res_blocks)
    janus.vqmodel = vqmodel.to(model.dtype)
    janus.generation_embeddings = copy.deepcopy(theirs.generation_embeddings).to(model.dtype)
    janus.generation_head.vision_head = copy.deepcopy(theirs.generation_head.vision_head).to(model.dtype)
    config = model.model.config
    config.vq_config = copy.deepcopy(janus.vqmodel.config)
    tokens = grid * grid
    text = config.text_config  # the room the longest prompt had beside the image stays
    grown = text.max_position_embeddings - before["generation_tokens"] + tokens
    text.max_position_embeddings = max(text.max_position_embeddings, grown)
    scheme = {**model.manifest["scheme"], "generation_tokens": tokens}
    model.manifest = {**model.manifest, "scheme": scheme, "image_size": size}
    before["preset"] = model.manifest.get("preset")
    model.scheme = replace(model.scheme, generation_tokens=tokens)
    model.image_size = size
    generation.set_generation_grid(model.model, grid)
    for option in ("image_positions", "layout_map"):  # both are computed from the grid: no weights to move
        spec = getattr(config, option, None)
        if spec:
            setattr(config, option, {**spec, "grid": grid})
    model.model.eval()
    blocks = config.vq_config.num_res_blocks
    at = f" at {size} px" if size != donor.image_size else ""
    at += f", {blocks} VQ residual blocks" if blocks != theirs.vqmodel.config.num_res_blocks else ""
    named = donor.manifest.get("preset")
    named = f"{named}{at}" if named == before["preset"] else f"{before['preset']} with {named}'s tokenizer{at}"
    preset = preset_of(model) or named
    model.manifest["preset"] = preset
    after = {"generation_tokens": tokens, "image_size": size, "preset": preset, "vq_res_blocks": blocks}
    return {"before": before, "after": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the trained model whose grounding (encoder, LM) is kept")
    parser.add_argument("donor", type=Path, help="the model whose VQ tokenizer is taken (a VQ-stage run)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--image-size", type=int, help="read the donor's VQ at this resolution (pixels)")
    parser.add_argument(
        "--res-blocks",
        type=int,
        help="deepen the donor's VQ to this many residual blocks per level (the added ones start as identities)",
    )
    args = parser.parse_args(argv)
    if transplants.occupied(args.out, args.model, args.donor):
        print(f"transplant_tokenizer: {args.out} already holds a model; give a new --out", file=sys.stderr)
        return 2
    try:
        model, donor = EchoGen.load(args.model), EchoGen.load(args.donor)
        record = transplant(model, donor, args.image_size, args.res_blocks)
    except (CheckpointError, ValueError) as exc:
        print(f"transplant_tokenizer: {exc}", file=sys.stderr)
        return 1
    record = transplants.save(model, args.model, donor, args.donor, args.out, "tokenizer_transplant", record)
    print(f"{args.out}: {record['before']['generation_tokens']} → {record['after']['generation_tokens']} image tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
