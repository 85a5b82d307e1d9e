"""Resumable work folder of a video upscale: encoded segments plus a manifest, both written atomically.

Frames are encoded in segments of a fixed number of frames, each a complete file that keeps the source's
timestamps. A segment is renamed into place only when finished, then recorded in `manifest.json`; a run
killed at any moment therefore leaves finished segments that a `--resume` keeps and at most one partial
temp file that it discards. The manifest also records the source file and every setting that changes the
pixels, so a resume never mixes segments made from another input or with other settings.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgesr.errors import UserInputError
from edgesr.utils.atomic import write_text_atomic

MANIFEST = "manifest.json"


def work_dir_for(dst: Path) -> Path:
    """The hidden folder beside `dst` that holds its segments while the upscale runs."""
    return dst.parent / f".{dst.name}.parts"


@dataclass
class Manifest:
    """`settings` identify the run (source, engine, codec, tiling...); `done` maps a segment index to its
    frame count and its base: the source timestamp of its first frame, subtracted inside the segment file
    (MP4 edit lists round a non-zero start to milliseconds) and added back when the segments are joined."""

    folder: Path
    settings: dict[str, Any]
    done: dict[int, dict[str, int]] = field(default_factory=dict)

    def segment_path(self, index: int) -> Path:
        return self.folder / f"segment_{index:05d}.mp4"

    def save(self) -> None:
        data = {"settings": self.settings, "done": {str(k): v for k, v in sorted(self.done.items())}}
        write_text_atomic(self.folder / MANIFEST, json.dumps(data, indent=1) + "\n", force=True)

    def mark_done(self, index: int, frames: int, base: int) -> None:
        self.done[index] = {"frames": frames, "base": base}
        self.save()

    def frames_done(self) -> int:
        return sum(entry["frames"] for entry in self.done.values())


def open_work_dir(dst: Path, settings: dict[str, Any], *, resume: bool, force: bool) -> Manifest:
    """The manifest for `dst`: a fresh one, or the interrupted run's when `resume` and its settings match."""
    folder = work_dir_for(dst)
    path = folder / MANIFEST
    if folder.exists():
        old = None
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        if resume and old is not None:
            if old.get("settings") != settings:
                changed = sorted(k for k in set(settings) | set(old.get("settings", {}))
                                 if settings.get(k) != old.get("settings", {}).get(k))
                raise UserInputError(f"cannot resume {dst}: the interrupted run used other settings "
                                     f"({', '.join(changed)} differ). Rerun with them, or pass --force to start over.")
            manifest = Manifest(folder, settings, {int(k): {"frames": int(v["frames"]), "base": int(v["base"])}
                                                 for k, v in old.get("done", {}).items()})
            for tmp in folder.glob("*.tmp*"):  # a segment that was being written when the run stopped
                tmp.unlink()
            return manifest
        if not force and not resume:
            raise UserInputError(f"an interrupted upscale of {dst} left {folder}; pass --resume to continue it or "
                                 "--force to start over.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    manifest = Manifest(folder, settings)
    manifest.save()
    return manifest
