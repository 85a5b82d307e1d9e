"""Where edgesr finds shared data and keeps its cache."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """`$EDGESR_SHARED` if set, else `<repo root>/../shared` (real weights and datasets)."""
    env = os.environ.get("EDGESR_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def cache_dir() -> Path:
    """`$EDGESR_CACHE` if set, else `~/.cache/edgesr` (downloaded weights)."""
    env = os.environ.get("EDGESR_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgesr"


def weight_search_dirs() -> list[Path]:
    """Folders searched for a pretrained file by name before any download: cache, then shared/weights."""
    dirs = [cache_dir() / "weights"]
    extra = os.environ.get("EDGESR_WEIGHTS_DIR")
    if extra:
        dirs.insert(0, Path(extra))
    dirs.append(shared_dir() / "weights")
    return dirs
