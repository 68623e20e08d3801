"""sensor_msgs/Image and CompressedImage → RGB uint8, for every encoding a camera driver commonly sends.

Handles row padding (step > width × bytes per pixel), big-endian 16/32-bit data, depth (16UC1, 32FC1) and
mono16 by scaling the valid range to 8 bits, and image_transport's CompressedImage formats
("bgr8; jpeg compressed bgr8", "rgb8; png compressed rgb8", or plain "jpeg"/"png").
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from echogen_ros import limits

# encoding → (channels, numpy dtype of one channel)
ENCODINGS = {
    "rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "rgba8": (4, np.uint8), "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8), "8UC1": (1, np.uint8), "8UC3": (3, np.uint8),
    "mono16": (1, np.uint16), "16UC1": (1, np.uint16), "32FC1": (1, np.float32),
    "rgb16": (3, np.uint16), "bgr16": (3, np.uint16),
}  # fmt: skip


class ImageError(ValueError):
    """A frame that cannot be used; the message says why (the caller skips the frame)."""


def to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/Image as an (H, W, 3) RGB uint8 array (a copy)."""
    pixels, encoding = pixels_of(msg)
    if pixels.dtype != np.uint8:
        pixels = _to_uint8(pixels.astype(np.float32))
    if encoding.startswith("bgr"):
        return cv2.cvtColor(pixels[..., :3], cv2.COLOR_BGR2RGB)
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[..., :3])


def pixels_of(msg) -> tuple[np.ndarray, str]:
    """A sensor_msgs/Image's pixels as (H, W, channels) in its encoding's native dtype (a copy), and the encoding."""
    height, width, encoding = int(msg.height), int(msg.width), str(msg.encoding)
    if encoding not in ENCODINGS:
        raise ImageError(f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    _check_size(width, height)
    channels, dtype = ENCODINGS[encoding]
    row = width * channels * np.dtype(dtype).itemsize
    step = int(msg.step)
    if step < row:
        raise ImageError(f"step {step} is smaller than width × pixel size ({row}) for {encoding}")
    # rosbags gives a numpy array, rclpy an array.array('B'): both expose a buffer (no copy, no Python loop)
    data = msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * (height - 1) + row:
        raise ImageError(
            f"image data has {data.size} bytes, {width}x{height} {encoding} with step {step} needs {step * height}"
        )
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row), strides=(step, 1))
    order = ">" if int(msg.is_bigendian) else "<"
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order) if dtype != np.uint8 else dtype)
    return pixels.reshape(height, width, channels).astype(dtype, copy=False), encoding  # native byte order


def _check_size(width: int, height: int) -> None:
    most = limits.active().max_frame_side
    if not (0 < height <= most and 0 < width <= most):
        raise ImageError(f"image size {width}x{height} is outside 1..{most} ({limits.how_to_raise('max_frame_side')})")


def groundable(rgb: np.ndarray) -> np.ndarray:
    """`rgb` if the model can ground in it, else ImageError (a 1-pixel-high frame, say)."""
    height, width = rgb.shape[:2]
    least = limits.active().min_frame_side
    if min(height, width) < least:
        raise ImageError(f"image size {width}x{height} is too small to ground in (at least {least} a side)")
    return rgb


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale the finite, non-zero range of depth/16-bit data to 0..255 (0 and NaN stay black)."""
    valid = np.isfinite(values) & (values > 0)
    out = np.zeros(values.shape, dtype=np.uint8)
    if valid.any():
        lo, hi = float(values[valid].min()), float(values[valid].max())
        scaled = (values - lo) / (hi - lo) * 254 + 1 if hi > lo else np.full(values.shape, 255.0)
        out[valid] = np.clip(scaled[valid], 1, 255).astype(np.uint8)
    return out


def compressed_to_rgb(msg) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg/png, image_transport formats) as RGB uint8."""
    fmt = str(msg.format).lower().strip()
    if not any(kind in fmt for kind in ("jpeg", "jpg", "png")):
        raise ImageError(f"unsupported compressed format {msg.format!r}; expected jpeg or png")
    image = decode(bytes(msg.data), fmt.split(";")[0] or "an image")
    if image.dtype != np.uint8:
        image = _to_uint8(image.astype(np.float32))
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[..., :3]
    compressed_as = fmt.split("compressed")[-1].strip() if "compressed" in fmt else "bgr8"
    image = np.ascontiguousarray(image)
    return image if compressed_as.startswith("rgb") else cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


def encode_png(rgb: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) as PNG bytes."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError("cannot encode the image as PNG")
    return data.tobytes()


def decode(data: bytes, what: str = "an image", flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """PNG or JPEG bytes decoded by OpenCV, after their header says the result is within the limits: at most
    `max_decoded_pixels`, and over a 1080p frame at most `max_expansion` times the encoded bytes."""
    if not data:
        raise ImageError(f"{what}: no data")
    size = encoded_size(data)  # walks segment headers only: cheap, and a JPEG's EXIF/ICC may exceed 64 KB
    if size is None:
        raise ImageError(f"cannot decode {len(data)} bytes as {what}: no PNG or JPEG size in the header")
    active = limits.active()
    pixels = size[0] * size[1]
    if pixels > active.max_decoded_pixels:
        raise ImageError(f"{what} would decode to {size[0]}x{size[1]} pixels (limit {active.max_decoded_pixels}; "
                         f"{limits.how_to_raise('max_decoded_pixels')})")  # fmt: skip
    decoded = 3 * pixels
    if decoded > limits.FREE_DECODED_BYTES and decoded > active.max_expansion * len(data):
        raise ImageError(f"{what}: {len(data)} bytes would decode to {size[0]}x{size[1]} pixels, "
                         f"{decoded // len(data)} times its size (limit {active.max_expansion}; "
                         f"{limits.how_to_raise('max_expansion')})")  # fmt: skip
    _check_size(*size)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise ImageError(f"cannot decode {len(data)} bytes as {what}")
    return image


def encoded_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR or a JPEG's start-of-frame marker, without decoding; None if
    `head` (the file, or its first bytes) holds neither."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if not head.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            at += 1 if marker == 0xFF else 2  # fill bytes and markers without a length
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return width, height
        at += 2 + struct.unpack(">H", head[at + 2 : at + 4])[0]
    return None
