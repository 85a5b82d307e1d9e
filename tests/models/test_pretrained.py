"""Official checkpoints load strictly; wrong ones fail with a message that helps."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from edgesr.errors import WeightsError
from edgesr.models import create_model, list_pretrained

VARIANTS = [v.name for v in list_pretrained()]


@pytest.mark.parametrize("variant", VARIANTS)
def test_official_checkpoint_loads_strictly(variant: str, weights_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "1")
    model = create_model(variant)
    assert Path(model.weights_path).name == model.pretrained_cfg.filename
    sd = torch.load(weights_dir / model.pretrained_cfg.filename, map_location="cpu", weights_only=True)
    for key, value in sd.items():
        assert torch.equal(model.state_dict()[key], value.cpu()), key


def test_wrong_architecture_names_keys_and_right_model(weights_dir: Path) -> None:
    with pytest.raises(WeightsError) as err:
        create_model("rlfn", scale=4, pretrained=str(weights_dir / "rfdn_baseline.pth"))
    msg = str(err.value)
    assert "missing keys: block_1" in msg and "unexpected keys: B1." in msg and "These weights are rfdn x4" in msg


def test_wrong_scale_names_shapes_and_right_variant(weights_dir: Path) -> None:
    with pytest.raises(WeightsError) as err:
        create_model("rlfn", scale=4, pretrained=str(weights_dir / "rlfn_x2.pth"))
    assert "holds x2 weights (rlfn x2), but scale 4 was asked for" in str(err.value)


def test_wrapped_and_prefixed_checkpoints_load(weights_dir: Path, tmp_path: Path) -> None:
    sd = torch.load(weights_dir / "rlfn_s_x4.pth", map_location="cpu", weights_only=True)
    wrapped = tmp_path / "basicsr_style.pth"
    torch.save({"params_ema": {f"module.{k}": v for k, v in sd.items()}, "iter": 5}, wrapped)
    model = create_model("rlfn_s", scale=4, pretrained=str(wrapped))
    assert torch.equal(model.conv_1.weight, sd["conv_1.weight"].cpu())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file_is_a_clear_error(damage: str, weights_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    data = (weights_dir / "rlfn_x4.pth").read_bytes()
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 100, "empty": b""}[damage])
    with pytest.raises(WeightsError, match="corrupt|truncated|not a PyTorch"):
        create_model("rlfn", scale=4, pretrained=str(bad))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such file|not found"):
        create_model("rlfn", scale=4, pretrained=str(tmp_path / "nope.pth"))


def test_pickled_code_is_never_executed(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"conv_1.weight": Evil()}, path)
    with pytest.raises(WeightsError):
        create_model("rlfn", scale=4, pretrained=str(path))
    assert not (tmp_path / "pwned").exists()


def test_renamed_official_copy_is_hash_checked(weights_dir: Path, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    copy = folder / "rlfn_x4.pth"
    shutil.copy(weights_dir / "rlfn_x4.pth", copy)
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("EDGESR_WEIGHTS_DIR", str(folder))
    with pytest.raises(WeightsError, match="sha256"):
        create_model("rlfn_x4")
