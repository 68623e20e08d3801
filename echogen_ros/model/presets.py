"""Model configurations: the embedded `tabletop` preset, and Janus-Pro checkpoints a user downloads.

Both are `transformers.JanusConfig`s; the same EchoGen code runs either. Sizes are in a dict, as in
LlamaGen's presets.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import JanusConfig, JanusVisionConfig, JanusVQVAEConfig, LlamaConfig


@dataclass(frozen=True)
class Preset:
    vision_size: int  # understanding input (SigLIP-style encoder), pixels
    image_size: int  # generation output (VQ-VAE), pixels
    patch: int  # vision patch size; vision_size / patch = the encoder's grid side (I2L image tokens)
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vision_hidden: int
    vision_layers: int
    codebook: int
    vq_channels: int
    vq_multipliers: tuple[int, ...]  # len - 1 downsamplings: image_size / 2**(len-1) = the VQ's grid side
    bins: int
    max_objects: int
    max_positions: int
    vq_res_blocks: int = 1  # residual blocks per VQ encoder level (the decoder has one more per level)

    @property
    def vq_downsample(self) -> int:
        return downsampling(self.vq_multipliers)


def downsampling(channel_multiplier) -> int:
    """How many pixels of an image side one VQ code covers: one halving per level after the first."""
    return 2 ** (len(channel_multiplier) - 1)


PRESETS: dict[str, Preset] = {
    # ~9M parameters: 128 px understanding, 64 px generation, 8×8 image tokens.
    "tabletop": Preset(
        vision_size=128, image_size=64, patch=16, hidden=256, layers=4, heads=4, intermediate=704,
        vision_hidden=192, vision_layers=4, codebook=1024, vq_channels=32, vq_multipliers=(1, 2, 2, 4),
        bins=128, max_objects=12, max_positions=512,
    ),
    # the same LM and tokens, but the encoder sees 256 px through 32 px patches: 4× the pixels per object
    # (a small cup is 11×12 px at 128, 22×25 px at 256), still 8×8 image tokens for the LM
    "tabletop-256": Preset(
        vision_size=256, image_size=64, patch=32, hidden=256, layers=4, heads=4, intermediate=704,
        vision_hidden=192, vision_layers=4, codebook=1024, vq_channels=32, vq_multipliers=(1, 2, 2, 4),
        bins=128, max_objects=12, max_positions=512,
    ),
    # a finer tokenizer: 64 px through 16×16 image tokens (4 px each, not 8), so the VQ keeps small objects'
    # shapes; the encoder still reads 8×8 patches of 16 px (Janus ties both grids; EchoGen does not), so
    # grounding costs what `tabletop`'s does and a `tabletop` model's understanding path fits it unchanged
    "tabletop-fine": Preset(
        vision_size=128, image_size=64, patch=16, hidden=256, layers=4, heads=4, intermediate=704,
        vision_hidden=192, vision_layers=4, codebook=1024, vq_channels=32, vq_multipliers=(1, 2, 4),
        bins=128, max_objects=12, max_positions=640,
    ),
    # `tabletop-fine` generating 128 px images: 32×32 tokens of 4 px (1,024 per image), the same weights'
    # shapes (the VQ is convolutional), the language model's position limit raised by the 768 tokens more
    "tabletop-128": Preset(
        vision_size=128, image_size=128, patch=16, hidden=256, layers=4, heads=4, intermediate=704,
        vision_hidden=192, vision_layers=4, codebook=1024, vq_channels=32, vq_multipliers=(1, 2, 4),
        bins=128, max_objects=12, max_positions=1408,
    ),
    # `tabletop-fine` drawing 128 px images from the same 16×16 tokens (8 px each): one more VQ level outside the
    # first (echogen-train transplant-tokenizer --outer-level), so the generator's sequence stays 256 long
    "tabletop-fine-128": Preset(
        vision_size=128, image_size=128, patch=16, hidden=256, layers=4, heads=4, intermediate=704,
        vision_hidden=192, vision_layers=4, codebook=1024, vq_channels=32, vq_multipliers=(1, 1, 2, 4),
        bins=128, max_objects=12, max_positions=640,
    ),
    # for tests: the smallest thing that runs every path
    "tiny": Preset(
        vision_size=32, image_size=32, patch=8, hidden=32, layers=2, heads=2, intermediate=64,
        vision_hidden=32, vision_layers=1, codebook=64, vq_channels=32, vq_multipliers=(1, 1, 1, 1),
        bins=32, max_objects=12, max_positions=256,
    ),
}  # fmt: skip


def janus_config(preset: Preset, vocab_size: int, image_token_id: int) -> JanusConfig:
    grid = preset.vision_size // preset.patch
    if preset.vision_size % preset.patch or preset.image_size % preset.vq_downsample:
        raise ValueError(
            f"the vision size must be a multiple of the patch ({preset.vision_size}, {preset.patch}) and the "
            f"image size of the VQ's downsampling ({preset.image_size}, {preset.vq_downsample})"
        )
    text = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=preset.hidden,
        intermediate_size=preset.intermediate,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.heads,
        max_position_embeddings=preset.max_positions,
        tie_word_embeddings=True,
    )
    vision = JanusVisionConfig(
        hidden_size=preset.vision_hidden,
        num_hidden_layers=preset.vision_layers,
        num_attention_heads=max(1, preset.vision_hidden // 48),
        image_size=preset.vision_size,
        patch_size=preset.patch,
        projection_dim=preset.hidden,
        num_image_tokens=grid * grid,
    )
    vq = JanusVQVAEConfig(
        embed_dim=8,
        num_embeddings=preset.codebook,
        latent_channels=4 * preset.vq_channels,
        base_channels=preset.vq_channels,
        channel_multiplier=list(preset.vq_multipliers),
        num_res_blocks=preset.vq_res_blocks,
        projection_dim=preset.hidden,
        image_token_embed_dim=preset.hidden,
    )
    return JanusConfig(text_config=text, vision_config=vision, vq_config=vq, image_token_id=image_token_id)
