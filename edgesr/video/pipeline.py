"""Upscale a video: decode -> upscale frames in batches -> encode in resumable segments -> remux with the
source's audio and subtitle streams.

Memory stays bounded whatever the length: one batch of frames is in flight, each segment's encoder is
closed when it ends, and the final remux copies packets one by one. Frame timestamps are the source's own
(so the frame rate, variable or not, and the start offset are kept); audio and subtitle packets are copied
unchanged (no re-encoding).
"""
from __future__ import annotations

import heapq
import os
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edgesr.errors import UserInputError
from edgesr.inference.tiling import TilingConfig
from edgesr.video.probe import VIDEO_EXTENSIONS, VideoInfo, import_av, open_video, probe_video
from edgesr.video.segments import Manifest, open_work_dir

#: Called with (index of the first frame, NxHxWx3 uint8 upscaled frames) before they are encoded.
FrameSink = Callable[[int, np.ndarray], None]
_SUBSAMPLED = ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv420p10le", "yuv422p10le", "nv21")


@dataclass
class VideoOptions:
    codec: str = "libx264"
    crf: float | None = 18
    pix_fmt: str = "yuv420p"
    preset: str | None = None
    batch: int = 4  #: frames upscaled together (the model sees an N x 3 x H x W batch)
    segment_frames: int = 120  #: frames per resumable segment
    tile: int = 0
    halo: int = 16
    min_size: int = 1
    blend: int = 0
    resume: bool = False
    force: bool = False
    progress: bool = False
    extra: dict[str, str] = field(default_factory=dict)  #: more encoder options (FFmpeg names)

    def pixel_settings(self) -> dict[str, Any]:
        """What changes the output: recorded in the manifest so a resume never mixes settings (the batch size
        too: a runtime may pick other kernels, so other rounding, for another batch)."""
        return {"codec": self.codec, "crf": self.crf, "pix_fmt": self.pix_fmt, "preset": self.preset,
                "segment_frames": self.segment_frames, "batch": self.batch, "tile": self.tile, "halo": self.halo, "blend": self.blend,
                "extra": self.extra}


@dataclass
class VideoReport:
    source: VideoInfo
    width: int
    height: int
    frames: int
    upscaled: int  #: frames upscaled in this run (the rest came from finished segments)
    seconds: float
    note: str = ""


def check_video_output(src: Path, dst: Path, force: bool, resume: bool) -> None:
    """Refuse a bad output before any compute: unknown container, DST equal to SRC, existing file."""
    from edgesr.utils.atomic import check_writable

    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise UserInputError(f"cannot write video {dst}: unknown extension {dst.suffix!r}; use one of "
                             f"{', '.join(VIDEO_EXTENSIONS)}.")
    if src.resolve() == dst.resolve():
        raise UserInputError(f"the output {dst} is the input video itself; write to another path "
                             "(--force never overwrites the input).")
    check_writable(dst, force)


def _output_size(info: VideoInfo, scale: int, pix_fmt: str) -> tuple[int, int, str]:
    w, h = info.width * scale, info.height * scale
    if pix_fmt in _SUBSAMPLED and (w % 2 or h % 2):
        note = (f"{w}x{h} cropped to {w - w % 2}x{h - h % 2}: {pix_fmt} needs even frame sizes "
                "(use --pix-fmt yuv444p to keep every pixel)")
        return w - w % 2, h - h % 2, note
    return w, h, ""


def _add_video_stream(container: Any, options: VideoOptions, info: VideoInfo, width: int, height: int) -> Any:
    stream = container.add_stream(options.codec, rate=info.rate or None)
    stream.width, stream.height, stream.pix_fmt = width, height, options.pix_fmt
    stream.time_base = info.time_base
    stream.codec_context.time_base = info.time_base
    opts = dict(options.extra)
    # One encoder thread: SR is orders of magnitude slower than encoding, and a single-threaded encoder
    # gives the same bytes on every run, so a resumed run's segments match an uninterrupted run's.
    opts.setdefault("threads", "1")
    if options.crf is not None:
        opts.setdefault("crf", f"{options.crf:g}")
    if options.preset:
        opts.setdefault("preset", options.preset)
    stream.options = opts
    stream.codec_context.thread_count = 1
    return stream


