"""FID with torchmetrics, on an Inception network the user supplies as a TorchScript file.

torchmetrics' built-in Inception needs torch-fidelity, whose image-library dependency this package cannot
take; its `FrechetInceptionDistance(feature=module)` accepts any feature extractor instead. The file is
e.g. NVIDIA's `inception-2015-12-05.pt` (the TorchScript FID network of StyleGAN2-ADA / clean-fid, which
takes uint8-valued NCHW images and returns 2048 pool features with `return_features=True`), or any
TorchScript module (or `torch.export` program, `.pt2`) mapping (N, 3, 299, 299) float images in [0, 255]
to (N, F) features. Nothing is downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

FID_SIZE = 299


class InceptionFeatures(nn.Module):
    """uint8 (N, 3, H, W) → (N, F) float features of a TorchScript network, resized to 299²."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.eval()
        self.keyword = _accepts_return_features(network)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (FID_SIZE, FID_SIZE):
            x = nn.functional.interpolate(x, size=(FID_SIZE, FID_SIZE), mode="bilinear", align_corners=False)
        out = self.network(x, return_features=True) if self.keyword else self.network(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.reshape(out.shape[0], -1).double()


def _accepts_return_features(network: nn.Module) -> bool:
    try:
        names = [a.name for a in network.forward.schema.arguments]
    except (AttributeError, RuntimeError):
        return False
    return "return_features" in names


def load_inception(path: str | Path) -> InceptionFeatures:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception file {path} does not exist")
    if path.suffix == ".pt2":  # a torch.export program
        try:
            return InceptionFeatures(torch.export.load(str(path)).module())
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ValueError(f"{path} is not an exported Inception program (torch.export.load failed: {exc})") from None
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format FID networks ship in
            warnings.simplefilter("ignore", DeprecationWarning)
            network = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{path} is not a TorchScript Inception network (torch.jit.load failed: {exc})") from None
    return InceptionFeatures(network)


class FID:
    """Accumulates real and generated RGB uint8 (H, W, 3) images; `compute()` gives the distance."""

    def __init__(self, features: InceptionFeatures) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.metric = FrechetInceptionDistance(feature=features, normalize=False)
        self.counts = [0, 0]

    def update(self, image: np.ndarray, real: bool) -> None:
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        self.metric.update(tensor, real=real)
        self.counts[0 if real else 1] += 1

    def compute(self) -> float:
        if min(self.counts) < 2:
            raise ValueError(f"FID needs at least 2 real and 2 generated images, got {self.counts}")
        return float(self.metric.compute())
