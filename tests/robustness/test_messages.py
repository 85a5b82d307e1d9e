"""Messages that say what happened, in the user's terms."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edgesr.errors import MissingDependencyError, UserInputError, WeightsError
from edgesr.models.weights import read_checkpoint


def test_refused_pickle_names_the_global_and_says_nothing_ran(bad_files: Path, recwarn) -> None:
    with pytest.raises(WeightsError) as info:
        read_checkpoint(bad_files / "evil.pth")
    msg = str(info.value)
    assert "'posix.system'" in msg and "nothing in the file was executed" in msg
    assert msg.endswith("from a trusted source.")  # whole, not cut at 200 characters
    assert "corrupt" not in msg


def test_refused_plain_pickle_leaks_no_torch_warning(tmp_path: Path, recwarn) -> None:
    import pickle

    path = tmp_path / "plain.pkl"
    with open(path, "wb") as f:
        pickle.dump({"w": [1.0, 2.0]}, f, protocol=4)
    with pytest.raises(WeightsError, match="nothing in the file was executed"):
        read_checkpoint(path)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_safetensors_without_the_library_is_not_called_corrupt(tmp_path: Path, monkeypatch) -> None:
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    for name in ("w.safetensors", "w.pth"):  # recognised by its extension, or by its header
        path = tmp_path / name
        path.write_bytes(struct.pack("<Q", len(header)) + header + np.zeros(2, np.float32).tobytes())
        monkeypatch.setitem(sys.modules, "safetensors", None)  # not installed
        monkeypatch.setitem(sys.modules, "safetensors.torch", None)
        with pytest.raises(MissingDependencyError, match="pip install safetensors") as info:
            read_checkpoint(path)
        assert "corrupt" not in str(info.value)


def test_trt_check_refuses_a_zero_byte_onnx(bad_files: Path) -> None:
    from edgesr.export.tensorrt.readiness import check_readiness

    with pytest.raises(UserInputError, match=r"\(0 bytes\) is not an ONNX model"):
        check_readiness(bad_files / "empty.onnx")


def test_input_spec_names_dynamic_dimensions() -> None:
    from edgesr.runtimes.base import InputSpec

    # an NCHW model whose sidecar claims NHWC reads as (N, W, 3, H) at the edge
    spec = InputSpec(shape=(None, None, 3, None))
    assert "shape (N, C, 3, W)" in spec.describe()
    with pytest.raises(UserInputError, match=r"\(N, C, 3, W\)"):
        spec.validate(np.zeros((1, 3, 8, 8), np.float32))


def test_unknown_extension_names_the_option(tmp_path: Path) -> None:
    from edgesr.runtimes import create_runner

    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(UserInputError, match="-b/--backend") as info:
        create_runner(tmp_path / "model.bin")
    assert "Pass backend=" not in str(info.value)


@pytest.mark.parametrize("field,value", [("tile", -5), ("halo", -1), ("align", 0), ("min_size", 0)])
def test_bad_tiling_speaks_in_options_not_reprs(field: str, value: int) -> None:
    from edgesr.inference.tiling import TilingConfig

    with pytest.raises(UserInputError) as info:
        TilingConfig(**{field: value}).validate()
    assert "TilingConfig(" not in str(info.value) and f"--{field.replace('_', '-')} must be >=" in str(info.value)
