"""Image IO: every common PNG mode reads as HxWx3 uint8; writes are atomic and never clobber."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from edgesr.data import modcrop, read_image, read_image_with_alpha, to_tensor, to_uint8, write_image
from edgesr.errors import ImageError, OutputExistsError, UserInputError


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)


def test_rgb_png(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out, rgb)
    assert read_image_with_alpha(tmp_path / "a.png")[1] is None


def test_grayscale_becomes_three_equal_channels(tmp_path, rgb):
    gray = rgb[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode == "L"
    out = read_image(tmp_path / "g.png")
    assert out.shape == (6, 9, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_rgba_drops_alpha_or_returns_it(tmp_path, rgb):
    alpha = np.arange(54, dtype=np.uint8).reshape(6, 9)
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    got_rgb, got_alpha = read_image_with_alpha(tmp_path / "a.png")
    np.testing.assert_array_equal(got_rgb, rgb)
    np.testing.assert_array_equal(got_alpha, alpha)


def test_gray_alpha(tmp_path, rgb):
    la = np.dstack([rgb[:, :, 0], rgb[:, :, 1]])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    got_rgb, got_alpha = read_image_with_alpha(tmp_path / "la.png")
    np.testing.assert_array_equal(got_rgb, np.repeat(rgb[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(got_alpha, rgb[:, :, 1])


def test_palette(tmp_path):
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
    rgb = colours[np.random.default_rng(1).integers(0, 4, (7, 5))]
    Image.fromarray(rgb).quantize(colors=4).save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), rgb)


def test_palette_with_transparency_gives_alpha(tmp_path):
    img = Image.new("P", (4, 3), 1)
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.save(tmp_path / "pt.png", transparency=0)
    rgb, alpha = read_image_with_alpha(tmp_path / "pt.png")
    assert rgb.shape == (3, 4, 3) and tuple(rgb[1, 1]) == (200, 100, 50)
    assert alpha is not None and alpha[0, 0] == 0 and alpha[1, 1] == 255


def test_sixteen_bit_png_scaled_to_eight(tmp_path):
    values = np.array([[0, 255, 128], [1, 200, 77]], np.uint16)
    Image.fromarray(values * 257).save(tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").mode.startswith("I")
    out = read_image(tmp_path / "s.png")
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[:, :, 0], values)
    Image.fromarray(np.array([[65535, 128, 129]], np.uint16)).save(tmp_path / "r.png")
    np.testing.assert_array_equal(read_image(tmp_path / "r.png")[0, :, 0], [255, 0, 1])  # nearest


def test_exif_orientation_not_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(tmp_path / "o.jpg", exif=exif, quality=100)
    assert read_image(tmp_path / "o.jpg").shape == (6, 9, 3)


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_garbage_raises_image_error(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="bad.png"):
        read_image(path)


def test_truncated_png_raises_image_error(tmp_path, rgb):
    Image.fromarray(np.tile(rgb, (20, 20, 1))).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="t.png"):
        read_image(tmp_path / "t.png")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="nope.png.*not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_write_lossless_round_trip(tmp_path, rgb, ext):
    path = write_image(tmp_path / f"out{ext}", rgb)
    np.testing.assert_array_equal(read_image(path), rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{ext}"]


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp"])
def test_write_lossy_formats(tmp_path, rgb, ext):
    write_image(tmp_path / f"out{ext}", rgb)
    assert read_image(tmp_path / f"out{ext}").shape == rgb.shape


def test_write_alpha(tmp_path, rgb):
    alpha = np.full(rgb.shape[:2], 128, np.uint8)
    write_image(tmp_path / "a.png", rgb, alpha)
    got_rgb, got_alpha = read_image_with_alpha(tmp_path / "a.png")
    np.testing.assert_array_equal(got_rgb, rgb)
    np.testing.assert_array_equal(got_alpha, alpha)
    with pytest.warns(UserWarning, match="transparency"):
        write_image(tmp_path / "a.jpg", rgb, alpha)
    with pytest.raises(UserInputError, match="alpha"):
        write_image(tmp_path / "b.png", rgb, alpha[:2])


def test_write_refuses_to_overwrite(tmp_path, rgb):
    path = tmp_path / "keep.png"
    path.write_bytes(b"original")
    with pytest.raises(OutputExistsError):
        write_image(path, rgb)
    assert path.read_bytes() == b"original"
    write_image(path, rgb, force=True)
    np.testing.assert_array_equal(read_image(path), rgb)


def test_unknown_extension_lists_choices(tmp_path, rgb):
    with pytest.raises(UserInputError, match=r"\.png.*\.jpg.*\.bmp.*\.tif.*\.webp"):
        write_image(tmp_path / "out.gif", rgb)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing(tmp_path, rgb, monkeypatch):
    def broken_save(self, *args, **kwargs):
        with open(args[0], "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageError, match="disk full"):
        write_image(tmp_path / "x.png", rgb)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), "img"])
def test_write_rejects_non_rgb_uint8(tmp_path, bad):
    with pytest.raises(UserInputError):
        write_image(tmp_path / "x.png", bad)
    assert list(tmp_path.iterdir()) == []


def test_tensor_round_trip(rgb):
    t = to_tensor(rgb)
    assert t.shape == (1, 3, 6, 9) and t.dtype == torch.float32
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    np.testing.assert_array_equal(to_uint8(t), rgb)
    t255 = to_tensor(rgb, data_range=255.0)
    np.testing.assert_array_equal(t255[0].permute(1, 2, 0).numpy(), rgb.astype(np.float32))
    np.testing.assert_array_equal(to_uint8(t255, data_range=255.0), rgb)


def test_to_uint8_clamps_and_rounds_half_to_even():
    t = torch.tensor([0.5, 1.5, 2.5, 254.5, -3.0, 300.0, 127.49]).reshape(1, 1, 1, 7)
    assert to_uint8(t, data_range=255.0)[0, :, 0].tolist() == [0, 2, 2, 254, 0, 255, 127]
    assert to_uint8(torch.tensor([-0.1, 1.2]).reshape(1, 1, 2))[0, :, 0].tolist() == [0, 255]


def test_to_uint8_rejects_batches():
    with pytest.raises(UserInputError):
        to_uint8(torch.zeros(2, 3, 4, 4))


def test_modcrop():
    img = np.zeros((13, 18, 3), np.uint8)
    assert modcrop(img, 4).shape == (12, 16, 3)
    assert modcrop(img[:, :, 0], 3).shape == (12, 18)
    with pytest.raises(UserInputError):
        modcrop(img, 0)
    with pytest.raises(ImageError):
        modcrop(img, 20)
