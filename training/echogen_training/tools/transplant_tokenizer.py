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

`--outer-level STEPS` gives the donor's VQ-VAE one more level outside its first: images of twice the side
through the same code grid (the embedded 64 px, 16 × 16-code tokenizer becomes a 128 px one with 16 × 16 codes
of 8 px). Its encoder's new level is then fitted, in STEPS batches of world frames, to write the codes the
donor writes for the same frame at its own size, so the generator's tokens keep their meaning and a
`vq.decoder_only=true` VQ stage teaches the decoder to draw them at the larger size: sharper imagined scenes
with the same language model and the same number of image tokens.

    echogen-train transplant-tokenizer MODEL DONOR --out DIR [--image-size S] [--res-blocks N]
    echogen-train transplant-tokenizer MODEL DONOR --out DIR --outer-level STEPS

The output is a full model directory, written all at once; the manifest records the donor under
`training.tokenizer_transplant` (also written to tokenizer_transplant.json beside it, which `echogen-train ship
--continuation` reads). MODEL and DONOR are not modified; an --out that is not empty is refused (with
--overwrite, one this tool wrote is replaced), and so is an --out that is MODEL or DONOR.
"""

from __future__ import annotations

import argparse
import copy
import math
from dataclasses import replace
from pathlib import Path

import torch
from transformers.models.janus.modeling_janus import JanusVQVAE

from echogen_ros.model import generation, layout_decoder
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.letterbox import Letterbox
from echogen_ros.model.presets import PRESETS, downsampling
from echogen_ros.model.vq import encode_tokens
from echogen_ros.world.dataset import world_sample
from echogen_training import transplants
from echogen_training.data.batches import to_pixels


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


def _built(config, dtype: torch.dtype) -> JanusVQVAE:
    """A VQ-VAE of `config` whose fresh weights (the added layers' first convolutions and norms) come from a
    fixed seed, so a transplant is the same every time it is made; the global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return JanusVQVAE(config).to(dtype)


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
    deeper = _built(config, next(vqmodel.parameters()).dtype)
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


def outer_level(vqmodel: JanusVQVAE) -> JanusVQVAE:
    """A copy of the VQ-VAE with one more level outside its first: it reads and draws images of twice the side
    through the same code grid (a (1, 2, 4) VQ at 64 px becomes a (1, 1, 2, 4) VQ at 128 px, 16 × 16 codes
    either way). Every trained level keeps its weights, one level further in. The encoder's new level starts as
    the donor's first convolution followed by a 2 × 2 average (its blocks identities), so the codes of an image
    are about the donor's codes of that image at half the side; the decoder's starts as a nearest-neighbour
    doubling of the donor's last features (the new upsampling convolution an identity, the blocks identities).
    The generator's tokens keep their meaning, and a decoder-only VQ stage (`vq.decoder_only=true`) trains the
    decoder to draw them at the larger size."""
    config = copy.deepcopy(vqmodel.config)
    multipliers = list(config.channel_multiplier)
    if multipliers[0] != 1:
        raise ValueError(f"an outer level needs a VQ whose first level keeps the base channels, not {multipliers}")
    config.channel_multiplier = [1, *multipliers]
    outer = _built(config, next(vqmodel.parameters()).dtype)
    levels, renamed = len(multipliers), {}
    for name, value in vqmodel.state_dict().items():
        tower, _, rest = name.partition(".")
        if tower == "encoder" and rest.startswith("down."):  # encoder level i is the new level i + 1
            index, _, tail = rest[len("down.") :].partition(".")
            name = f"encoder.down.{int(index) + 1}.{tail}"
        renamed[name] = value
    missing, unexpected = outer.load_state_dict(renamed, strict=False)
    added = ("encoder.down.0.", f"decoder.up.{levels}.", f"decoder.up.{levels - 1}.upsample.")
    stray = [k for k in missing if not k.startswith(added)]
    if unexpected or stray:
        raise ValueError(f"the donor's VQ does not fit an outer level: {(unexpected or stray)[:3]}")
    with torch.no_grad():
        for name, param in outer.named_parameters():
            if name.startswith(added) and name.split(".")[-2] == "conv2":  # the new blocks: identities
                torch.nn.init.zeros_(param)
        down = outer.encoder.down[0].downsample.conv  # 3 × 3, stride 2, padded right and below: taps 0-1 = 2 × 2
        up = outer.decoder.up[levels - 1].upsample.conv  # after a nearest doubling: the centre tap, identity
        for conv, taps in ((down, ((0, 0), (0, 1), (1, 0), (1, 1))), (up, ((1, 1),))):
            conv.weight.zero_()
            conv.bias.zero_()
            channels = torch.arange(conv.out_channels)
            for row, col in taps:
                conv.weight[channels, channels, row, col] = 1.0 / len(taps)
    return outer.eval()


def match_codes(outer: JanusVQVAE, donor: JanusVQVAE, small: int, steps: int, batch: int = 16, seed: int = 0) -> dict:
    """Fit the outer-level VQ's encoder (and its projection to code space) to write the donor's codes: on
    `steps` batches of the tabletop world's train frames, the mean squared error between its latent of each
    frame at twice `small` px and the donor's of the same frame at `small` px (the donor's size), before the
    l2 normalisation the codes are chosen after (matching the latent matches its direction too). Returns that
    error and the share of codes both write alike (`vq.encode_tokens`: the generator's codes), on `batch`
    held-out frames, before and after."""

    def frames(split: str, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = [world_sample(seed, index, split).image() for index in range(start, start + batch)]
        sized = [[Letterbox(i.shape[1], i.shape[0], size).apply(i) for i in images] for size in (small, 2 * small)]
        return to_pixels(sized[0]), to_pixels(sized[1])

    def latent(vq: JanusVQVAE, pixels: torch.Tensor) -> torch.Tensor:
        return vq.quant_conv(vq.encoder(pixels)).float()

    held_small, held_large = frames("heldout", 0)

    def measured(when: str) -> dict:
        """The held-out frames' latent error and the share of their codes the two VQs agree on."""
        with torch.no_grad():
            error = torch.nn.functional.mse_loss(latent(outer, held_large), latent(donor, held_small))
        agreement = (encode_tokens(outer, held_large) == encode_tokens(donor, held_small)).float().mean()
        return {f"error_{when}": float(error), f"agreement_{when}": float(agreement)}

    record = {"steps": steps, "batch": batch, "seed": seed, **measured("before")}
    trained = [*outer.encoder.parameters(), *outer.quant_conv.parameters()]
    optimiser = torch.optim.AdamW(trained, lr=3.0e-4, weight_decay=0.0)
    outer.train()
    for step in range(steps):
        pixels_small, pixels_large = frames("train", step * batch)
        with torch.no_grad():
            target = latent(donor, pixels_small)
        loss = torch.nn.functional.mse_loss(latent(outer, pixels_large), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    outer.eval()
    return {**record, **measured("after")}


def transplant(
    model: EchoGen,
    donor: EchoGen,
    image_size: int | None = None,
    res_blocks: int | None = None,
    outer_steps: int | None = None,
) -> dict:
    """Give `model` the donor's tokenizer (in place), read at `image_size` (None: the donor's), deepened to
    `res_blocks` residual blocks per level (None: as the donor's), or given an outer level fitted to the donor's
    codes in `outer_steps` steps (None: none); returns the record of what changed."""
    compatible(model, donor)
    if outer_steps is not None and (image_size is not None or res_blocks is not None):
        raise ValueError("an outer level doubles the donor's own size and depth: not with --image-size or --res-blocks")
    grown = outer_steps is not None or res_blocks is not None
    if grown and getattr(donor.model.model.vqmodel, "decoder_map", None) is not None:
        raise ValueError(
            "the donor's VQ has a decoder map (model.decoder_map), whose channels a grown VQ changes: "
            "grow one without it"
        )
    if outer_steps is not None and outer_steps < 0:
        raise ValueError(f"--outer-level takes a number of steps ≥ 0, not {outer_steps}")
    size, grid = generation_grid(donor, image_size)
    janus, theirs = model.model.model, donor.model.model
    before = {"generation_tokens": model.scheme.generation_tokens, "image_size": model.image_size,
              "vq_res_blocks": janus.vqmodel.config.num_res_blocks,
              "vq_levels": len(janus.vqmodel.config.channel_multiplier)}  # fmt: skip
    matched = None
    if outer_steps is not None:
        teacher = copy.deepcopy(theirs.vqmodel).float()
        vqmodel = outer_level(teacher)
        matched = match_codes(vqmodel, teacher, size, outer_steps)
        size *= 2
    elif res_blocks is not None:
        vqmodel = deepened(theirs.vqmodel, res_blocks)
    else:
        vqmodel = copy.deepcopy(theirs.vqmodel)
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
    # a decoder map belongs to its decoder: a copied VQ keeps the donor's; the recipient's left with its own VQ
    if getattr(janus.vqmodel, "decoder_map", None) is not None:
        layout_decoder.enable(model.model)
    elif hasattr(config, "decoder_map"):
        del config.decoder_map
    model.model.eval()
    blocks = config.vq_config.num_res_blocks
    at = f" at {size} px" if size != donor.image_size else ""
    at += f", {blocks} VQ residual blocks" if blocks != theirs.vqmodel.config.num_res_blocks else ""
    at += ", an outer VQ level" if matched is not None else ""
    named = donor.manifest.get("preset")
    named = f"{named}{at}" if named == before["preset"] else f"{before['preset']} with {named}'s tokenizer{at}"
    preset = preset_of(model) or named
    model.manifest["preset"] = preset
    after = {"generation_tokens": tokens, "image_size": size, "preset": preset, "vq_res_blocks": blocks,
             "vq_levels": len(config.vq_config.channel_multiplier)}  # fmt: skip
    record = {"before": before, "after": after}
    if matched is not None:
        record["outer_level"] = matched
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the trained model whose grounding (encoder, LM) is kept")
    parser.add_argument("donor", type=Path, help="the model whose VQ tokenizer is taken (a VQ-stage run)")
    parser.add_argument("--out", type=Path, required=True, help="the new model directory")
    parser.add_argument("--overwrite", action="store_true", help="replace an --out this tool wrote before")
    parser.add_argument("--image-size", type=int, help="read the donor's VQ at this resolution (pixels)")
    parser.add_argument(
        "--res-blocks",
        type=int,
        help="deepen the donor's VQ to this many residual blocks per level (the added ones start as identities)",
    )
    parser.add_argument(
        "--outer-level",
        type=int,
        metavar="STEPS",
        help="add a VQ level outside the first (twice the image side, the same codes), its encoder fitted to the "
        "donor's codes in STEPS batches of 16 world frames",
    )


def run(args: argparse.Namespace) -> int:
    transplants.check_out(args.out, args.overwrite, args.model, args.donor)
    model, donor = EchoGen.load(args.model), EchoGen.load(args.donor)
    record = transplant(model, donor, args.image_size, args.res_blocks, args.outer_level)
    stage = "tokenizer_transplant"
    record = transplants.save(model, args.model, donor, args.donor, args.out, stage, record, args.overwrite)
    print(f"{args.out}: {record['before']['generation_tokens']} → {record['after']['generation_tokens']} image tokens")
    return 0
