"""Is a frame of the kind the model was trained on? A Gaussian over a summary of the image features the grounder
already computes, fitted on world training renders; a frame whose Mahalanobis distance exceeds a threshold set
on val renders is out of domain (a photo, noise, a blank frame), whatever boxes the grounder returns for it.

A model directory carries its check as `domain.safetensors` (the Gaussian's mean and precision) and a `domain`
record in echogen.json (threshold, summary, what it was fitted on, the weights it was fitted with); the manifest
hashes the file like every other. A directory without it has no check (`read_domain_check` gives None).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from echogen_ros.model import checkpoint

DOMAIN_FILE = "domain.safetensors"
VERSION = 1
# Per feature dimension, the mean over the image's patches and the log of their spread: the spread's log is what
# tells a flat colour (every patch alike) from a table, which the mean alone (or mean and plain std) cannot.
# On the embedded model the nearest photo or synthetic frame lay at 1.58× the threshold with it; with the mean
# alone, or mean and std, a flat brown frame was in domain (docs/benchmarks.md, 2026-12-05).
SUMMARY = "patch_mean_logstd"
STD_FLOOR = 1e-3  # added to the spread before its log: a constant feature stays finite
# The threshold: QUANTILE of val renders' distances times MARGIN, so about 0.5 % of in-domain frames sit within
# 10 % of it and (measured) none of test or held-out beyond it.
QUANTILE = 0.995
MARGIN = 1.1


def summarise(features: torch.Tensor) -> torch.Tensor:
    """(B, N, D) image features → (B, 2D) float64: each dimension's mean over the N patches and its log spread."""
    features = features.detach().to("cpu", torch.float64)
    return torch.cat([features.mean(1), (features.std(1, correction=0) + STD_FLOOR).log()], dim=1)


@dataclass(frozen=True)
class DomainCheck:
    mean: torch.Tensor  # (2D,) float64: the training renders' mean summary
    precision: torch.Tensor  # (2D, 2D) float64: the inverse of their shrunk covariance
    record: dict  # the manifest's `domain` entry: threshold, summary, version, fitted_on, threshold_from, weights

    @property
    def threshold(self) -> float:
        return float(self.record["threshold"])

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, D) image features → (B,) Mahalanobis distances of their summaries."""
        return mahalanobis(summarise(features), self.mean, self.precision)

    def distance(self, features: torch.Tensor) -> float:
        """The distance of one frame's features (1, N, D); above `threshold`: out of domain."""
        if features.ndim != 3 or len(features) != 1:
            raise ValueError(f"features must be one frame's (1, N, D), got {tuple(features.shape)}")
        return float(self.distances(features)[0])

    def save(self, directory: str | Path) -> dict:
        """Write `domain.safetensors` into a model directory and add it (file hash and record) to its manifest,
        which must be valid; returns the new manifest. In place: a tool stages the directory around it."""
        directory = Path(directory)
        manifest = checkpoint.read_manifest(directory)
        if self.record["weights"] != manifest["files"][checkpoint.WEIGHTS]:
            raise checkpoint.CheckpointError(f"this domain check was fitted on other weights than {directory}'s")
        tensors = {"mean": self.mean.float().contiguous(), "precision": self.precision.float().contiguous()}
        (directory / DOMAIN_FILE).write_bytes(save(tensors, metadata={"summary": SUMMARY}))  # as umask allows
        files = {**manifest["files"], DOMAIN_FILE: checkpoint.sha256(directory / DOMAIN_FILE)}
        manifest = {**manifest, "domain": self.record, "files": files}
        partial = directory / f".{checkpoint.MANIFEST}.partial-{os.getpid()}"
        partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(partial, directory / checkpoint.MANIFEST)
        return manifest


def fit(train: torch.Tensor, val: torch.Tensor, record: dict) -> DomainCheck:
    """A check from training summaries (B, 2D) (`summarise`), its threshold from val summaries; `record` holds
    what they came from (fitted_on, weights: the model.safetensors sha256), to which the threshold is added."""
    mean = train.mean(0)
    precision = torch.linalg.inv(shrunk_covariance(train - mean))
    reach = float(torch.quantile(mahalanobis(val, mean, precision), QUANTILE))
    threshold_from = {"split": "val", "frames": len(val), "quantile": QUANTILE, "margin": MARGIN, "distance": reach}
    record = {**record, "version": VERSION, "summary": SUMMARY, "threshold": reach * MARGIN}
    return DomainCheck(mean, precision, {**record, "threshold_from": threshold_from})


def mahalanobis(summaries: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """(B, K) summaries → (B,) distances √((x − mean)ᵀ precision (x − mean))."""
    z = summaries - mean
    return ((z @ precision) * z).sum(1).clamp_min(0).sqrt()


def shrunk_covariance(centred: torch.Tensor) -> torch.Tensor:
    """Ledoit-Wolf: the sample covariance of centred rows (B, K) shrunk toward a scaled identity by the
    intensity that minimises the expected squared error (no knob to tune; Ledoit & Wolf 2004)."""
    n, k = centred.shape
    sample = centred.T @ centred / n
    scale = torch.trace(sample) / k
    target = scale * torch.eye(k, dtype=sample.dtype)
    spread = ((sample - target) ** 2).sum()
    noise = ((centred**2).sum(1) ** 2).sum() / n**2 - (sample**2).sum() / n  # Σ‖x xᵀ − S‖² / n²
    shrink = float(torch.clamp(noise / spread, 0.0, 1.0)) if spread > 0 else 1.0
    return (1 - shrink) * sample + shrink * target


def read_domain_check(directory: str | Path, manifest: dict) -> DomainCheck | None:
    """The check of a model directory whose manifest has been read (and its hashes verified), or None when it
    lists no domain file."""
    directory = Path(directory)
    if DOMAIN_FILE not in manifest["files"]:
        return None
    record = manifest.get("domain")
    if not isinstance(record, dict) or record.get("version") != VERSION or record.get("summary") != SUMMARY:
        raise checkpoint.CheckpointError(
            f"{directory}: the domain record is not one this echogen_ros reads (version {VERSION}, summary "
            f"{SUMMARY!r}); fit it again with `echogen-train fit-domain --model {directory}`"
        )
    threshold = record.get("threshold")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not threshold > 0:
        raise checkpoint.CheckpointError(f"{directory}: the domain record's threshold must be a positive number")
    if record.get("weights") != manifest["files"].get(checkpoint.WEIGHTS):
        raise checkpoint.CheckpointError(
            f"{directory}: its domain check was fitted on other weights; fit it again with "
            f"`echogen-train fit-domain --model {directory}`"
        )
    try:
        tensors = load_file(str(directory / DOMAIN_FILE))
        mean, precision = tensors["mean"].double(), tensors["precision"].double()
    except (OSError, KeyError, SafetensorError) as exc:
        raise checkpoint.CheckpointError(f"cannot read {DOMAIN_FILE} in {directory}: {exc}") from None
    if mean.ndim != 1 or precision.shape != (len(mean), len(mean)):
        raise checkpoint.CheckpointError(f"{directory / DOMAIN_FILE}: mean and precision do not fit together")
    return DomainCheck(mean, precision, record)


def remove_domain_check(directory: str | Path) -> dict:
    """Take the check out of a model directory (its file and record), keeping the manifest valid; returns it."""
    directory = Path(directory)
    manifest = checkpoint.read_manifest(directory)
    (directory / DOMAIN_FILE).unlink(missing_ok=True)
    manifest.pop("domain", None)
    return checkpoint.write_manifest(directory, manifest)
