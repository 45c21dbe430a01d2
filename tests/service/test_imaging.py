"""Decoding uploads: formats, modes, orientation, limits checked before decoding."""

from __future__ import annotations

import io
import resource
import struct

import numpy as np
import pytest
from PIL import Image

from service.errors import BadInput, NotAnImage, TooLarge
from service.imaging import decode_alpha_png, decode_image, encode_png, resize_long_side
from tests.support.bombs import png_bomb
from tests.support.images import encode, two_objects

IMAGE, _, _ = two_objects(60, 80)
LIMIT = 40_000_000


def test_png_jpeg_webp_round_trip_to_rgb8() -> None:
    assert np.array_equal(decode_image(encode(IMAGE), max_pixels=LIMIT), IMAGE)
    for fmt in ("JPEG", "WEBP"):
        decoded = decode_image(encode(IMAGE, fmt, quality=95), max_pixels=LIMIT)
        assert decoded.shape == IMAGE.shape and decoded.dtype == np.uint8
        assert np.abs(decoded.astype(int) - IMAGE.astype(int)).mean() < 6


def test_exif_orientation_is_applied() -> None:
    image = Image.fromarray(IMAGE)
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif, quality=95)
    decoded = decode_image(buffer.getvalue(), max_pixels=LIMIT)
    assert decoded.shape == (80, 60, 3)
    upright = np.rot90(IMAGE, k=-1)
    assert np.abs(decoded.astype(int) - upright.astype(int)).mean() < 6


def _jpeg_with_raw_exif(image: np.ndarray, entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A JPEG of ``image`` with an APP1 EXIF block of the given (tag, type, count, 4-byte value)
    entries written byte by byte, so that they can break the specification."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    jpeg = buffer.getvalue()
    tiff = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, count, value in entries:
        tiff += struct.pack("<HHI", tag, kind, count) + value
    tiff += struct.pack("<I", 0) + struct.pack("<II", 1, 1)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_a_malformed_exif_tag_beside_the_orientation_still_decodes_upright() -> None:
    """The Make tag stored as a RATIONAL (ASCII by the specification) beside orientation 6:
    Pillow's exif_transpose re-serialised the block and raised AttributeError, a 500 on every
    upload route (found by a probe of odd images)."""
    data = _jpeg_with_raw_exif(
        IMAGE,
        [(0x010F, 5, 1, struct.pack("<I", 38)), (0x0112, 3, 1, struct.pack("<HH", 6, 0))],
    )
    decoded = decode_image(data, max_pixels=LIMIT)
    assert decoded.shape == (80, 60, 3)
    assert np.abs(decoded.astype(int) - np.rot90(IMAGE, k=-1).astype(int)).mean() < 6


def test_gray_palette_rgba_and_sixteen_bit_inputs_become_rgb8() -> None:
    gray = IMAGE.mean(axis=2).astype(np.uint8)
    out = decode_image(encode(gray), max_pixels=LIMIT)
    assert out.shape == (60, 80, 3) and np.array_equal(out[..., 0], gray)

    sixteen = gray.astype(np.uint16) * 257
    out = decode_image(encode(sixteen), max_pixels=LIMIT)
    assert np.abs(out[..., 0].astype(int) - gray.astype(int)).max() <= 1

    transparent = np.dstack([IMAGE, np.zeros((60, 80), np.uint8)])
    out = decode_image(encode(transparent), max_pixels=LIMIT)
    assert (out == 255).all(), "fully transparent pixels composite to white"

    palette = Image.fromarray(IMAGE).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    assert decode_image(buffer.getvalue(), max_pixels=LIMIT).shape == (60, 80, 3)


def test_refusals() -> None:
    with pytest.raises(NotAnImage):
        decode_image(b"GIF89a" + b"\x00" * 40, max_pixels=LIMIT)
    with pytest.raises(NotAnImage):
        decode_image(encode(IMAGE, "GIF"), max_pixels=LIMIT)
    with pytest.raises(BadInput):
        decode_image(b"", max_pixels=LIMIT)
    data = encode(IMAGE)
    with pytest.raises(BadInput) as caught:
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)
    assert caught.value.code == "corrupt_image"
    # A PNG whose header chunk fails its CRC is a corrupt PNG, not "not an image" (415).
    bad_crc = data[:29] + bytes([data[29] ^ 0xFF]) + data[30:]
    with pytest.raises(BadInput) as caught:
        decode_image(bad_crc, max_pixels=LIMIT)
    assert caught.value.code == "corrupt_image"
    with pytest.raises(TooLarge):
        decode_image(encode(IMAGE), max_pixels=60 * 80 - 1)


def test_decompression_bomb_is_refused_from_the_header_without_decoding() -> None:
    bomb = png_bomb(100_000, 100_000)  # 10 gigapixels; ~1 MB on the wire
    assert len(bomb) < 4_000_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TooLarge) as caught:
        decode_image(bomb, max_pixels=LIMIT)
    # Decoding 10 GPx would take 10 GB (and minutes); refusing from the header allocates nothing
    # like it. Peak memory, not time, so a busy machine cannot fail the test.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 512 * 1024  # KiB
    assert caught.value.code == "image_too_large" and "100000x100000" in caught.value.message


def test_png_encoding_round_trips_alpha_and_rgba() -> None:
    alpha = np.linspace(0, 1, 60 * 80, dtype=np.float32).reshape(60, 80)
    data = encode_png(np.round(alpha * 255).astype(np.uint8))
    assert np.abs(decode_alpha_png(data) - alpha).max() <= 0.5 / 255 + 1e-6
    rgba = np.dstack([IMAGE, np.full((60, 80), 128, np.uint8)])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(rgba)))), rgba)
    rgb = IMAGE[:, ::2]  # a strided view: RGB as it is, no channel swap
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(rgb)))), rgb)


def test_resize_long_side_bounds_the_working_size() -> None:
    small, scale = resize_long_side(IMAGE, 40)
    assert small.shape[:2] == (30, 40) and scale == 0.5
    same, scale = resize_long_side(IMAGE, 400)
    assert same is IMAGE and scale == 1.0
