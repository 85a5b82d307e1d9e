"""The runner interface every backend implements (Polygraphy style).

A runner wraps one artifact on one backend. `activate()` loads it (importing the backend's
package only then), the public `infer()` validates the input against the runner's `InputSpec`,
converts it to the artifact's native I/O, calls the backend's `infer_impl()` and records how long
the call took; backends implement only `activate_impl()`, `infer_impl()` and `get_input_spec()`.

At the edge every runner takes and returns float32 NCHW RGB in 0..1, like `create_model`'s
modules, so `as_sr_function()` plugs any backend into tiling, self-ensemble and evaluation.
"""
from __future__ import annotations

import abc
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from edgesr.errors import EdgesrError, InferenceError, UserInputError, is_out_of_memory
from edgesr.inference.predict import SRFunction
from edgesr.artifacts.validate import check_scale
from edgesr.runtimes.io_convention import ArtifactInfo, IOConvention

MAX_TIMINGS = 100_000  # per runner; the oldest call records are dropped beyond this


@dataclass(frozen=True)
class InputSpec:
    """The input a runner accepts, at the edge (NCHW). `None` in `shape` is a dynamic dimension."""

    name: str = "input"
    shape: tuple[int | None, int | None, int | None, int | None] = (None, 3, None, None)
    dtype: type = np.float32
    min_size: int = 1
    align: int = 1

    def describe(self) -> str:
        dims = ", ".join(axis if d is None else str(d) for axis, d in zip("NCHW", self.shape))  # dynamic: its name
        text = f"{np.dtype(self.dtype).name} NCHW array of shape ({dims})"
        rules = []
        if self.min_size > 1 and (self.shape[2] is None or self.shape[3] is None):
            rules.append(f"H, W >= {self.min_size}")
        if self.align > 1:
            rules.append(f"H, W multiples of {self.align}")
        return text + (f" with {' and '.join(rules)}" if rules else "")

    def validate(self, x: Any) -> None:
        """Raise UserInputError naming the expected shape when `x` does not fit."""
        expect = f"expected a {self.describe()} (values 0..1)"
        if not isinstance(x, np.ndarray):
            raise UserInputError(f"input {self.name!r} is a {type(x).__name__}, {expect}.")
        if x.dtype != np.dtype(self.dtype):
            raise UserInputError(f"input {self.name!r} has dtype {x.dtype}, {expect}.")
        if x.ndim != 4:
            raise UserInputError(f"input {self.name!r} has shape {tuple(x.shape)} ({x.ndim} dimensions), {expect}.")
        for axis, (got, want) in enumerate(zip(x.shape, self.shape)):
            if want is not None and got != want:
                raise UserInputError(
                    f"input {self.name!r} has shape {tuple(x.shape)} ({'NCHW'[axis]}={got}), {expect}.")
        h, w = x.shape[2:]
        if min(h, w) < self.min_size:
            raise UserInputError(
                f"input {self.name!r} of shape {tuple(x.shape)} is too small, {expect}; pad it or use tiling "
                f"with min_size={self.min_size}.")
        if self.align > 1 and (h % self.align or w % self.align):
            raise UserInputError(
                f"input {self.name!r} of shape {tuple(x.shape)} is not aligned, {expect}; pad it or use "
                f"tiling with align={self.align}.")
        if x.shape[0] == 0:
            raise UserInputError(f"input {self.name!r} has an empty batch, {expect}.")


@dataclass(frozen=True)
class CallTiming:
    """Timing of one `infer()` call, in seconds.

    total_s: the whole call (validation, I/O conversion, backend); infer_s: the backend's
    `infer_impl` alone; stages: a backend's own breakdown, e.g. the torch runner's
    ``h2d`` / ``compute`` / ``d2h`` (CUDA events on GPU, wall clock on CPU).
    """

    total_s: float
    infer_s: float
    stages: Mapping[str, float] = field(default_factory=dict)


