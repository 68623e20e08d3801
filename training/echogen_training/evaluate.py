"""Periodic evaluation on world scenes of `eval.split` (test by default: never held-out, which a periodic
evaluation would spend on decisions): grounding Acc@0.5 / mAcc and cycle IoU (or, for the
VQ stage, reconstruction error), and how much the image features differ between patches (a vision
encoder whose features collapse to one vector cannot ground anything)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from echogen_ros.evaluation.run import measure
from echogen_ros.model import generation, vq
from echogen_ros.model.echogen import EchoGen
from echogen_ros.model.letterbox import Letterbox
from echogen_ros.model.scheme import token_layout
from echogen_ros.model.tokenizer import encode_text
from echogen_ros.world.dataset import coco, world_sample
from echogen_training.config import EvalConfig
from echogen_training.data.batches import to_pixels

CYCLE_SCENES = 8


@torch.no_grad()
def evaluate(echogen: EchoGen, config: EvalConfig, measures: Callable[[EchoGen, list], dict]) -> dict[str, float]:
    """The stage's `measures` on `config.scenes` world scenes of `config.split`, the model in eval mode."""
    was_training = echogen.model.training
    echogen.model.eval()
    try:
        return measures(echogen, [world_sample(config.seed, i, config.split) for i in range(config.scenes)])
    finally:
        echogen.model.train(was_training)


def reconstruction(echogen: EchoGen, samples) -> dict[str, float]:
    size = echogen.image_size
    letterbox = Letterbox(640, 480, size)
    frames = [letterbox.apply(s.image()) for s in samples]
    pixels = to_pixels(frames).to(echogen.device, echogen.dtype)
    _, latent, _ = vq.quantize(echogen.model.model.vqmodel, pixels)
    encode = lambda label: encode_text(echogen.tokenizer, label)  # noqa: E731
    layouts = [  # what a decoder map reads (ignored without one)
        token_layout(encode, 640, 480, size, list(zip(s.labels(), s.boxes()))[: echogen.max_objects]) for s in samples
    ]
    labels, boxes = generation.decoder_layout(echogen.model, layouts)
    recon = vq.decode_latent(echogen.model.model.vqmodel, latent, labels, boxes).clamp(-1, 1)
    mse = float(((recon.float() - pixels.float()) / 2).pow(2).mean())  # on the [0, 1] scale
    return {"recon_l1": float((recon.float() - pixels.float()).abs().mean()), "psnr": psnr(mse, peak=1.0)}


def psnr(mse: float, peak: float) -> float:
    """Peak signal-to-noise ratio (dB) from a mean squared error on a scale whose peak is `peak` (inf when
    identical)."""
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def feature_spread(echogen: EchoGen, samples) -> float:
    """Std of the aligned image features across patches, relative to their RMS (0: collapsed)."""
    size = echogen.vision_size
    frames = [Letterbox(640, 480, size).apply(s.image()) for s in samples[:8]]
    features = generation.image_features(echogen.model, to_pixels(frames).to(echogen.device, echogen.dtype)).float()
    return float(features.std(dim=1).mean() / features.pow(2).mean().sqrt().clamp_min(1e-12))


def grounding_and_cycle(echogen: EchoGen, samples) -> dict[str, float]:
    """Grounding Acc@0.5 and mAcc on every expression of `samples`, and the cycle IoU of the first
    CYCLE_SCENES: `echogen eval`'s measures (`evaluation.run.measure`), on the scenes rendered in memory."""
    images: dict[str, np.ndarray] = {}
    data = coco(samples, 0, "", 640, 480, image=images.__setitem__)
    report = measure(echogen, data, lambda info: images[info["file_name"]], imagine_limit=CYCLE_SCENES)
    grounding = report["grounding"]
    return {"ground_acc@0.5": grounding["acc@0.5"], "ground_macc": grounding["macc"],
            "cycle_iou": report["cycle"]["mean_iou"]}  # fmt: skip
