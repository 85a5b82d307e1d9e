"""Benchmark datasets: shipped LR, generated LR, and clear errors for broken layouts."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgesr.data import (
    LRImageFolder,
    PairedImageDataset,
    bicubic_downscale,
    find_images,
    open_eval_dataset,
    read_image,
)
from edgesr.errors import UserInputError


def _save(path, h, w, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def test_set5_x4_pairs(datasets_dir):
    ds = open_eval_dataset(datasets_dir / "Set5", 4)
    assert len(ds) == 5 and ds.lr_files is not None
    names = []
    for item in ds:
        lr, hr = item["lr"], item["hr"]
        assert lr.dtype == hr.dtype == np.uint8 and lr.ndim == 3 and lr.shape[2] == 3
        assert (lr.shape[0] * 4, lr.shape[1] * 4, 3) == hr.shape
        names.append(item["name"])
    assert names == ["baby", "bird", "butterfly", "head", "woman"]
    np.testing.assert_array_equal(ds[1]["lr"], read_image(datasets_dir / "Set5/LR_bicubic/X4/bird.png"))


def test_set14_grayscale_hr_is_rgb(datasets_dir):
    ds = open_eval_dataset(datasets_dir / "Set14", 4)
    bridge = ds[[p.stem for p in ds.hr_files].index("bridge")]
    assert bridge["hr"].shape == (504, 504, 3) and bridge["lr"].shape == (126, 126, 3)


def test_hr_only_folder_generates_lr(datasets_dir):
    ds = open_eval_dataset(datasets_dir / "BSD68", 4, limit=2)
    assert len(ds) == 2 and ds.lr_files is None
    item = ds[0]
    assert item["hr"].shape[:2] in ((320, 480), (480, 320))  # 321x481 modcropped
    assert (item["lr"].shape[0] * 4, item["lr"].shape[1] * 4, 3) == item["hr"].shape
    np.testing.assert_array_equal(item["lr"], bicubic_downscale(item["hr"], 4))


def test_plain_folder_of_hr_images(tmp_path):
    _save(tmp_path / "b.png", 10, 14)
    _save(tmp_path / "a.png", 9, 9, seed=1)
    ds = open_eval_dataset(tmp_path, 2)
    assert [ds[i]["name"] for i in range(len(ds))] == ["a", "b"]
    assert ds[0]["hr"].shape == (8, 8, 3) and ds[0]["lr"].shape == (4, 4, 3)
    assert ds[1]["hr"].shape == (10, 14, 3) and ds[1]["lr"].shape == (5, 7, 3)


def test_lr_matched_by_stem_with_div2k_suffix(tmp_path):
    _save(tmp_path / "HR" / "0801.png", 16, 16)
    _save(tmp_path / "LR_bicubic" / "X4" / "0801x4.png", 4, 4)
    ds = open_eval_dataset(tmp_path, 4)
    assert ds.lr_files is not None and ds.lr_files[0].name == "0801x4.png"


def test_find_images_sorted_and_filtered(tmp_path):
    for name in ["b.JPG", "a.png", "c.txt", ".a.png.123.tmp", ".hidden.png", "d.webp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in find_images(tmp_path)] == ["a.png", "b.JPG", "d.webp"]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        open_eval_dataset(tmp_path / "nope", 4)
    with pytest.raises(UserInputError, match="does not exist"):
        PairedImageDataset(tmp_path / "nope", 4)
    (tmp_path / "HR").mkdir()
    with pytest.raises(UserInputError, match="no images"):
        open_eval_dataset(tmp_path, 4)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="neither an HR"):
        open_eval_dataset(empty, 4)
    with pytest.raises(UserInputError, match="no images"):
        LRImageFolder(empty)


def test_lr_missing_for_some_hr(tmp_path):
    _save(tmp_path / "HR" / "a.png", 16, 16)
    _save(tmp_path / "HR" / "b.png", 16, 16)
    _save(tmp_path / "LR_bicubic" / "X4" / "a.png", 4, 4)
    with pytest.raises(UserInputError, match=r"no image for 1 HR image.*b\.png"):
        open_eval_dataset(tmp_path, 4)


def test_lr_size_mismatch(tmp_path):
    _save(tmp_path / "HR" / "a.png", 18, 16)  # modcrop(x4) -> 16x16 -> LR 4x4
    _save(tmp_path / "LR_bicubic" / "X4" / "a.png", 8, 8)  # an x2 LR in the X4 folder
    with pytest.raises(UserInputError, match="needs 4x4"):
        open_eval_dataset(tmp_path, 4)


@pytest.mark.parametrize("scale", [0, 2.5, "4", True])
def test_bad_scale(tmp_path, scale):
    _save(tmp_path / "a.png", 8, 8)
    with pytest.raises(UserInputError, match="scale"):
        open_eval_dataset(tmp_path, scale)


def test_lr_only_folder(datasets_dir):
    ds = LRImageFolder(datasets_dir / "DIV2K_test_LR_x4", limit=1)
    assert len(ds) == 1
    item = ds[0]
    assert item["name"] == "0901" and item["lr"].shape == (339, 510, 3)