class BaseRunner(abc.ABC):
    """One artifact on one backend. Use as a context manager or call `activate()` first
    (`infer()` activates on first use too)."""

    backend: str = ""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.backend
        self.is_active = False
        self.io = IOConvention()
        self.artifact = ArtifactInfo()  # what the artifact's sidecar says (set by `activate_impl`)
        self.scale: int | None = None
        self.timings: deque[CallTiming] = deque(maxlen=MAX_TIMINGS)
        self._stages: dict[str, float] = {}
        self._spec: InputSpec | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def activate(self) -> "BaseRunner":
        if not self.is_active:
            self.activate_impl()
            self._spec = self.get_input_spec()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False
            self._spec = None

    def __enter__(self) -> "BaseRunner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    # ---- backend hooks ---------------------------------------------------------------------
    @abc.abstractmethod
    def activate_impl(self) -> None:
        """Import the backend package and load the artifact."""

    def deactivate_impl(self) -> None:
        """Release what `activate_impl` loaded."""

    @abc.abstractmethod
    def get_input_spec(self) -> InputSpec:
        """The edge input spec (called once after `activate_impl`)."""

    @abc.abstractmethod
    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        """Run the backend on the native input `x`; return its native output as numpy.
        May fill `self._stages` with a per-stage breakdown (seconds)."""

    # ---- public ----------------------------------------------------------------------------
    @property
    def input_spec(self) -> InputSpec:
        self.activate()
        assert self._spec is not None
        return self._spec

    @property
    def min_size(self) -> int:
        return self.input_spec.min_size

    @property
    def align(self) -> int:
        return self.input_spec.align

    def infer(self, feed: np.ndarray | Mapping[str, np.ndarray], check_inputs: bool = True) -> np.ndarray:
        """float32 NCHW 0..1 (an array, or {input name: array}) -> float32 NCHW 0..1 output."""
        spec = self.input_spec  # activates on first use, outside the timed call
        start = time.perf_counter()
        if isinstance(feed, Mapping):
            if len(feed) != 1:
                raise UserInputError(f"{self.name} takes one input ({spec.name!r}), got {list(feed)}.")
            ((key, x),) = feed.items()
            if key != spec.name:
                raise UserInputError(f"{self.name} has no input {key!r}; its input is {spec.name!r}.")
        else:
            x = feed
        if check_inputs:
            spec.validate(x)
        native = self.io.to_native(np.ascontiguousarray(x))
        self._stages = {}
        t0 = time.perf_counter()
        try:
            y = self.infer_impl(native)
        except (EdgesrError, AttributeError, NameError, AssertionError, ImportError):
            raise  # edgesr's own errors, and bugs, keep their type
        except Exception as exc:  # the backend refused this input (ORT InvalidArgument, OpenVINO, ...)
            if is_out_of_memory(exc):
                raise
            raise InferenceError(self._failure_message(x, exc)) from exc
        t1 = time.perf_counter()
        out = self.io.from_native(y)
        if out.ndim == 4 and x.ndim == 4:
            if self.scale is None:
                if x.shape[-1] and out.shape[-1] % x.shape[-1] == 0:
                    self.scale = out.shape[-1] // x.shape[-1]
            else:  # every output is a probe of the scale the sidecar (or the caller) gave
                where = f"sidecar {self.artifact.sidecar_path}" if self.artifact.scale == self.scale and \
                    self.artifact.sidecar_path is not None else f"the scale given for {self.name}"
                check_scale(self.scale, x.shape[2:], out.shape[2:], where=where, artifact=self.name)
        self.timings.append(CallTiming(time.perf_counter() - start, t1 - t0, dict(self._stages)))
        return out

    __call__ = infer

    def _failure_message(self, x: np.ndarray, exc: Exception) -> str:
        detail = " ".join(str(exc).split())[:300]
        msg = f"{self.name} failed on an input of shape {tuple(x.shape)}: {type(exc).__name__}: {detail}"
        if self.io.source != "sidecar":
            msg += (". Without a sidecar edgesr does not know the artifact's smallest input or alignment: "
                    "export it with edgesr (it writes the sidecar) or use a larger image")
        return msg + "."

    @property
    def last_timing(self) -> CallTiming | None:
        return self.timings[-1] if self.timings else None

    def reset_timings(self) -> None:
        self.timings.clear()

    def as_sr_function(self) -> SRFunction:
        """A callable float32 NCHW 0..1 -> float32 NCHW 0..1 (`edgesr.inference.SRFunction`)."""

        def run(x: np.ndarray) -> np.ndarray:
            return self.infer(x)

        run.runner = self  # type: ignore[attr-defined]
        run.locate_nonfinite = lambda x: f"the artifact {self.name}"  # type: ignore[attr-defined]
        return run

    def describe(self) -> dict[str, Any]:
        """Setup of this runner for result files (backend, device, precision, threads, I/O...)."""
        return {"backend": self.backend, "name": self.name, "io": self.io.describe(), "scale": self.scale}

    def __repr__(self) -> str:
        state = "active" if self.is_active else "inactive"
        return f"<{type(self).__name__} {self.name!r} ({state})>"
