"""What a search runs on: the target profile (threads, input sizes, precisions allowed) and what this machine can
do (bf16 / fp16 arithmetic from the CPU's ISA flags, a CUDA GPU).

The ISA flags are read by `edgesr.bench.env.cpu_info` (one owner); this module only decides from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgesr.errors import UserInputError, suggest

BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 AMX / AVX-512 BF16, Arm BF16
# fp16 arithmetic worth a candidate: AMX-FP16 (x86) or Arm FP16. AVX-512 FP16 alone is not: on a Sapphire
# Rapids CPU (avx512_fp16, no amx_fp16) PyTorch fp16 ran RLFN x4 1.5x slower than fp32, OpenVINO's f16 hint 1.2x.
FP16_FLAGS = ("amx_fp16", "asimdhp")


@dataclass(frozen=True)
class Machine:
    """The capabilities that decide which candidates can run here."""

    cpu: str = "unknown"
    arch: str = ""
    cpus: int = 1
    isa: dict[str, bool] = field(default_factory=dict)
    gpu: str | None = None

    @property
    def bf16(self) -> bool:
        return any(self.isa.get(f) for f in BF16_FLAGS)

    @property
    def fp16(self) -> bool:
        return any(self.isa.get(f) for f in FP16_FLAGS)

    @property
    def x86(self) -> bool:
        return self.arch.lower() in ("x86_64", "amd64", "i686", "x86")

    def bf16_reason(self) -> str:
        return f"no bf16 arithmetic on this CPU (its flags lack {' / '.join(BF16_FLAGS[:2])})"

    def fp16_reason(self) -> str:
        return ("no fp16 matrix unit on this CPU (its flags lack amx_fp16; AVX-512 FP16 alone runs fp16 "
                "convolutions slower than fp32)")

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu, "arch": self.arch, "cpus": self.cpus, "bf16": self.bf16, "fp16": self.fp16,
                "amx": bool(self.isa.get("amx_tile")), "gpu": self.gpu}


def detect_machine() -> Machine:
    """This machine, from /proc/cpuinfo flags (`cpu_info`) and torch's CUDA view."""
    import torch

    from edgesr.bench.env import cpu_info

    info = cpu_info()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return Machine(cpu=str(info.get("model")), arch=str(info.get("arch")),
                   cpus=int(info.get("available_cpus") or info.get("logical_cpus") or 1),
                   isa=dict(info.get("isa") or {}), gpu=gpu)


@dataclass(frozen=True)
class TargetProfile:
    """Where the chosen artifact will run. `threads` None: all available CPUs (capped at `max_threads`);
    `sizes`: the LR inputs timed, the first one decides; `low_precision_float`: bf16/AMX candidates allowed."""

    name: str
    device: str
    description: str
    sizes: tuple[tuple[int, int], ...] = ((256, 256),)
    threads: int | None = None
    low_precision_float: bool = True

    def thread_count(self, machine: Machine) -> int | None:
        if self.device != "cpu":
            return None
        return self.threads or max(1, machine.cpus)

    @property
    def size_labels(self) -> list[str]:
        return [f"{h}x{w}" for h, w in self.sizes]


TARGETS: dict[str, TargetProfile] = {
    "cpu": TargetProfile("cpu", "cpu", "this CPU, all its threads, 256x256 LR input"),
    "mobile-cpu": TargetProfile("mobile-cpu", "cpu", "a mobile-class CPU: 1 thread, no bf16/AMX, 128x128 and "
                                "360x640 LR inputs", sizes=((128, 128), (360, 640)), threads=1,
                                low_precision_float=False),
    "cuda": TargetProfile("cuda", "cuda", "an NVIDIA GPU, 256x256 LR input"),
}


def get_target(name: str) -> TargetProfile:
    key = str(name).strip().lower()
    if key not in TARGETS:
        raise UserInputError(f"unknown target {name!r}.{suggest(key, list(TARGETS))} Targets: {', '.join(TARGETS)}.")
    return TARGETS[key]


def check_target(target: TargetProfile, machine: Machine) -> None:
    """Refuse a target this machine cannot stand in for."""
    if target.device == "cuda" and machine.gpu is None:
        raise UserInputError("--target cuda needs an NVIDIA GPU with a CUDA build of torch; this machine has none "
                             "(use --target cpu or mobile-cpu).")