def _check_muxable(dst: Path, src: Path, options: VideoOptions, info: VideoInfo, width: int, height: int) -> None:
    """Open the output container with every stream the result will have and write its header, so a codec or
    stream the container cannot hold is refused before any compute."""
    av = import_av()
    probe = dst.parent / f".{dst.name}.probe{dst.suffix}"
    try:
        with open_video(src) as source, av.open(str(probe), "w") as out:
            _add_video_stream(out, options, info, width, height).codec_context.open()
            for s in (*source.streams.audio, *source.streams.subtitles):
                out.add_stream_from_template(s)
            out.start_encoding()
    except (av.FFmpegError, ValueError, TypeError) as exc:
        raise UserInputError(f"cannot write {dst} with codec {options.codec!r} / pixel format {options.pix_fmt!r} "
                             f"and the source's streams: {exc}") from None
    finally:
        probe.unlink(missing_ok=True)


def _frames(info: VideoInfo) -> Iterator[tuple[int, Any]]:
    """(pts, av.VideoFrame) of every frame, pts in the stream's time base (counted when missing)."""
    step = (1 / info.rate / info.time_base) if info.rate else 1
    with open_video(info.path) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            yield (frame.pts if frame.pts is not None else round(i * step)), frame


class _SegmentWriter:
    """Encodes one segment into a temp file, renamed into place by `finish`."""

    def __init__(self, manifest: Manifest, index: int, options: VideoOptions, info: VideoInfo, size: tuple[int, int],
                 base: int):
        av = import_av()
        self.index, self.base = index, base
        self.final = manifest.segment_path(index)
        self.tmp = self.final.with_name(self.final.name + ".tmp")
        self.container = av.open(str(self.tmp), "w", format="mp4")
        self.stream = _add_video_stream(self.container, options, info, *size)
        self.frames = 0
        self._av = av

    def write(self, rgb: np.ndarray, pts: int, time_base: Fraction) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts - self.base, time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def finish(self, manifest: Manifest) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.final)
        manifest.mark_done(self.index, self.frames, self.base)


