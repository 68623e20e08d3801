"""Frame intake: every encoding, row padding, endianness, CompressedImage formats, and bad frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from echogen_ros.interfaces import typestore
from echogen_ros.runtime import conversions as conv
from echogen_ros.runtime.images import ImageError, compressed_to_rgb, to_rgb
from echogen_ros.runtime.messages import MessageTypes

MSGS = MessageTypes.from_typestore(typestore("humble"))
HEADER = conv.header(MSGS, 12.5, "camera_optical")
RGB = np.random.default_rng(0).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


def image(encoding: str, payload: np.ndarray, width: int, height: int, step: int, bigendian: int = 0):
    return MSGS.Image(header=HEADER, height=height, width=width, encoding=encoding, is_bigendian=bigendian,
                      step=step, data=MSGS.payload(payload.tobytes()))  # fmt: skip


def padded(pixels: np.ndarray, pad: int) -> tuple[np.ndarray, int]:
    """Rows of `pixels` (H, W·bytes) followed by `pad` junk bytes each."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    junk = np.full((rows.shape[0], pad), 7, np.uint8)
    return np.concatenate([rows, junk], axis=1), rows.shape[1] + pad


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    ("encoding", "make", "expected"),
    [
        ("rgb8", lambda: RGB, lambda: RGB),
        ("bgr8", lambda: RGB[..., ::-1].copy(), lambda: RGB),
        ("rgba8", lambda: np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)]), lambda: RGB),
        ("bgra8", lambda: np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)]), lambda: RGB),
        ("mono8", lambda: RGB[..., 0].copy(), lambda: np.repeat(RGB[..., :1], 3, axis=2)),
        ("8UC3", lambda: RGB, lambda: RGB),
    ],
)
def test_eight_bit_encodings(encoding, make, expected, pad) -> None:
    data, step = padded(make(), pad)
    assert np.array_equal(to_rgb(image(encoding, data, 5, 6, step)), expected())


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [0, 1])
def test_sixteen_bit_depth_scales_and_respects_endianness(encoding: str, bigendian: int) -> None:
    depth = np.array([[0, 1000, 2000], [3000, 4000, 5000]], dtype=np.uint16)
    raw = depth.astype(">u2" if bigendian else "<u2")
    data, step = padded(raw, 2)
    out = to_rgb(image(encoding, data, 3, 2, step, bigendian))
    assert out.shape == (2, 3, 3) and out[0, 0, 0] == 0  # zero depth stays black
    assert out[1, 2, 0] == 255 and out[0, 1, 0] == 1 and np.all(np.diff(out[..., 0].ravel()[1:].astype(int)) > 0)


def test_float_depth_ignores_nan() -> None:
    depth = np.array([[np.nan, 0.5, 1.0], [1.5, 2.0, np.inf]], dtype=np.float32)
    out = to_rgb(image("32FC1", depth, 3, 2, 12))
    assert out[0, 0, 0] == 0 and out[1, 2, 0] == 0 and out[1, 1, 0] == 255 and out[0, 1, 0] == 1


@pytest.mark.parametrize(
    ("fmt", "order"),
    [("jpeg", "bgr"), ("png", "bgr"), ("bgr8; jpeg compressed bgr8", "bgr"), ("rgb8; jpeg compressed bgr8", "bgr"),
     ("rgb8; png compressed rgb8", "rgb"), ("mono8; png compressed mono8", "mono")],
)  # fmt: skip
def test_compressed_formats(fmt: str, order: str) -> None:
    big = cv2.resize(RGB, (40, 48), interpolation=cv2.INTER_NEAREST)
    source = {"bgr": big[..., ::-1], "rgb": big, "mono": big[..., 0]}[order]
    ok, encoded = cv2.imencode(".jpg" if "jpeg" in fmt else ".png", np.ascontiguousarray(source))
    msg = MSGS.CompressedImage(header=HEADER, format=fmt, data=MSGS.payload(encoded.tobytes()))
    out = compressed_to_rgb(msg)
    expected = np.repeat(big[..., :1], 3, axis=2) if order == "mono" else big
    tolerance = 40 if "jpeg" in fmt else 0
    assert out.shape == (48, 40, 3) and np.abs(out.astype(int) - expected).mean() <= tolerance / 4


