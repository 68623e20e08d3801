"""Image tokens ↔ pictures of a layout: how `EchoGen.imagine` draws the tokens it generates, and how the
evaluation's controls draw tokens it did not generate (a real frame's, an empty table's), the same way.

By default Janus' VQ decoder draws the codes alone, so a picture shows what the tokens say. With
`decoder_map=True` the layout-reading decoder (`layout_decoder`, a model option) also reads the layout the
picture is drawn for: it draws objects the codes do not show, so its pictures are reported apart and never
graded as the generator's (the cycle check never uses it).
"""

from __future__ import annotations

import numpy as np
import torch

from echogen_ros.model import generation, vq
from echogen_ros.model.layout import Layout
from echogen_ros.model.letterbox import Letterbox, check_image
from echogen_ros.model.pixels import unit_array

NO_MAP = "this model has no layout-reading decoder (model.decoder_map): draw without it"


def has_decoder_map(model) -> bool:
    """Whether an EchoGen's VQ has a layout-reading decoder (`layout_decoder`)."""
    return getattr(model.model.model.vqmodel, "decoder_map", None) is not None


@torch.inference_mode()
def draw(model, tokens: torch.Tensor, layout: Layout, decoder_map: bool = False) -> np.ndarray:
    """Image tokens (1, N) → an RGB uint8 picture of `layout`'s imagined size (`Layout.imagined_size`): the
    model-resolution square cropped from its letterbox and scaled. `decoder_map`: the layout-reading decoder
    draws it, reading `layout` (ValueError for a model without one)."""
    if decoder_map and not has_decoder_map(model):
        raise ValueError(NO_MAP)
    layouts = [model.layout_objects(layout)] if decoder_map else None
    frame = generation.decode_image(model.model, tokens, layouts)[0].cpu().numpy()
    return Letterbox(layout.width, layout.height, model.image_size).crop(frame, layout.imagined_size())


@torch.inference_mode()
def codes(model, image: np.ndarray) -> torch.Tensor:
    """The VQ codes (1, N) of an RGB uint8 image letterboxed to the model's resolution: the tokens a generator
    that drew exactly this image would write."""
    check_image(image)
    small = Letterbox(image.shape[1], image.shape[0], model.image_size).apply(image)
    pixels = torch.from_numpy(np.ascontiguousarray(unit_array(small).transpose(2, 0, 1)[None]))
    return vq.encode_tokens(model.model.model.vqmodel, pixels.to(model.device, model.dtype))