def upscale_video(fn: Callable[[np.ndarray], np.ndarray], src: str | Path, dst: str | Path, scale: int,
                  options: VideoOptions | None = None, *, engine_id: str = "", on_frames: FrameSink | None = None,
                  log: Callable[[str], None] | None = None) -> VideoReport:
    """Upscale video `src` into `dst` through `fn` (an SR function), resumable (see `VideoOptions.resume`)."""
    from edgesr.inference.stitch import upscale_tiled

    options = options or VideoOptions()
    src, dst = Path(src), Path(dst)
    if options.batch < 1 or options.segment_frames < 1:
        raise UserInputError("--batch and --segment-frames must be >= 1.")
    check_video_output(src, dst, options.force, options.resume)
    info = probe_video(src)
    width, height, note = _output_size(info, scale, options.pix_fmt)
    if note and log is not None:
        log(note)
    _check_muxable(dst, src, options, info, width, height)
    stat = src.stat()
    settings = {"source": str(src.resolve()), "source_bytes": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
                "engine": engine_id, "scale": scale, **options.pixel_settings()}
    manifest = open_work_dir(dst, settings, resume=options.resume, force=options.force)
    config = TilingConfig(options.tile, options.halo, 1, options.min_size)

    bar = None
    if options.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=info.frames or None, desc="frames", unit="frame", initial=manifest.frames_done())
    start, upscaled, seg_frames = time.perf_counter(), 0, options.segment_frames
    writer: _SegmentWriter | None = None
    batch: list[tuple[int, np.ndarray]] = []
    first_index = 0

    def flush() -> None:
        nonlocal upscaled
        if not batch:
            return
        lr = np.stack([img for _, img in batch])
        sr = upscale_tiled(fn, lr, scale, config, blend=options.blend)[:, :height, :width]
        if on_frames is not None:
            on_frames(first_index, sr)
        assert writer is not None
        for (pts, _), frame in zip(batch, sr):
            writer.write(frame, pts, info.time_base)
        upscaled += len(batch)
        if bar is not None:
            bar.update(len(batch))
        batch.clear()

    total, current = 0, -1  # frames decoded; the segment being written
    for i, (pts, frame) in enumerate(_frames(info)):
        total = i + 1
        seg = i // seg_frames
        if seg in manifest.done:
            continue  # finished in an earlier run: decoded only, never upscaled again
        if seg != current:
            flush()
            if writer is not None:
                writer.finish(manifest)
            writer, current = _SegmentWriter(manifest, seg, options, info, (width, height), pts), seg
        if not batch:
            first_index = i
        batch.append((pts, frame.to_ndarray(format="rgb24").copy()))
        if len(batch) >= options.batch:
            flush()
    flush()
    if writer is not None:
        writer.finish(manifest)
    if bar is not None:
        bar.close()
    if total == 0:
        raise UserInputError(f"{src} has a video stream but no decodable frames.")
    _remux(manifest, info, dst, options.force, -(-total // seg_frames))
    shutil.rmtree(manifest.folder)
    return VideoReport(info, width, height, total, upscaled, time.perf_counter() - start, note)


def _remux(manifest: Manifest, info: VideoInfo, dst: Path, force: bool, segments: int) -> None:
    """Concatenate the segments' packets with the source's audio/subtitle packets into `dst`, atomically."""
    from edgesr.utils.atomic import atomic_path

    av = import_av()
    paths = [manifest.segment_path(k) for k in range(segments)]
    missing = [p.name for k, p in enumerate(paths) if not p.exists() or k not in manifest.done]
    if missing:
        raise UserInputError(f"segments {', '.join(missing)} are missing from {manifest.folder}; pass --force to "
                             "start over.")
    with atomic_path(dst, force) as tmp, open_video(info.path) as source:
        with av.open(str(paths[0])) as first, av.open(str(tmp), "w", format=_muxer_for(dst)) as out:
            video_out = out.add_stream_from_template(first.streams.video[0])
            others = [(s, out.add_stream_from_template(s)) for s in (*source.streams.audio, *source.streams.subtitles)]

            # Each segment's encoder chose its own decode delay (a short last segment may have none): decode
            # timestamps are rebuilt with the largest delay, so they rise across segments and the container
            # measures the source's frame rate.
            bases = [manifest.done[k]["base"] for k in range(segments)]
            sorted_pts = [sorted(p.pts for p in _demux(av, path) if p.pts is not None) for path in paths]
            delay = max(pts[0] - _first_dts(av, path) for pts, path in zip(sorted_pts, paths))

            def video_packets() -> Iterator[tuple[float, int, Any]]:
                for path, pts, base in zip(paths, sorted_pts, bases):
                    for j, packet in enumerate(p for p in _demux(av, path) if p.pts is not None):
                        packet.pts += base
                        packet.dts = base + pts[j] - delay
                        yield float(packet.dts * packet.time_base), 0, packet

            def other_packets() -> Iterator[tuple[float, int, Any]]:
                if not others:
                    return
                mapping = {s.index: o for s, o in others}
                for packet in source.demux([s for s, _ in others]):
                    if packet.dts is not None:
                        packet.stream = mapping[packet.stream.index]
                        yield float(packet.dts * packet.time_base), 1, packet

            for _, kind, packet in heapq.merge(video_packets(), other_packets(), key=lambda x: (x[0], x[1])):
                if kind == 0:
                    packet.stream = video_out
                out.mux(packet)


def _demux(av: Any, path: Path) -> Iterator[Any]:
    with av.open(str(path)) as container:
        yield from (p for p in container.demux(container.streams.video[0]) if p.size)


def _first_dts(av: Any, path: Path) -> int:
    packets = _demux(av, path)
    try:
        return next(packets).dts
    finally:
        packets.close()


def _muxer_for(dst: Path) -> str:
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".avi": "avi", ".ts": "mpegts", ".m4v": "mp4"}.get(
        dst.suffix.lower(), "mp4")
