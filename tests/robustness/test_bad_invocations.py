"""A table of bad `edgesr` invocations across every command: each exits 1 or 2 with an `Error:` line,
never a traceback, and leaves no file or folder in the working directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LONG = "a" * 300  # longer than NAME_MAX (255): ENAMETOOLONG
SET5 = "{shared}/datasets/Set5"

# (id, argv with {F} = the bad-files folder, {D} = its image folder; expected exit code, text in the output)
TABLE = [
    # models
    ("models-unknown-option", ["models", "--bogus"], 2, "No such option"),
    ("models-extra-arg", ["models", "extra"], 2, ""),
    ("unknown-command", ["upscal"], 2, "No such command"),
    # eval
    ("eval-no-model", ["eval"], 2, "MODEL"),
    ("eval-no-dataset", ["eval", "rlfn"], 2, "--dataset"),
    ("eval-unknown-model", ["eval", "rlfnn", "-d", "{D}"], 2, "unknown model"),
    ("eval-missing-dataset", ["eval", "rlfn_ntire", "-d", "nowhere"], 2, "nowhere"),
    ("eval-limit-0", ["eval", "rlfn", "-d", "{D}", "--limit", "0"], 2, "--limit"),
    ("eval-limit-negative", ["eval", "rlfn", "-d", "{D}", "--limit", "-1"], 2, "--limit"),
    ("eval-tile-negative", ["eval", "rlfn", "-d", "{D}", "--tile", "-1"], 2, "--tile"),
    ("eval-halo-negative", ["eval", "rlfn", "-d", "{D}", "--halo", "-4"], 2, "--halo"),
    ("eval-bad-scale", ["eval", "rlfn", "-s", "7", "-d", "{D}"], 2, "scale"),
    ("eval-json-exists", ["eval", "rlfn", "-d", "{D}", "--json", "{F}/exists.json"], 2, "already exists"),
    ("eval-long-weights", ["eval", "rlfn", "-w", LONG + ".pth", "-d", "{D}"], 2, "File name too long"),
    ("eval-pickle-weights", ["eval", "rlfn", "-w", "{F}/evil.pth", "-d", "{D}"], 2, "nothing in the file"),
    ("eval-json-long", ["eval", "rlfn", "-d", "{D}", "--json", LONG + ".json"], 2, "File name too long"),
    # upscale
    ("upscale-no-args", ["upscale"], 2, "expected MODEL SRC DST"),
    ("upscale-no-dst", ["upscale", "rlfn", "{F}/lr.png"], 2, "expected MODEL SRC DST"),
    ("upscale-missing-src", ["upscale", "rlfn_ntire", "{F}/missing.png", "out.png"], 2, "missing.png"),
    ("upscale-long-src", ["upscale", "rlfn_ntire", LONG + ".png", "out.png"], 2, "File name too long"),
    ("upscale-long-dst", ["upscale", "rlfn_ntire", "{F}/lr.png", LONG + ".png"], 2, "File name too long"),
    ("upscale-long-weights", ["upscale", "rlfn", "-w", LONG + ".pth", "{F}/lr.png", "out.png"], 2,
     "File name too long"),
    ("upscale-long-dst-folder", ["upscale", "rlfn_ntire", "{F}/lr.png", LONG + "/out.png"], 2, "too long"),
    ("upscale-tile-negative", ["upscale", "rlfn_ntire", "--tile", "-5", "{F}/lr.png", "out.png"], 2,
     "--tile must be >= 0"),
    ("upscale-halo-negative", ["upscale", "rlfn_ntire", "--halo", "-1", "{F}/lr.png", "out.png"], 2, "--halo"),
    ("upscale-bad-scale", ["upscale", "rlfn", "-s", "7", "{F}/lr.png", "out.png"], 2, "scale"),
    ("upscale-weights-scale-clash", ["upscale", "rlfn", "-w", "rlfn_x2", "-s", "4", "{F}/lr.png", "out.png"], 2,
     "x2"),
    ("upscale-unknown-model", ["upscale", "rlfnn", "{F}/lr.png", "out.png"], 2, "unknown model"),
    ("upscale-dst-exists", ["upscale", "rlfn_ntire", "{F}/lr.png", "{F}/exists.png"], 2, "already exists"),
    ("upscale-not-an-image", ["upscale", "rlfn_ntire", "{F}/notimage.png", "out.png"], 2, "notimage.png"),
    ("upscale-pickle-weights", ["upscale", "rlfn", "-w", "{F}/evil.pth", "{F}/lr.png", "out.png"], 2,
     "posix.system"),
    ("upscale-nan-weights", ["upscale", "rlfn", "-s", "2", "-w", "{F}/nan_rlfn_x2.pth", "{F}/lr.png", "out.png"], 1,
     "NaN/Inf"),
    ("upscale-artifact-missing", ["upscale", "--artifact", "{F}/missing.onnx", "{F}/lr.png", "out.png"], 2,
     "missing.onnx"),
    ("upscale-artifact-empty", ["upscale", "--artifact", "{F}/empty.onnx", "-s", "2", "{F}/lr.png", "out.png"], 2,
     "empty.onnx"),
    ("upscale-artifact-bad-backend", ["upscale", "--artifact", "{F}/tiny_x2.onnx", "-b", "nonsense", "{F}/lr.png",
                                      "out.png"], 2, "unknown backend"),
    ("upscale-artifact-unknown-ext", ["upscale", "--artifact", "{F}/notes.txt", "{F}/lr.png", "out.png"], 2,
     "-b/--backend"),
    ("upscale-backend-without-artifact", ["upscale", "rlfn", "-b", "onnxruntime", "{F}/lr.png", "out.png"], 2,
     "--backend"),
    ("upscale-artifact-scale-mismatch", ["upscale", "--artifact", "{F}/tiny_x2.onnx", "-s", "4", "{F}/lr.png",
                                         "out.png"], 2, "not x4"),
    ("upscale-artifact-1x1-refused", ["upscale", "--artifact", "{F}/pool_x2.onnx", "-s", "2", "{F}/one.png",
                                      "out.png"], 1, "failed on an input of shape (1, 3, 1, 1)"),
    ("upscale-artifact-nan", ["upscale", "--artifact", "{F}/nan_x2.onnx", "-s", "2", "{F}/lr.png", "out.png"], 1,
     "NaN/Inf"),
    ("upscale-artifact-fp16-overflow", ["upscale", "--artifact", "{F}/overflow_fp16_x2.onnx", "-s", "2",
                                        "{F}/lr.png", "out.png"], 1, "NaN/Inf"),
    # export
    ("export-no-model", ["export"], 2, "MODEL"),
    ("export-unknown-model", ["export", "rlfnn"], 2, "unknown model"),
    ("export-threads-0", ["export", "rlfn", "--threads", "0"], 2, "--threads"),
    ("export-threads-negative", ["export", "rlfn", "--threads", "-3"], 2, "--threads"),
    ("export-unknown-format", ["export", "rlfn", "--format", "tflite"], 2, "--format"),
    ("export-bad-shape", ["export", "rlfn", "--min-shape", "big"], 2, "HEIGHTxWIDTH"),
    ("export-zero-shape", ["export", "rlfn", "--max-shape", "0x16"], 2, "HEIGHTxWIDTH"),
    ("export-name-escape", ["export", "rlfn", "--name", "../escape"], 2, "plain file name"),
    ("export-long-output", ["export", "rlfn", "-o", LONG], 2, "File name too long"),
    ("export-random-and-weights", ["export", "rlfn", "--random-init", "-w", "rlfn_x4"], 2, "exclude"),
    ("export-trt-only-option", ["export", "rlfn", "--workspace", "10"], 2, "--format trt"),
    ("export-calib-without-int8", ["export", "rlfn", "--calib-count", "4"], 2, "--int8"),
    ("export-bad-scale", ["export", "rlfn", "-s", "8"], 2, "scale"),
    ("export-bad-io", ["export", "rlfn", "--io", "int4"], 2, "--io"),
    ("export-nan-weights-new-folder", ["export", "rlfn", "-s", "2", "-w", "{F}/nan_rlfn_x2.pth", "-o", "out/deep"],
     1, "NaN/Inf"),
    ("export-pickle-weights", ["export", "rlfn", "-w", "{F}/evil.pth", "-o", "out"], 2, "nothing in the file"),
    # bench
    ("bench-nothing", ["bench"], 2, "exactly one of"),
    ("bench-two-sources", ["bench", "rlfn", "--onnx", "{F}/tiny_x2.onnx"], 2, "exactly one of"),
    ("bench-limit-negative", ["bench", "rlfn", "--limit", "-1", "--images", "{D}"], 2, "--limit"),
    ("bench-limit-0", ["bench", "rlfn", "--limit", "0"], 2, "--limit"),
    ("bench-huge-size", ["bench", "rlfn_ntire", "--size", "100000x100000", "--no-memory"], 2, "memory"),
    ("bench-zero-size", ["bench", "rlfn_ntire", "--size", "0x5"], 2, "size"),
    ("bench-bad-size", ["bench", "rlfn_ntire", "--size", "abc"], 2, "size"),
    ("bench-threads-0", ["bench", "rlfn_ntire", "--threads", "0"], 2, "thread"),
    ("bench-min-iters-0", ["bench", "rlfn", "--min-iters", "0"], 2, "--min-iters"),
    ("bench-negative-seconds", ["bench", "rlfn", "--min-seconds", "-1"], 2, "--min-seconds"),
    ("bench-json-long", ["bench", "rlfn", "--json", LONG + ".json"], 2, "File name too long"),
    ("bench-json-exists", ["bench", "rlfn", "--json", "{F}/exists.json"], 2, "already exists"),
    ("bench-unknown-backend", ["bench", "rlfn_ntire", "-b", "nonsense"], 2, "nonsense"),
    ("bench-artifact-missing", ["bench", "--artifact", "{F}/missing.onnx"], 2, "not found"),
    ("bench-missing-images", ["bench", "rlfn_ntire", "--images", "nowhere", "--json", "res/r.json"], 2, "nowhere"),
    ("bench-unknown-dataset", ["bench", "rlfn_ntire", "--psnr-dataset", "NoSuchSet"], 2, "NoSuchSet"),
    ("bench-psnr-scale-mismatch", ["bench", "--artifact", "{F}/tiny_x2.onnx", "--psnr-dataset", SET5, "--size",
                                   "8x8", "--min-iters", "1", "--min-seconds", "0", "--no-memory"], 2, "not x4"),
    # prune
    ("prune-no-model", ["prune"], 2, "MODEL"),
    ("prune-no-target", ["prune", "rlfn"], 2, "--target is required"),
    ("prune-flops-2", ["prune", "rlfn", "--target", "flops=2", "-o", "p", "--images", "{D}"], 2, "flops=20G"),
    ("prune-flops-0", ["prune", "rlfn", "--target", "flops=0", "-o", "p", "--images", "{D}"], 2, "(0, 1]"),
    ("prune-unknown-kind", ["prune", "rlfn", "--target", "speed=0.5", "-o", "p", "--images", "{D}"], 2, "speed"),
    ("prune-ms-on-params", ["prune", "rlfn", "--target", "params=5ms", "-o", "p", "--images", "{D}"], 2, "ms"),
    ("prune-no-output", ["prune", "rlfn", "--target", "flops=0.5"], 2, "--output"),
    ("prune-no-images", ["prune", "rlfn", "--target", "flops=0.5", "-o", "p"], 2, "--images"),
    ("prune-missing-images", ["prune", "rlfn", "--target", "flops=0.5", "-o", "p", "--images", "nowhere"], 2,
     "nowhere"),
    ("prune-batch-0", ["prune", "rlfn", "--target", "flops=0.5", "-o", "p", "--images", "{D}", "--batch", "0"], 2,
     "--batch"),
    ("prune-latency-no-table", ["prune", "rlfn", "--target", "latency=0.5", "-o", "p", "--images", "{D}"], 2,
     "--latency-table"),
    ("prune-negative-steps", ["prune", "rlfn", "--target", "flops=0.5", "-o", "p", "--images", "{D}", "--steps",
                              "-1"], 2, "--steps"),
    ("prune-crop-too-small", ["prune", "rlfn_ntire", "--target", "flops=0.5", "-o", "p", "--images", "{D}", "--crop",
                              "8"], 2, "--crop 8"),
    ("prune-long-output", ["prune", "rlfn", "--target", "flops=0.5", "-o", LONG, "--images", "{D}"], 2, "too long"),
    # train
    ("train-no-args", ["train"], 2, "MODEL"),
    ("train-no-hr", ["train", "rlfn", "-o", "run"], 2, "--hr"),
    ("train-no-output", ["train", "rlfn", "--hr", "{D}"], 2, "--output"),
    ("train-unknown-model", ["train", "rlfnn", "--hr", "{D}", "-o", "run"], 2, "unknown model"),
    ("train-missing-hr", ["train", "rlfn", "--hr", "nowhere", "-o", "run"], 2, "nowhere"),
    ("train-bad-loss", ["train", "rlfn", "--hr", "{D}", "-o", "run", "--loss", "huber"], 2, "--loss"),
    ("train-bad-model-cfg", ["train", "rlfn", "--hr", "{D}", "-o", "run", "--model-cfg", "nokey"], 2, "KEY=VALUE"),
    # trt-check
    ("trt-check-no-args", ["trt-check"], 2, "MODEL_OR_ONNX"),
    ("trt-check-missing", ["trt-check", "{F}/missing.onnx"], 2, "missing.onnx"),
    ("trt-check-empty-onnx", ["trt-check", "{F}/empty.onnx"], 2, "not an ONNX model"),
    ("trt-check-not-onnx", ["trt-check", "{F}/notes.txt"], 2, "notes.txt"),
    ("trt-check-long", ["trt-check", LONG + ".onnx"], 2, "too long"),
    ("trt-check-unknown-model", ["trt-check", "rlfnn"], 2, "rlfnn"),
]

assert len(TABLE) >= 60 and len({row[0] for row in TABLE}) == len(TABLE)


def _argv(args: list[str], files: Path, shared: Path) -> list[str]:
    return [a.format(F=files, D=files / "images", shared=shared) for a in args]


@pytest.mark.parametrize("name,args,code,text", TABLE, ids=[row[0] for row in TABLE])
def test_bad_invocation(name: str, args: list[str], code: int, text: str, cli, bad_files: Path, shared: Path,
                        workdir: Path, list_files) -> None:
    listing = list_files
    before = listing(bad_files)
    res = cli(*_argv(args, bad_files, shared))
    assert "Traceback" not in res.output, res.output
    assert res.code == code, (res.code, res.output)
    assert text in res.output, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.stderr  # one line that says what is wrong
    assert listing(workdir) == [], "left behind: " + ", ".join(listing(workdir))
    assert listing(bad_files) == before


SUBPROCESS_ROWS = ["upscale-long-dst", "bench-huge-size", "upscale-pickle-weights"]


def test_bad_invocations_through_the_entry_point(bad_files: Path, shared: Path, workdir: Path, list_files) -> None:
    """Some rows through real processes (`python -m edgesr.cli.main`, run side by side): the exit code and
    stderr a user sees, with no warning leaking (e.g. torch's pickle-protocol UserWarning)."""
    env = {**os.environ, "EDGESR_OFFLINE": "1", "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"}
    rows = [next(row for row in TABLE if row[0] == name) for name in SUBPROCESS_ROWS]
    procs = [subprocess.Popen([sys.executable, "-m", "edgesr.cli.main", *_argv(args, bad_files, shared)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _, args, _, _ in rows]
    for (name, _, code, text), proc in zip(rows, procs):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == code and "Traceback" not in out + err and text in out + err, (name, out + err)
        assert "Warning" not in err, (name, err)
    assert list_files(workdir) == []