BAD_IMAGES = [
    (lambda: image("yuv422", RGB, 5, 6, 15), "unsupported image encoding"),
    (lambda: image("bayer_rggb8", RGB[..., 0], 5, 6, 5), "unsupported image encoding"),
    (lambda: image("rgb8", RGB, 0, 6, 15), "outside"),
    (lambda: image("rgb8", RGB, 5, 0, 15), "outside"),
    (lambda: image("rgb8", RGB, 100000, 6, 300000), "outside"),
    (lambda: image("rgb8", RGB, 5, 6, 10), "step"),
    (lambda: image("rgb8", RGB[:3], 5, 6, 15), "bytes"),
    (lambda: image("rgb8", np.zeros(0, np.uint8), 5, 6, 15), "bytes"),
    (lambda: image("32FC1", np.zeros((6, 5), np.float32), 5, 6, 10), "step"),
    (
        lambda: MSGS.CompressedImage(header=HEADER, format="jpeg", data=MSGS.payload(b"\xff\xd8garbage")),
        "cannot decode",
    ),
    (lambda: MSGS.CompressedImage(header=HEADER, format="jpeg", data=MSGS.payload(b"")), "no data"),
    (lambda: MSGS.CompressedImage(header=HEADER, format="theora", data=MSGS.payload(b"abc")), "unsupported compressed"),
]


@pytest.mark.parametrize(("make", "message"), BAD_IMAGES)
def test_bad_frames_are_clear_errors(make, message: str) -> None:
    msg = make()
    with pytest.raises(ImageError, match=message):
        (compressed_to_rgb if hasattr(msg, "format") else to_rgb)(msg)


def test_a_jpeg_whose_metadata_runs_past_64_kb_is_still_sized_and_decoded() -> None:
    """Phone JPEGs carry EXIF and ICC segments that can push the start of frame far into the file; sizing
    from the header must walk them all, not give up after the first bytes."""
    _, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 200, np.uint8))
    icc = b"\xff\xe2" + (65533).to_bytes(2, "big") + bytes(65531)  # three maximal APP2 segments: 192 KB
    data = jpeg.tobytes()[:2] + icc * 3 + jpeg.tobytes()[2:]
    message = MSGS.CompressedImage(header=HEADER, format="jpeg", data=MSGS.payload(data))
    assert compressed_to_rgb(message).shape == (48, 64, 3)


def compressed(data: bytes, fmt: str = "png"):
    return MSGS.CompressedImage(header=HEADER, format=fmt, data=MSGS.payload(data))


def test_a_real_png_bomb_is_refused_for_its_expansion_and_a_blank_camera_jpeg_is_not(applied_limits) -> None:
    """A one-colour PNG decodes to ~800 times its bytes (a bomb, even under the pixel limit); a blank 4K JPEG,
    the worst a camera with its lens cap on sends, to ~190 times; camera frames to 2-30 times."""
    blank = np.full((2160, 3840, 3), 200, np.uint8)
    png = cv2.imencode(".png", blank)[1].tobytes()
    with pytest.raises(ImageError, match=r"times its size \(limit 500; raise with ECHOGEN_MAX_EXPANSION"):
        compressed_to_rgb(compressed(png))
    jpeg = cv2.imencode(".jpg", blank)[1].tobytes()
    assert compressed_to_rgb(compressed(jpeg, "jpeg")).shape == (2160, 3840, 3)
    applied_limits(max_expansion=100)
    with pytest.raises(ImageError, match="limit 100"):
        compressed_to_rgb(compressed(jpeg, "jpeg"))
    small = cv2.imencode(".png", blank[:480, :640])[1].tobytes()  # up to 1080p, never refused for it
    assert 3 * 640 * 480 / len(small) > 100 and compressed_to_rgb(compressed(small)).shape == (480, 640, 3)


def test_the_limits_in_force_are_the_ones_applied(applied_limits) -> None:
    png = cv2.imencode(".png", cv2.resize(RGB, (64, 48), interpolation=cv2.INTER_NEAREST))[1].tobytes()
    assert compressed_to_rgb(compressed(png)).shape == (48, 64, 3)
    applied_limits(max_decoded_pixels=1000)
    with pytest.raises(ImageError, match=r"64x48 pixels \(limit 1000; raise with ECHOGEN_MAX_DECODED_PIXELS or "
                                         r"the node's max_decoded_pixels parameter\)"):  # fmt: skip
        compressed_to_rgb(compressed(png))
    applied_limits(max_frame_side=32)
    with pytest.raises(ImageError, match="outside 1..32"):
        to_rgb(image("rgb8", np.zeros((6, 40, 3), np.uint8), 40, 6, 120))
