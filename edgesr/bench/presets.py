"""Named benchmark setups: the NTIRE efficient-SR protocol, mobile-class CPU profile, resolution sweep."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from edgesr.bench.harness import BenchConfig
from edgesr.errors import UserInputError, suggest


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    sizes: tuple[tuple[int, int], ...] = ()
    threads: tuple[int, ...] = (2,)
    needs_images: bool = False
    memory: bool = False
    default_images: str | None = None
    extra: dict = field(default_factory=dict)


PROTOCOLS = {
    "ntire-esr": Preset(
        "ntire-esr",
        "NTIRE efficient SR: runtime averaged over the DIV2K LR x4 images, params/FLOPs/#acts on a "
        "3x256x256 input, peak memory (CUDA max_memory_allocated on GPU, peak RSS on CPU).",
        sizes=(), threads=(2,), needs_images=True, memory=True, default_images="datasets/DIV2K_test_LR_x4"),
}

PROFILES = {
    "mobile-cpu": Preset(
        "mobile-cpu",
        "Mobile-class CPU: 1/2/4 threads, 128x128 (Qualcomm AI Hub SR input) and 360p (640x360) inputs.",
        sizes=((128, 128), (360, 640)), threads=(1, 2, 4)),
    "sweep": Preset(
        "sweep",
        "Resolution sweep: how latency and memory grow from 64x64 to 720p.",
        sizes=((64, 64), (128, 128), (256, 256), (360, 640), (720, 1280)), threads=(2,), memory=True),
}


def get_preset(name: str, kind: str = "protocol") -> Preset:
    table = PROTOCOLS if kind == "protocol" else PROFILES
    if name not in table:
        raise UserInputError(f"unknown {kind} {name!r}.{suggest(name, list(table))} Known: {', '.join(table)}.")
    return table[name]


def apply_preset(config: BenchConfig, preset: Preset, images: Path | None = None) -> BenchConfig:
    """A copy of `config` with the preset's sizes/threads/memory; images from the argument or shared data."""
    from edgesr.paths import shared_dir

    cfg = replace(config, sizes=list(preset.sizes), threads=list(preset.threads), memory=preset.memory or config.memory,
                  protocol=preset.name)
    if preset.needs_images:
        folder = images or (shared_dir() / preset.default_images if preset.default_images else None)
        if folder is None or not Path(folder).is_dir():
            raise UserInputError(f"the {preset.name} protocol needs --images DIR (LR images); {folder} not found.")
        cfg = replace(cfg, images=Path(folder))
    return cfg
