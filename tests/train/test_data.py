"""Training patches: exact on-the-fly LR, alignment, determinism, DDP sharding, resumable stream, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgesr.data import bicubic_downscale, modcrop, read_image
from edgesr.errors import ImageError, UserInputError
from edgesr.train.data import PatchSampler, TrainPatchDataset, _augment, lr_patch_from_hr


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lr_patch_from_window_equals_full_image_lr(bsd68_hr: Path, scale: int) -> None:
    hr = modcrop(read_image(bsd68_hr / "101085.png"), scale)
    full = bicubic_downscale(hr, scale)
    h, w = full.shape[:2]
    p = 17
    for top, left in [(0, 0), (h - p, w - p), (1, 2), (h // 2, w // 3), (0, w - p)]:
        got = lr_patch_from_hr(hr, scale, top, left, p)
        np.testing.assert_array_equal(got, full[top:top + p, left:left + p])


@pytest.mark.parametrize("cache", ["ram", "none"])
def test_patches_are_aligned_augmented_and_deterministic(set5_hr: Path, cache: str) -> None:
    ds = TrainPatchDataset(set5_hr, 2, 20, cache=cache, seed=3)
    ref = TrainPatchDataset(set5_hr, 2, 20, cache="ram", seed=3)
    seen_flips = set()
    for key in range(40):
        item = ds[key]
        assert item["lr"].shape == (3, 20, 20) and item["hr"].shape == (3, 40, 40)
        assert str(item["lr"].dtype) == "torch.uint8"
        np.testing.assert_array_equal(item["lr"].numpy(), ref[key]["lr"].numpy())  # lazy == cached
        np.testing.assert_array_equal(item["hr"].numpy(), ds[key]["hr"].numpy())  # a pure function of the key
        image, top, left, flips = ds.sample_params(key)
        seen_flips.add(flips)
        hr_full = modcrop(read_image(ds.infos[image].hr_path), 2)
        lr_full = bicubic_downscale(hr_full, 2)
        want_hr = _augment(hr_full[2 * top:2 * top + 40, 2 * left:2 * left + 40], *flips)
        want_lr = _augment(lr_full[top:top + 20, left:left + 20], *flips)
        np.testing.assert_array_equal(item["hr"].numpy().transpose(1, 2, 0), want_hr)
        np.testing.assert_array_equal(item["lr"].numpy().transpose(1, 2, 0), want_lr)
        # physical check: the HR patch, downscaled, is the LR patch away from the patch border
        down = bicubic_downscale(item["hr"].numpy().transpose(1, 2, 0), 2).astype(int)
        lr = item["lr"].numpy().transpose(1, 2, 0).astype(int)
        assert np.abs(down[3:-3, 3:-3] - lr[3:-3, 3:-3]).max() <= 1
    assert len(seen_flips) >= 6  # the 8 flips/rotations all occur


def test_lr_folder_is_read(set5: Path) -> None:
    ds = TrainPatchDataset(set5 / "HR", 4, 16, lr_dir=set5 / "LR_bicubic" / "X4", augment=False)
    image, top, left, _ = ds.sample_params(5)
    lr_full = read_image(ds.infos[image].lr_path)
    np.testing.assert_array_equal(ds[5]["lr"].numpy().transpose(1, 2, 0), lr_full[top:top + 16, left:left + 16])


def test_sampler_shards_the_global_batch_and_resumes(set5_hr: Path) -> None:
    ds = TrainPatchDataset(set5_hr, 2, 16, epoch_multiple=8)
    assert len(ds) % 8 == 0 and len(ds) % ds.num_images == 0  # every image equally often per epoch
    single = PatchSampler(ds, 1, 0, seed=1)
    ranks = [PatchSampler(ds, 2, r, seed=1) for r in range(2)]
    for epoch in (0, 1):
        single.set_epoch(epoch)
        for s in ranks:
            s.set_epoch(epoch)
        one = list(single)
        two = [list(s) for s in ranks]
        for step in range(len(one) // 8):
            glob = set(one[8 * step:8 * step + 8])
            shard = set(two[0][4 * step:4 * step + 4]) | set(two[1][4 * step:4 * step + 4])
            assert glob == shard
        assert min(one) == epoch * len(ds)  # keys carry the epoch: new crops every epoch
    stream = list(single)  # epoch 1
    single.start_at(len(ds) + 24)
    assert single.epoch == 1 and list(single) == stream[24:]


def test_bad_hr_folders(tmp_path: Path, set5_hr: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        TrainPatchDataset(tmp_path / "nope", 2, 16)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserInputError, match="contains no images"):
        TrainPatchDataset(empty, 2, 16)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageError, match="cannot read image"):
        TrainPatchDataset(broken, 2, 16)
    with pytest.raises(UserInputError, match=r"patch 200 at x2 needs HR images of at least 400x400.*--patch 114"):
        TrainPatchDataset(set5_hr, 2, 200)


def test_lr_folder_of_the_wrong_scale(set5: Path) -> None:
    with pytest.raises(UserInputError, match="wrong scale"):
        TrainPatchDataset(set5 / "HR", 2, 16, lr_dir=set5 / "LR_bicubic" / "X4")
