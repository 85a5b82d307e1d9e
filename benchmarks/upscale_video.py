"""Video at scale: a 10-second 360p clip with an audio track, upscaled x4 through an exported artifact.

The clip is made of real pixels (a window panning over a mirrored mosaic of a DIV2K LR image, 640x360) with a
440 Hz AAC tone, encoded as ordinary H.264 yuv420p. It is upscaled by `upscale_video`, the function behind
`edgesr upscale --artifact A in.mp4 out.mp4`, with the default encoder (libx264, yuv420p, CRF 18), and checked:

* frame count, frame rate, duration and the audio stream (packet for packet) kept;
* model path: every upscaled frame *before encoding* against the image path (`upscale_tiled`, what
  `upscale_file` runs) on the same decoded input frame: PSNR and exact equality;
* codec loss on its own: every decoded output frame against its own pre-encoding frame;
* resume: the first `--resume-seconds` of the clip, re-encoded losslessly as input, upscaled by the CLI in two
  segments with a lossless encoder (libx264rgb, bgr0, CRF 0), killed (SIGKILL) once its first segment is finished, then
  `--resume`d; its decoded frames against the uninterrupted run's pre-encoding frames (equal bit for bit
  when resume works, since the lossless encoder returns exactly what it was given).

The video run's own time excludes the reference (image-path) computation, which is timed apart.

    python benchmarks/upscale_video.py --artifact out/exports/rlfn_x4.onnx [--seconds 10] [--fps 24] [--tile 0]
        [--batch 4] [--reference-every 1] [--resume-seconds 1] [--md FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from edgesr.metrics import psnr_between
from edgesr.paths import shared_dir
from scripts.make_sample import video

WIDTH, HEIGHT = 640, 360
LOSSLESS = ["--codec", "libx264rgb", "--pix-fmt", "bgr0", "--crf", "0"]


def panning_frames(count: int) -> list[np.ndarray]:
    """`count` 640x360 frames of real pixels: a window moving diagonally over a 2x2 mirrored mosaic of a
    DIV2K LR image (1020x678), about 1.6 pixels per frame at 24 fps for 10 s."""
    img = np.asarray(Image.open(shared_dir() / "datasets" / "DIV2K_test_LR_x4" / "0905.png").convert("RGB"))
    row = np.concatenate([img, img[:, ::-1]], axis=1)
    mosaic = np.concatenate([row, row[::-1]], axis=0)
    span_y, span_x = mosaic.shape[0] - HEIGHT, mosaic.shape[1] - WIDTH
    steps = max(count - 1, 1)
    return [np.ascontiguousarray(mosaic[round(i * span_y / steps):][:HEIGHT, round(i * span_x / steps):][:, :WIDTH])
            for i in range(count)]


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def audio_packets(path: Path) -> list[tuple[int | None, bytes]]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [(p.pts, bytes(p)) for p in container.demux(container.streams.audio[0]) if p.size]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return psnr_between(a.astype(np.float64), b.astype(np.float64), 255.0)


def stats(values: list[float]) -> str:
    finite = [v for v in values if np.isfinite(v)]
    exact = len(values) - len(finite)
    low = f"min {min(finite):.2f} dB, mean {np.mean(finite):.2f} dB" if finite else "all identical"
    return f"{low}; {exact} of {len(values)} frames identical (inf dB)"


def kill_after_first_segment(cmd: list[str], dst: Path) -> tuple[int, float]:
    """Run `cmd`, SIGKILL it as soon as its manifest records segment 0 as finished: (exit code, seconds)."""
    from edgesr.video.segments import MANIFEST, work_dir_for

    manifest = work_dir_for(dst) / MANIFEST
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        try:
            if "0" in json.loads(manifest.read_text()).get("done", {}):
                proc.send_signal(signal.SIGKILL)
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return proc.wait(), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artifact", type=Path, required=True, help="an exported x4 model (e.g. rlfn_x4.onnx)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--fps", type=int, default=24)
    ap.add_argument("--tile", type=int, default=0, help="--tile (0: whole frames)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reference-every", type=int, default=1, metavar="K",
                    help="compare every K-th frame with the image path (1: all; the image path doubles the compute)")
    ap.add_argument("--resume-seconds", type=int, default=1,
                    help="length of the kill-and-resume check, in two segments (0: skip)")
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()

    from edgesr.export.tensorrt.profiles import plan_runner_tiling
    from edgesr.inference.stitch import upscale_tiled
    from edgesr.inference.tiling import TilingConfig
    from edgesr.runtimes import create_runner
    from edgesr.video import VideoOptions, probe_video, upscale_video

    work = Path(tempfile.mkdtemp(prefix="edgesr_video_"))
    src, dst = work / "clip_360p.mp4", work / "clip_x4.mp4"
    video(src, panning_frames(args.seconds * args.fps), fps=args.fps)
    lr = decode(src)  # what the video path sees: the decoded H.264 frames
    source = probe_video(src)

    runner = create_runner(args.artifact).activate()
    plan, scale = plan_runner_tiling(runner, args.tile, 32)
    fn = plan.wrap(runner.as_sr_function(), scale)
    config = TilingConfig(plan.tile, plan.halo, 1, plan.min_size)
    shape = (len(lr), HEIGHT * scale, WIDTH * scale, 3)
    before = np.lib.format.open_memmap(work / "before_encoding.npy", "w+", np.uint8, shape)
    model_psnr: list[float] = []
    reference_seconds = 0.0

    def compare(first: int, frames: np.ndarray) -> None:
        """Keep each frame as it goes to the encoder and compare it with the image path on the same input."""
        nonlocal reference_seconds
        t0 = time.perf_counter()
        for i, frame in enumerate(frames, start=first):
            before[i] = frame
            if i % args.reference_every == 0:
                model_psnr.append(psnr(frame, upscale_tiled(fn, lr[i], scale, config)))
        reference_seconds += time.perf_counter() - t0
        done, spent = first + len(frames), time.perf_counter() - wall0 - reference_seconds
        print(f"{done}/{len(lr)} frames, video path {spent:.0f} s ({done / spent:.3f} frames/s), reference "
              f"{reference_seconds:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)

    options = VideoOptions(tile=plan.tile, halo=plan.halo, min_size=plan.min_size, batch=args.batch)
    load_start, wall0 = os.getloadavg(), time.perf_counter()
    report = upscale_video(fn, src, dst, scale, options, engine_id=f"artifact {args.artifact}", on_frames=compare,
                           log=print)
    wall = time.perf_counter() - wall0
    load_end = os.getloadavg()
    video_seconds = wall - reference_seconds
    out = probe_video(dst)
    decoded = decode(dst)
    codec_psnr = [psnr(frame, before[i]) for i, frame in enumerate(decoded[: len(lr)])]
    audio_kept = audio_packets(src) == audio_packets(dst) and bool(audio_packets(src))

    resume_rows = []
    if args.resume_seconds:
        n = args.resume_seconds * args.fps
        part_src, part_dst = work / "part_360p.mp4", work / "part_x4.mp4"
        video(part_src, lr[:n], fps=args.fps, codec="libx264rgb", pix_fmt="bgr0", options={"crf": "0"})
        cmd = [sys.executable, "-m", "edgesr.cli.main", "upscale", "--artifact", str(args.artifact), str(part_src),
               str(part_dst), "--tile", str(args.tile), "--batch", str(args.batch), "--segment-frames",
               str(max(n // 2, 1)), *LOSSLESS]
        code, killed_after = kill_after_first_segment(cmd, part_dst)
        left_output = part_dst.exists()
        resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True)
        frames = decode(part_dst) if resumed.returncode == 0 else []
        equal = len(frames) == n and all(np.array_equal(f, before[i]) for i, f in enumerate(frames))
        summary = [line for line in resumed.stdout.splitlines() if "upscaled now" in line]
        resume_rows = [
            f"| resume: first run killed (SIGKILL) after its first segment | exit {code} after {killed_after:.0f} s; "
            f"output file {'present (WRONG)' if left_output else 'not written'} |",
            f"| resume: `--resume` run | exit {resumed.returncode}; {summary[0] if summary else resumed.stderr[-300:]} |",
            f"| resume: resumed frames equal the uninterrupted run's (lossless, {n} frames) | "
            f"{'yes, bit for bit' if equal else 'NO'} ({len(frames)} frames decoded) |",
        ]

    rows = [
        f"| source | {source.describe()}, H.264 yuv420p |",
        f"| output | {out.describe()} |",
        f"| frames (source / output decoded) | {len(lr)} / {len(decoded)} |",
        f"| frame rate (source / output) | {float(source.rate):.3f} / {float(out.rate):.3f} fps |",
        f"| duration (source / output) | {source.duration:.3f} / {out.duration:.3f} s |",
        f"| audio stream copied packet for packet | {'yes' if audio_kept else 'NO'} |",
        f"| model: frames before encoding vs the image path (same decoded input frame; every "
        f"{args.reference_every}. frame) | {stats(model_psnr)} |",
        f"| codec loss alone: decoded output vs its own pre-encoding frame (libx264 CRF 18 yuv420p) | "
        f"{stats(codec_psnr)} |",
        f"| video path time (decode, upscale, encode, remux; reference excluded) | {video_seconds:.0f} s = "
        f"{report.upscaled / video_seconds:.3f} frames/s ({video_seconds / args.seconds:.0f} s per second of video) |",
        f"| image-path reference time (timed apart) | {reference_seconds:.0f} s |",
        *resume_rows,
    ]
    text = "\n".join([
        f"# Video: {args.seconds} s 360p clip x{scale} through {args.artifact.name}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs; load average "
        f"{load_start[0]:.1f} at the start / {load_end[0]:.1f} at the end of the video run. Tile {args.tile}, "
        f"batch {args.batch}. Made by `python {' '.join(sys.argv)}`.",
        "",
        "| check | result |",
        "|---|---|",
        *rows,
    ]) + "\n"
    print(text)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)
    shutil.rmtree(work)
    ok = (len(decoded) == len(lr) and audio_kept and min(model_psnr) >= 45
          and (not resume_rows or "bit for bit" in resume_rows[-1]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
