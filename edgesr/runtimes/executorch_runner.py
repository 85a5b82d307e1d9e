"""ExecuTorch runner: a ``.pte`` program (from `edgesr export --format executorch`) with its Python runtime.

Loads the program with `executorch.runtime.Runtime` and runs its ``forward`` method, one image per
call (programs are exported with batch 1). Each call is timed in three stages: ``input`` (numpy ->
tensor), ``compute`` (the method) and ``output`` (tensor -> numpy). The accepted height/width range
comes from the sidecar (``executorch.height_range`` / ``width_range``; a static program accepts one
size only); without a sidecar the program's planned input size is taken as the upper bound.

`threads` resizes ExecuTorch's XNNPACK thread pool, which is process-wide and shared by every loaded
program: it is resized before this runner loads its program (a program loaded before a resize would
run on a freed pool and crash), restored on `deactivate()`, and a runner asking for another size
while a different-sized ExecuTorch runner is active is refused.
"""
from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import UserInputError
from edgesr.runtimes.base import BaseRunner, InputSpec
from edgesr.artifacts.validate import check_against_artifact
from edgesr.runtimes.io_convention import load_artifact_info

_DTYPES = {6: np.float32, 5: np.float16, 0: np.uint8}  # ExecuTorch ScalarType codes
_ACTIVE: "weakref.WeakSet[ExecuTorchRunner]" = weakref.WeakSet()  # runners holding a loaded method


