"""Input batches on their way to the device: moved there, and packed to uint8 for the hand-off from input
workers (a quarter of the bytes when training on an accelerator)."""

from __future__ import annotations

import dataclasses

import torch

from echogen_ros.model.pixels import to_uint8, unit_tensor
from echogen_training.data.batches import Sequences

PIXEL_FIELDS = ("pixels", "gen_pixels")


def pixels_to(pixels: torch.Tensor, device) -> torch.Tensor:
    """Pixels on `device` as [-1, 1] floats (uint8 ones, packed by `pack_pixels`, are unpacked)."""
    pixels = pixels.to(device, non_blocking=True)
    return unit_tensor(pixels) if pixels.dtype == torch.uint8 else pixels


def seq_to(seq: Sequences, device) -> Sequences:
    return Sequences(seq.ids.to(device), seq.mask.to(device), seq.positions.to(device), seq.labels.to(device))


def batch_to(batch, device):
    """An L2I or I2L batch moved to `device` in place (None stays None)."""
    if batch is None:
        return None
    batch.seq = seq_to(batch.seq, device)
    for name in ("image_index", "patch", "tokenized", "categories"):
        if getattr(batch, name, None) is not None:
            setattr(batch, name, getattr(batch, name).to(device))
    for name in PIXEL_FIELDS:
        if getattr(batch, name, None) is not None:
            setattr(batch, name, pixels_to(getattr(batch, name), device))
    return batch


def pack_pixels(cpu: dict) -> dict:
    """Pixels back to the uint8 they were made from (exactly: `unit_tensor` of uint8 values inverts), for the
    worker → trainer hand-off; `pixels_to` restores the same floats on the device."""
    for key, value in cpu.items():
        if key in PIXEL_FIELDS and torch.is_tensor(value):
            cpu[key] = to_uint8(value)
        elif dataclasses.is_dataclass(value):
            for name in PIXEL_FIELDS:
                pixels = getattr(value, name, None)
                if pixels is not None and pixels.is_floating_point():
                    setattr(value, name, to_uint8(pixels))
    return cpu
