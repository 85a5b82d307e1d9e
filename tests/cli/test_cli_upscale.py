"""`edgesr upscale` / `models` / `eval` from the command line: outputs, colour modes, bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgesr.cli.main import cli

pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("EDGESR_OFFLINE", "1")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def lr_png(datasets_dir: Path, tmp_path: Path) -> Path:
    """An odd-sized crop of a real DIV2K LR image."""
    img = Image.open(datasets_dir / "DIV2K_test_LR_x4" / "0905.png").convert("RGB").crop((0, 0, 61, 47))
    path = tmp_path / "lr.png"
    img.save(path)
    return path


def test_models_table() -> None:
    res = run("models")
    assert res.exit_code == 0
    assert "rlfn_x4 (x4: 32.21/0.8958)" in res.output and "edsr" in res.output


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_upscale_colour_modes(mode: str, lr_png: Path, tmp_path: Path) -> None:
    src = tmp_path / f"in_{mode}.png"
    img = Image.open(lr_png)
    if mode == "RGBA":
        img = img.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(img.size))
    else:
        img = img.convert(mode)
    img.save(src)
    dst = tmp_path / f"out_{mode}.png"
    res = run("upscale", "rlfn_ntire", str(src), str(dst), "--tile", "32", "--halo", "8")
    assert res.exit_code == 0, res.output
    out = Image.open(dst)
    assert out.size == (61 * 4, 47 * 4)
    assert out.mode == {"RGB": "RGB", "L": "L", "RGBA": "RGBA", "P": "RGB"}[mode]
    if mode == "RGBA":
        alpha = np.asarray(out)[..., 3].astype(int)
        assert alpha.min() < 30 and alpha.max() > 225  # the gradient survived


def test_existing_output_needs_force(lr_png: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.png"
    dst.write_bytes(b"keep me")
    res = run("upscale", "rlfn_ntire", str(lr_png), str(dst))
    assert res.exit_code != 0 and "--force" in str(res.exception or res.output)
    assert dst.read_bytes() == b"keep me"
    res = run("upscale", "rlfn_ntire", str(lr_png), str(dst), "--force")
    assert res.exit_code == 0 and Image.open(dst).size == (244, 188)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, EDGESR_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "edgesr.cli.main", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("case", ["missing_weights", "corrupt_weights", "wrong_arch", "bad_scale", "bad_image",
                                  "missing_image", "unknown_model", "bad_ext"])
def test_bad_input_clear_error_no_output(case: str, lr_png: Path, tmp_path: Path, weights_dir: Path) -> None:
    dst = tmp_path / "out.png"
    src = str(lr_png)
    args = ["rlfn", src, str(dst)]
    if case == "missing_weights":
        args += ["--weights", str(tmp_path / "none.pth")]
        expect = "no such file"
    elif case == "corrupt_weights":
        bad = tmp_path / "bad.pth"
        bad.write_bytes((weights_dir / "rlfn_x4.pth").read_bytes()[:5000])
        args += ["--weights", str(bad)]
        expect = "corrupt"
    elif case == "wrong_arch":
        args += ["--weights", str(weights_dir / "imdn_baseline.pth")]
        expect = "These weights are imdn x4"
    elif case == "bad_scale":
        args += ["--scale", "5"]
        expect = "supported scales: 2, 3, 4"
    elif case == "bad_image":
        junk = tmp_path / "junk.png"
        junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
        args = ["rlfn", str(junk), str(dst)]
        expect = "cannot read image"
    elif case == "missing_image":
        args = ["rlfn", str(tmp_path / "nope.png"), str(dst)]
        expect = "file not found"
    elif case == "unknown_model":
        args = ["rfnd", src, str(dst)]
        expect = "rfdn"
    else:
        dst = tmp_path / "out.xyz"
        args = ["rlfn", src, str(dst)]
        expect = ".png"
    proc = _cli("upscale", *args)
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp leftovers


def test_eval_bad_dataset_is_clear(tmp_path: Path) -> None:
    proc = _cli("eval", "rlfn", "--dataset", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "nothing" in proc.stderr


def test_tiled_cli_matches_untiled(datasets_dir: Path, tmp_path: Path) -> None:
    src = datasets_dir / "DIV2K_test_LR_x4" / "0901.png"
    crop = tmp_path / "crop.png"
    Image.open(src).convert("RGB").crop((100, 50, 100 + 180, 50 + 140)).save(crop)
    a, b = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert run("upscale", "rlfn", str(crop), str(a), "--tile", "0").exit_code == 0
    assert run("upscale", "rlfn", str(crop), str(b), "--tile", "64", "--halo", "32").exit_code == 0
    x, y = np.asarray(Image.open(a)).astype(float), np.asarray(Image.open(b)).astype(float)
    mse = ((x - y) ** 2).mean()
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) >= 50.0


@pytest.mark.slow  # three model runs; the tile-128 table is benchmarks/tiling_seams.py
def test_two_pass_tiles_reproduce_the_untiled_output(lr_png: Path, tmp_path: Path) -> None:
    """--two-pass gives every tile the whole image's ESA attention maps: hard-cropped tiles then reproduce the
    untiled output, where plain tiles pool attention over their own windows and differ."""
    outs = {name: tmp_path / f"{name}.png" for name in ("whole", "tiled", "two_pass")}
    tiles = ["--tile", "24", "--halo", "8"]
    for name, extra in (("whole", ["--tile", "0"]), ("tiled", tiles), ("two_pass", [*tiles, "--two-pass"])):
        res = run("upscale", "rlfn_ntire", str(lr_png), str(outs[name]), *extra)
        assert res.exit_code == 0, res.output
    whole, tiled, two = (np.asarray(Image.open(outs[n])).astype(np.int16) for n in ("whole", "tiled", "two_pass"))
    assert np.abs(tiled - whole).max() > 0
    assert np.abs(two - whole).max() <= 1 and (two != whole).mean() < 1e-3


@pytest.mark.parametrize("case", ["artifact", "no_esa", "self_ensemble", "video"])
def test_two_pass_refused_where_it_cannot_apply(case: str, lr_png: Path, tmp_path: Path, capsys) -> None:
    from edgesr.cli.main import main

    dst = tmp_path / "out.png"
    args, expect = ["rlfn_ntire", str(lr_png), str(dst), "--two-pass"], "--two-pass"
    if case == "artifact":
        args = ["--artifact", str(tmp_path / "model.onnx"), str(lr_png), str(dst), "--two-pass"]
    elif case == "no_esa":
        args[0], expect = "imdn", "no ESA"
    elif case == "self_ensemble":
        args.append("--self-ensemble")
    else:
        dst = tmp_path / "out.mp4"
        args[2] = str(dst)
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", *args])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("Error:") and expect in err and "\n" not in err, err
    assert not dst.exists()
