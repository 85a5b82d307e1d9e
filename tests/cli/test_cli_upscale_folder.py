"""`edgesr upscale` on folders and on the inputs people have: shards, skip/force, bad files, EXIF, 16-bit,
grey+alpha, refused outputs and oversized images."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MODEL = "rlfn_ntire"


@pytest.fixture(autouse=True, scope="module")
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGESR_OFFLINE", "1")
        yield


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`edgesr upscale ARGS` in this process (torch is already loaded), exit code and output captured."""
    from edgesr.cli.main import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["upscale", *args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _crop(datasets_dir: Path, name: str, box: tuple[int, int, int, int]) -> Image.Image:
    return Image.open(datasets_dir / "DIV2K_test_LR_x4" / name).convert("RGB").crop(box)


@pytest.fixture(scope="session")
def src_tree(datasets_dir: Path, tmp_path_factory) -> Path:
    """Four small real crops (one in a subfolder, one JPEG) and one corrupt file."""
    root = tmp_path_factory.mktemp("src")
    (root / "sub").mkdir()
    _crop(datasets_dir, "0901.png", (0, 0, 40, 30)).save(root / "a.png")
    _crop(datasets_dir, "0902.png", (10, 10, 47, 33)).save(root / "b.png")
    _crop(datasets_dir, "0903.png", (5, 0, 41, 36)).save(root / "sub" / "c.png")
    _crop(datasets_dir, "0904.png", (0, 0, 32, 32)).save(root / "d.jpg", quality=90)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return root


@pytest.fixture(scope="module")
def full_run(offline, src_tree: Path, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("out") / "all"
    return out, _cli(MODEL, str(src_tree), str(out), "-r", "--tile", "24", "--halo", "8")


def test_folder_reports_bad_file_and_writes_the_rest(full_run, src_tree: Path, tmp_path: Path) -> None:
    out, proc = full_run
    assert proc.returncode == 1, proc.stderr
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    assert "4 upscaled" in proc.stdout and "1 failed" in proc.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "b.png", "d.jpg", "sub/c.png"]
    # equal to the single-image path
    single = tmp_path / "c.png"
    assert _cli(MODEL, str(src_tree / "sub" / "c.png"), str(single), "--tile", "24", "--halo", "8").returncode == 0
    assert np.array_equal(np.asarray(Image.open(single)), np.asarray(Image.open(out / "sub" / "c.png")))
    assert Image.open(out / "b.png").size == (37 * 4, 23 * 4)


def test_shards_together_equal_the_unsharded_run(full_run, src_tree: Path, tmp_path: Path) -> None:
    out, _ = full_run
    parts = tmp_path / "parts"
    codes = [_cli(MODEL, str(src_tree), str(parts), "-r", "--tile", "24", "--halo", "8", "--shard", f"{k}/2",
                  "--glob", "*.png").returncode for k in (1, 2)]
    assert sorted(codes) == [0, 1]  # the broken file lands in exactly one shard
    got = sorted(p.relative_to(parts).as_posix() for p in parts.rglob("*") if p.is_file())
    assert got == ["a.png", "b.png", "sub/c.png"]
    for rel in got:
        assert np.array_equal(np.asarray(Image.open(parts / rel)), np.asarray(Image.open(out / rel)))


def test_existing_outputs_are_skipped_unless_force(src_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep")
    proc = _cli(MODEL, str(src_tree), str(out), "--glob", "a.png")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout
    assert (out / "a.png").read_bytes() == b"keep"
    proc = _cli(MODEL, str(src_tree), str(out), "--glob", "a.png", "--force", "--ext", "webp")
    assert proc.returncode == 0 and Image.open(out / "a.webp").size == (160, 120)


@pytest.mark.parametrize("case", ["dst_is_src", "dst_inside_src", "file_dst_is_src", "bad_ext", "bad_shard",
                                  "shard_of_file", "too_large"])
def test_refused_before_any_compute(case: str, src_tree: Path, tmp_path: Path) -> None:
    args = {
        "dst_is_src": [str(src_tree), str(src_tree), "--force"],
        "dst_inside_src": [str(src_tree), str(src_tree / "sub" / "out"), "-r"],
        "file_dst_is_src": [str(src_tree / "a.png"), str(src_tree / "a.png"), "--force"],
        "bad_ext": [str(src_tree / "a.png"), str(tmp_path / "a.xyz")],
        "bad_shard": [str(src_tree), str(tmp_path / "o"), "--shard", "3/2"],
        "shard_of_file": [str(src_tree / "a.png"), str(tmp_path / "a.png"), "--shard", "1/2"],
        "too_large": [str(src_tree / "a.png"), str(tmp_path / "a.png"), "--max-megapixels", "0.001"],
    }[case]
    expect = {"dst_is_src": "input folder itself", "dst_inside_src": "inside the input folder",
              "file_dst_is_src": "input file itself", "bad_ext": ".png", "bad_shard": "1 <= K <= N",
              "shard_of_file": "apply to folders", "too_large": "40x30 (0.0 MP)"}[case]
    before = sorted(p.name for p in src_tree.rglob("*"))
    proc = _cli("no_such_model_is_loaded" if case != "too_large" else MODEL, *args)
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in src_tree.rglob("*")) == before
    assert not (tmp_path / "a.png").exists()


def test_decompression_bomb_below_pil_limit_is_refused_from_the_header(tmp_path: Path) -> None:
    """An 81-megapixel PNG of ~80 KB: refused from its header with a clear message, no large allocation."""
    bomb = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000)).save(bomb, optimize=True)
    assert bomb.stat().st_size < 300_000
    code = ("import resource, sys\nfrom edgesr.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nfinally:\n"
            "    print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    env = dict(os.environ, EDGESR_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code, "upscale", MODEL, str(bomb), str(tmp_path / "o.png"),
                           "--max-megapixels", "50"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "9000x9000 (81.0 MP)" in proc.stderr and "Traceback" not in proc.stderr
    rss_mb = int(proc.stderr.split("maxrss_kb")[1].split()[0]) / 1024
    assert rss_mb < 1500  # the model and torch, not an 81 MP decode or a 1.3 GP output


def test_default_limit_follows_free_memory() -> None:
    from edgesr.inference.guard import default_max_megapixels

    # 16 GiB free, half of it, x4: 12 B per output pixel * 16 + 10 B per input pixel
    assert default_max_megapixels(4, available=16 * 1024**3) == pytest.approx(8 * 1024**3 / 202 / 1e6)
    assert default_max_megapixels(4, available=0) is None


def test_exif_orientation_applied_unless_disabled(src_tree: Path, tmp_path: Path) -> None:
    img = Image.open(src_tree / "b.png")  # 37x23
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    src = tmp_path / "photo.jpg"
    img.save(src, exif=exif, quality=95)
    assert _cli(MODEL, str(src), str(tmp_path / "on.png")).returncode == 0
    assert _cli(MODEL, str(src), str(tmp_path / "off.png"), "--no-exif-orientation").returncode == 0
    assert Image.open(tmp_path / "on.png").size == (23 * 4, 37 * 4)
    assert Image.open(tmp_path / "off.png").size == (37 * 4, 23 * 4)


def test_16bit_png_and_grey_alpha(src_tree: Path, tmp_path: Path) -> None:
    import png

    rgb = np.asarray(Image.open(src_tree / "a.png")).astype(np.uint16) * 257 + 100
    deep = tmp_path / "deep.png"
    png.from_array(rgb.reshape(rgb.shape[0], -1), "RGB;16").save(str(deep))
    assert _cli(MODEL, str(deep), str(tmp_path / "deep16.png"), "--keep-16bit").returncode == 0
    assert _cli(MODEL, str(deep), str(tmp_path / "deep8.png")).returncode == 0
    w, h, rows, info = png.Reader(filename=str(tmp_path / "deep16.png")).asDirect()
    out16 = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, 3)
    assert info["bitdepth"] == 16 and (w, h) == (160, 120)
    out8 = np.asarray(Image.open(tmp_path / "deep8.png"))
    assert out8.dtype == np.uint8
    assert np.abs(out16 / 257.0 - out8).mean() < 1.0  # the same picture, finer levels
    assert len(np.unique(out16)) > 4 * len(np.unique(out8))

    la = Image.merge("LA", [Image.open(src_tree / "a.png").convert("L"), Image.linear_gradient("L").resize((40, 30))])
    la.save(tmp_path / "la.png")
    assert _cli(MODEL, str(tmp_path / "la.png"), str(tmp_path / "la_x4.png")).returncode == 0
    out = Image.open(tmp_path / "la_x4.png")
    assert out.mode == "LA" and out.size == (160, 120)
    assert np.asarray(out)[..., 1].min() < 30 and np.asarray(out)[..., 1].max() > 225
