"""Property-based: whatever a PNG header claims (size, bit depth, colour type) and whatever data follows,
`read_image` returns an RGB array of the claimed size or raises ImageError; it never crashes, and a header
claiming more pixels than the decompression-bomb limit is refused before any pixel buffer is allocated."""
from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgesr.data import read_image
from edgesr.errors import ImageError

# PNG colour type -> allowed bit depths (and channels per pixel)
COLOUR_TYPES = {0: ((1, 2, 4, 8, 16), 1), 2: ((8, 16), 3), 3: ((1, 2, 4, 8), 1), 4: ((8, 16), 2), 6: ((8, 16), 4)}
PIXEL_LIMIT = 64 * 64  # small limits keep every example cheap; the rule is the same at the default limit


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, depth: int, colour: int, body: str, seed: int) -> bytes:
    """A PNG with the given IHDR; `body`: "valid" (correct filtered rows), "short" (truncated rows),
    "garbage" (random bytes as IDAT) or "none" (no IDAT)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    if colour == 3:
        out += _chunk(b"PLTE", bytes(range(48)))
    rng = np.random.default_rng(seed)
    if body in ("valid", "short") and 0 < width * height <= PIXEL_LIMIT:
        channels = COLOUR_TYPES.get(colour, ((8,), 3))[1]
        row = (width * channels * depth + 7) // 8
        raw = b"".join(b"\x00" + rng.integers(0, 256, row, dtype=np.uint8).tobytes() for _ in range(height))
        if body == "short":
            raw = raw[: len(raw) // 2]
        out += _chunk(b"IDAT", zlib.compress(raw))
    elif body == "garbage":
        out += _chunk(b"IDAT", rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
    return out + _chunk(b"IEND", b"")


headers = st.fixed_dictionaries({
    "width": st.one_of(st.integers(1, 64), st.integers(1, 2**31 - 1), st.sampled_from([0, 2**31, 2**32 - 1])),
    "height": st.one_of(st.integers(1, 64), st.integers(1, 2**31 - 1), st.sampled_from([0, 2**31, 2**32 - 1])),
    "colour": st.sampled_from([0, 2, 3, 4, 6, 1, 5, 7]),  # 1, 5, 7 are not PNG colour types
    "depth": st.sampled_from([1, 2, 4, 8, 16, 3, 0]),
    "body": st.sampled_from(["valid", "short", "garbage", "none"]),
    "seed": st.integers(0, 2**16),
})


@pytest.fixture(scope="module")
def small_bomb_limit():
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = PIXEL_LIMIT // 2  # PIL refuses above twice this
    yield
    Image.MAX_IMAGE_PIXELS = before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=headers)
def test_png_headers_never_crash(h, tmp_path_factory, small_bomb_limit) -> None:
    path = tmp_path_factory.mktemp("png") / "x.png"
    path.write_bytes(png_bytes(**h))
    tracemalloc.start()
    try:
        img = read_image(path)
    except ImageError:
        img = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 8 * 2**20  # bounded: never the size the header claims
    if img is not None:
        valid = h["colour"] in COLOUR_TYPES and h["depth"] in COLOUR_TYPES[h["colour"]][0]
        assert valid and h["body"] in ("valid", "short") and 0 < h["width"] * h["height"] <= PIXEL_LIMIT
        assert img.dtype == np.uint8 and img.shape == (h["height"], h["width"], 3)


def test_huge_claimed_size_is_refused_at_the_default_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(60_000, 60_000, 8, 2, "none", 0))  # 3.6 G pixels claimed, a few bytes on disk
    with pytest.raises(ImageError, match="bomb|exceeds limit"):
        read_image(path)
