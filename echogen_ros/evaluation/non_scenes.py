"""Frames that are no tabletop scene, to measure and test the domain check (echogen_ros.model.domain) against:
synthetic ones (noise, flat colours, gradients, a text page), and the photographs and drawings scikit-image
ships inside its wheel (read from its own files: nothing is downloaded). All RGB uint8 (H, W, 3)."""

from __future__ import annotations

import cv2
import numpy as np

# skimage.data's images whose files are in the wheel (skimage/data/*.png|jpg), so loading them needs no network
PHOTOS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket", "text",
)  # fmt: skip
DRAWINGS = ("checkerboard", "colorwheel", "horse", "logo", "shepp_logan_phantom")


def synthetic_frames(width: int = 640, height: int = 480, seed: int = 0) -> dict[str, np.ndarray]:
    """Non-scenes a camera could still send: noise, blank frames, gradients, a page of text."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    down = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    frames = {
        "noise": noise,
        "grey noise": np.repeat(noise[..., :1], 3, axis=2),
        "blurred noise": cv2.GaussianBlur(noise, (0, 0), 8),
        "grey ramp": np.stack([ramp] * 3, axis=2).astype(np.uint8),
        "colour ramp": np.stack([ramp, down, 255 - ramp], axis=2).astype(np.uint8),
        "text page": _text_page(width, height),
    }
    flat = {"black": (0, 0, 0), "white": (255, 255, 255), "pad grey": (114, 114, 114), "red": (200, 0, 0)}
    flat["brown (a bare table's colour)"] = (140, 100, 60)
    frames.update({f"flat {name}": np.full((height, width, 3), rgb, np.uint8) for name, rgb in flat.items()})
    return frames


def _text_page(width: int, height: int) -> np.ndarray:
    page = np.full((height, width, 3), 255, np.uint8)
    for line in range(height // 25 - 1):
        text = f"{line + 1}. The quick brown fox jumps over the lazy dog."
        cv2.putText(page, text, (10, 25 * (line + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return page


def bundled_images(names: tuple[str, ...] = PHOTOS + DRAWINGS) -> dict[str, np.ndarray]:
    """scikit-image's bundled images by name, as RGB uint8 (grey and binary ones repeated over three channels,
    alpha dropped). Raises ModuleNotFoundError without scikit-image (`pip install scikit-image`)."""
    import skimage.data

    return {name: _rgb(getattr(skimage.data, name)()) for name in names}


def _rgb(image) -> np.ndarray:
    image = np.asarray(image[0] if isinstance(image, tuple) else image)  # stereo_motorcycle-like pairs: the left
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])
