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

Grounding is unchanged (the same weights answer I2L prompts), and imagining starts from the donor's
untrained logits: continue with PMTP to train the generator on the new codes.

    python training/scripts/transplant_tokenizer.py MODEL DONOR --out DIR

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

from echogen_training import transplants

from echogen_ros.model import generation
from echogen_ros.model.checkpoint import CheckpointError
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.presets import PRESETS


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
             tuple(vq.channel_multiplier), vq.num_embeddings, model.image_size)  # fmt: skip
    for name, p in PRESETS.items():
        if shape == (p.vision_size, p.patch, p.vision_hidden, p.vision_layers, p.hidden, p.layers, p.heads,
                     p.intermediate, p.vq_channels, tuple(p.vq_multipliers), p.codebook, p.image_size):  # fmt: skip
            return name
    return None


def transplant(model: EchoGen, donor: EchoGen) -> dict:
    """Give `model` the donor's tokenizer (in place); returns the record of what changed."""
    compatible(model, donor)
    janus, theirs = model.model.model, donor.model.model
    before = {"generation_tokens": model.scheme.generation_tokens, "image_size": model.image_size}
    janus.vqmodel = copy.deepcopy(theirs.vqmodel).to(model.dtype)
    janus.generation_embeddings = copy.deepcopy(theirs.generation_embeddings).to(model.dtype)
    janus.generation_head.vision_head = copy.deepcopy(theirs.generation_head.vision_head).to(model.dtype)
    config = model.model.config
    config.vq_config = copy.deepcopy(donor.model.config.vq_config)
    tokens = donor.scheme.generation_tokens
    scheme = {**model.manifest["scheme"], "generation_tokens": tokens}
    model.manifest = {**model.manifest, "scheme": scheme, "image_size": donor.image_size}
    before["preset"] = model.manifest.get("preset")
    model.scheme = replace(model.scheme, generation_tokens=tokens)
    model.image_size = donor.image_size
    grid = math.isqrt(tokens)
    generation.set_generation_grid(model.model, grid)
    for option in ("image_positions", "layout_map"):  # both are computed from the grid: no weights to move
        spec = getattr(config, option, None)
        if spec:
            setattr(config, option, {**spec, "grid": grid})
    model.model.eval()
    preset = preset_of(model) or f"{before['preset']} with {donor.manifest.get('preset')}'s tokenizer"
    model.manifest["preset"] = preset
    return {"before": before, "after": {"generation_tokens": tokens, "image_size": donor.image_size, "preset": preset}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the trained model whose grounding (encoder, LM) is kept")
    parser.add_argument("donor", type=Path, help="the model whose VQ tokenizer is taken (a VQ-stage run)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if transplants.occupied(args.out, args.model, args.donor):
        print(f"transplant_tokenizer: {args.out} already holds a model; give a new --out", file=sys.stderr)
        return 2
    try:
        model, donor = EchoGen.load(args.model), EchoGen.load(args.donor)
        record = transplant(model, donor)
    except (CheckpointError, ValueError) as exc:
        print(f"transplant_tokenizer: {exc}", file=sys.stderr)
        return 1
    record = transplants.save(model, args.model, donor, args.donor, args.out, "tokenizer_transplant", record)
    print(f"{args.out}: {record['before']['generation_tokens']} → {record['after']['generation_tokens']} image tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