class ExecuTorchRunner(BaseRunner):
    """Run an ExecuTorch program (``.pte``).

    Args:
        path: the ``.pte`` file; ``<stem>.json`` beside it, if present, sets I/O conventions and the size range.
        threads: XNNPACK thread-pool size (process-wide, restored on deactivate; None leaves it).
        method: the program method to run (default ``"forward"``).
        use_sidecar: read the sidecar (default True).
        min_size / align / scale: override the sidecar's values for input validation.
    """

    backend = "executorch"

    def __init__(self, path: str | Path, *, threads: int | None = None, method: str = "forward",
                 use_sidecar: bool = True, min_size: int | None = None, align: int | None = None,
                 scale: int | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(name or f"executorch:{self.path.name}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise UserInputError(f"threads must be an integer >= 1, got {threads!r}.")
        self.threads = threads
        self.method_name = method
        self.use_sidecar = use_sidecar
        self._overrides = {"min_size": min_size, "align": align}
        self._scale_override = scale
        self.scale = scale
        self.program: Any = None
        self.method: Any = None
        self.dynamic = True
        self.height_range: tuple[int, int] = (1, 1 << 30)
        self.width_range: tuple[int, int] = (1, 1 << 30)
        self._saved_threads: int | None = None
        from edgesr.export.executorch import import_executorch_runtime

        self._runtime: Any = import_executorch_runtime()  # MissingDependencyError naming edgesr[executorch]

    def activate_impl(self) -> None:
        from edgesr.export.executorch import quiet, set_threads

        if not self.path.is_file():
            raise UserInputError(f"model file not found: {self.path}")
        self.artifact = load_artifact_info(self.path, use_sidecar=self.use_sidecar)
        self.io = self.artifact.io
        self.scale = self._scale_override or self.artifact.scale or self.scale
        self._resize_pool()
        try:
            with quiet():
                program = self._runtime.Runtime.get().load_program(self.path)
        except Exception as exc:  # noqa: BLE001 - the runtime raises RuntimeError/ValueError
            raise UserInputError(f"ExecuTorch cannot load {self.path}: not a valid .pte program for this runtime "
                                 f"({str(exc).strip()[:200]}).") from exc
        if self.method_name not in program.method_names:
            raise UserInputError(f"{self.path.name} has no method {self.method_name!r}; it has "
                                 f"{', '.join(sorted(program.method_names))}.")
        try:
            with quiet():
                method = program.load_method(self.method_name)
        except Exception as exc:  # noqa: BLE001 - e.g. a kernel missing from this runtime
            raise UserInputError(f"ExecuTorch cannot load method {self.method_name!r} of {self.path.name} "
                                 f"({str(exc).strip()[:200]}): the program may use an operator this runtime "
                                 "lacks; re-export it with this executorch version.") from exc
        meta = method.metadata
        if meta.num_inputs() != 1 or meta.num_outputs() != 1:
            raise UserInputError(f"{self.path.name} has {meta.num_inputs()} inputs and {meta.num_outputs()} outputs; "
                                 "edgesr runners expect one image in, one image out.")
        info = meta.input_tensor_meta(0)
        sizes = tuple(int(s) for s in info.sizes())
        if len(sizes) != 4 or sizes[1] != 3:
            raise UserInputError(f"{self.path.name} takes a tensor of shape {sizes}, not a 1x3xHxW image.")
        self._input_dtype = _DTYPES.get(int(info.dtype()), np.float32)
        if self.artifact.sidecar is not None:
            check_against_artifact(self.artifact.sidecar, where=f"sidecar {self.artifact.sidecar_path}",
                                   input_dtype=np.dtype(self._input_dtype).name,
                                   fixed_hw=None if self.artifact.block("executorch").get("dynamic_shape", True)
                                   else (sizes[2], sizes[3]))
        block = self.artifact.block("executorch")
        self.dynamic = bool(block.get("dynamic_shape", True))
        h_rng, w_rng = block.get("height_range"), block.get("width_range")
        if self.dynamic and isinstance(h_rng, list) and isinstance(w_rng, list) and len(h_rng) == len(w_rng) == 2:
            self.height_range, self.width_range = (int(h_rng[0]), int(h_rng[1])), (int(w_rng[0]), int(w_rng[1]))
        elif self.dynamic:  # no sidecar: the planned input size is the upper bound
            self.height_range, self.width_range = (1, sizes[2]), (1, sizes[3])
        else:
            self.height_range, self.width_range = (sizes[2], sizes[2]), (sizes[3], sizes[3])
        self.program, self.method = program, method
        _ACTIVE.add(self)

    def _resize_pool(self) -> None:
        """Resize the process-wide XNNPACK pool to `threads` before loading (see the module docstring)."""
        from edgesr.export.executorch import quiet, set_threads, thread_count

        current = thread_count()
        if self.threads is None or current == self.threads:
            return
        others = [r for r in _ACTIVE if r is not self and r.is_active]
        if others:
            raise UserInputError(
                f"cannot run {self.path.name} with {self.threads} threads while {others[0].name} is active with "
                f"{current}: ExecuTorch's thread pool is process-wide. Deactivate the other runner first (use "
                "runners as context managers), or give them the same thread count.")
        with quiet():
            self._saved_threads = set_threads(self.threads)

    def deactivate_impl(self) -> None:
        from edgesr.export.executorch import quiet, set_threads

        self.method = self.program = None
        _ACTIVE.discard(self)
        if self._saved_threads is not None:
            if not any(r.is_active for r in _ACTIVE if r is not self):
                with quiet():
                    set_threads(self._saved_threads)
            self._saved_threads = None

    def get_input_spec(self) -> InputSpec:
        if not self.dynamic:
            return _StaticSpec("input", (None, 3, self.height_range[0], self.width_range[0]), np.float32, 1,
                               self._overrides["align"] or self.artifact.align or 1, artifact=self.path.name)
        min_size = self._overrides["min_size"] or max(self.artifact.min_size or 1, self.height_range[0],
                                                      self.width_range[0])
        return InputSpec("input", (None, 3, None, None), np.float32, min_size,
                         self._overrides["align"] or self.artifact.align or 1)

    def _check_size(self, h: int, w: int) -> None:
        (hlo, hhi), (wlo, whi) = self.height_range, self.width_range
        if not self.dynamic and (h, w) != (hlo, wlo):
            raise UserInputError(f"{self.path.name} is a static {hlo}x{wlo} program (see its sidecar's "
                                 f"executorch.note); got a {h}x{w} input. Tile or pad to {hlo}x{wlo}.")
        if h > hhi or w > whi:
            raise UserInputError(f"a {h}x{w} input exceeds {self.path.name}'s upper bound {hhi}x{whi} (the memory "
                                 f"its program planned at export): tile it (tile + 2 x halo <= {min(hhi, whi)}) or "
                                 "re-export with a larger --max-shape.")
        if h < hlo or w < wlo:
            raise UserInputError(f"a {h}x{w} input is below {self.path.name}'s lower bound {hlo}x{wlo}: pad it "
                                 f"(tiling with min_size={max(hlo, wlo)}).")

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        import torch

        self._check_size(*x.shape[-2:])
        outs = []
        stages = {"input": 0.0, "compute": 0.0, "output": 0.0}
        for image in x:
            t0 = time.perf_counter()
            t = torch.from_numpy(np.ascontiguousarray(image[None], dtype=self._input_dtype))
            t1 = time.perf_counter()
            try:
                y = self.method.execute([t])[0]
            except Exception as exc:  # noqa: BLE001 - the runtime's RuntimeError
                raise UserInputError(f"ExecuTorch failed to run {self.path.name} on a {tuple(image.shape)} input: "
                                     f"{str(exc).strip()[:200]}") from exc
            t2 = time.perf_counter()
            out = y.detach().numpy().astype(np.float32, copy=True)
            t3 = time.perf_counter()
            stages["input"] += t1 - t0
            stages["compute"] += t2 - t1
            stages["output"] += t3 - t2
            h, w = image.shape[-2:]
            if self.scale and out.shape[-2:] != (h * self.scale, w * self.scale):
                raise UserInputError(
                    f"{self.path.name} returned {tuple(out.shape)} for a {h}x{w} input, not x{self.scale}: the "
                    "program froze a shape at export; re-export it.")
            outs.append(out)
        self._stages = stages
        return np.concatenate(outs)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(path=str(self.path), threads=self.threads, method=self.method_name, precision="fp32",
                    device="cpu", delegate="XnnpackBackend", executorch=_version())
        if self.is_active:
            info.update(dynamic_shape=self.dynamic, height_range=list(self.height_range),
                        width_range=list(self.width_range))
        return info


@dataclass(frozen=True)
class _StaticSpec(InputSpec):
    """The input spec of a static-shape program: a wrong size is refused saying why."""

    artifact: str = ""

    def validate(self, x: Any) -> None:
        h, w = self.shape[2], self.shape[3]
        if isinstance(x, np.ndarray) and x.ndim == 4 and tuple(x.shape[2:]) != (h, w):
            raise UserInputError(f"{self.artifact} is a static {h}x{w} program (its dynamic-shape export failed, see "
                                 f"the sidecar's executorch.note); got a {x.shape[2]}x{x.shape[3]} input. Tile or "
                                 f"pad to {h}x{w}, or re-export.")
        super().validate(x)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("executorch")
    except Exception:  # noqa: BLE001
        return "?"
