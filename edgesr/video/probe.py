"""Open a video with PyAV (FFmpeg) and describe it; every unusable input becomes one clear UserInputError."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from edgesr.errors import MissingDependencyError, UserInputError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts")


def import_av() -> Any:
    try:
        import av
    except ImportError:
        raise MissingDependencyError("video upscaling needs PyAV: pip install 'edgesr[video]'.") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What the upscale keeps from the source: size, frame rate, time base, length, other streams."""

    path: Path
    width: int
    height: int
    rate: Fraction  #: average frame rate (frames per second)
    time_base: Fraction
    frames: int  #: from the container, else estimated from duration x rate (0 if unknown)
    duration: float  #: seconds (0 if unknown)
    audio: int  #: audio streams (copied)
    subtitles: int  #: subtitle streams (copied)

    def describe(self) -> str:
        extra = [f"{n} {kind} stream(s)" for n, kind in ((self.audio, "audio"), (self.subtitles, "subtitle")) if n]
        return (f"{self.width}x{self.height} {float(self.rate):.3f} fps, {self.frames} frames, {self.duration:.2f} s"
                + (f", {', '.join(extra)}" if extra else ""))


def open_video(path: str | Path) -> Any:
    """An av input container for `path`, or a UserInputError saying why it cannot be read as a video."""
    av = import_av()
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"cannot read video {path}: file not found.")
    try:
        return av.open(str(path))
    except av.FFmpegError as exc:
        raise UserInputError(f"cannot read video {path}: not a video file or an unsupported format "
                             f"({exc.strerror or exc}).") from None


def probe_video(path: str | Path) -> VideoInfo:
    """Describe the first video stream of `path`; refuses files without one."""
    path = Path(path)
    with open_video(path) as container:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise UserInputError(f"{path} has no video stream ({kinds}); nothing to upscale.")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise UserInputError(f"cannot read video {path}: its video stream has no frame size.")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        frames = stream.frames or (round(duration * float(rate)) if rate and duration else 0)
        return VideoInfo(path, ctx.width, ctx.height, Fraction(rate), Fraction(stream.time_base or Fraction(1, 90000)),
                         int(frames), duration, len(container.streams.audio), len(container.streams.subtitles))
