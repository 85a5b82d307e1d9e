"""Backends by name, and `create_runner`, which picks one from the target.

A backend is added in one place: a `register_backend(...)` call below naming its runner class
(as ``"module:Class"``, imported only when the backend is used), the file extensions it opens,
the Python package it needs and the pip extra that installs it.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import ModuleType
from typing import Any

from edgesr.errors import MissingDependencyError, UserInputError, suggest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendInfo:
    """A registered backend. `extensions` are the artifact suffixes it opens (lower case, with the
    dot); `default_for` those it is picked for when no backend is named; `accepts_module`: it runs
    an in-memory `nn.Module`."""

    name: str
    runner: str
    description: str
    package: str | None = None
    extra: str | None = None
    install: str | None = None
    note: str = ""
    extensions: tuple[str, ...] = ()
    default_for: tuple[str, ...] = ()
    accepts_module: bool = False

    def install_hint(self) -> str:
        if self.install:
            return self.install
        if self.extra:
            return f"pip install edgesr[{self.extra}]"
        return f"pip install {self.package}" if self.package else ""

    def missing_message(self, detail: str = "") -> str:
        msg = (f"the {self.name} backend needs the Python package {self.package!r}, which is not installed"
               f"{f' ({detail})' if detail else ''}. Install it with: {self.install_hint()}.")
        return msg + (f" {self.note}" if self.note else "")

    def is_available(self) -> bool:
        """Whether the backend's package can be found (without importing it)."""
        if self.package is None:
            return True
        try:
            return importlib.util.find_spec(self.package.split(".")[0]) is not None
        except (ImportError, ValueError):
            return False

    def load_runner_class(self) -> type:
        module, _, attr = self.runner.partition(":")
        return getattr(importlib.import_module(module), attr)


_BACKENDS: dict[str, BackendInfo] = {}
_ALIASES: dict[str, str] = {}


def register_backend(info: BackendInfo, aliases: tuple[str, ...] = ()) -> BackendInfo:
    if info.name in _BACKENDS or info.name in _ALIASES:
        raise ValueError(f"backend {info.name!r} registered twice")
    _BACKENDS[info.name] = info
    for alias in aliases:
        _ALIASES[alias] = info.name
    return info


def list_backends(available_only: bool = False) -> list[str]:
    """Registered backend names (sorted); `available_only` keeps those whose package is installed."""
    return sorted(n for n, b in _BACKENDS.items() if not available_only or b.is_available())


def get_backend(name: str) -> BackendInfo:
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _BACKENDS:
        choices = list(_BACKENDS) + list(_ALIASES)
        raise UserInputError(f"unknown backend {name!r}.{suggest(key, choices)} "
                             f"Registered backends: {', '.join(sorted(_BACKENDS))}.")
    return _BACKENDS[key]


def import_backend_package(backend: str, module: str | None = None) -> ModuleType:
    """Import `module` (default: the backend's package), turning ImportError into a
    MissingDependencyError that names the extra to install."""
    info = get_backend(backend)
    name = module or info.package
    assert name is not None
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(info.missing_message(str(exc))) from exc


def backend_for_path(path: Path) -> BackendInfo:
    suffix = path.suffix.lower()
    for info in _BACKENDS.values():
        if suffix in info.default_for:
            return info
    known = sorted({ext for b in _BACKENDS.values() for ext in b.extensions})
    raise UserInputError(f"cannot tell which backend runs {path.name!r} from its extension {suffix or '(none)'!r}; "
                         f"known extensions: {', '.join(known)}. Choose one with -b/--backend (backend=... in Python).")


def create_runner(target: Any, backend: str | None = None, **options: Any):
    """A runner for `target`: an `nn.Module` (torch) or an artifact file.

    Backend by extension unless `backend` is given: ``.onnx`` -> onnxruntime (or ``openvino``),
    ``.xml`` -> openvino, ``.engine`` / ``.plan`` -> tensorrt, ``.param`` -> ncnn, ``.pte`` -> executorch.
    `options` go to the runner's constructor (see each runner). A backend whose package is missing
    raises MissingDependencyError naming the extra to install.
    """
    from torch import nn

    if isinstance(target, nn.Module):
        info = get_backend(backend) if backend else get_backend("torch")
        if not info.accepts_module:
            raise UserInputError(f"the {info.name} backend runs exported files ({', '.join(info.extensions)}), "
                                 "not a PyTorch module: export the model first, or use backend='torch'.")
    elif isinstance(target, (str, PathLike)):
        path = Path(target)
        if not backend:
            backend, options = _recommended(path, options)
        info = get_backend(backend) if backend else backend_for_path(path)
        if not info.extensions:
            raise UserInputError(f"the {info.name} backend runs an in-memory nn.Module, not a file ({path.name!r}): "
                                 "build the model first (edgesr.create_model).")
        if path.suffix.lower() not in info.extensions:
            raise UserInputError(f"the {info.name} backend opens {', '.join(info.extensions)} files, "
                                 f"not {path.name!r}.")
        if info.package and not info.is_available():
            raise MissingDependencyError(info.missing_message())
        if not path.is_file():
            raise UserInputError(f"model file not found: {path}")
    else:
        raise UserInputError(f"cannot run a {type(target).__name__}: pass an nn.Module or the path of an "
                             "exported model (.onnx, .xml, .engine, .plan, .param, .pte).")
    cls = info.load_runner_class()
    try:
        inspect.signature(cls).bind(target, **options)
    except TypeError as exc:
        params = [p for p in list(inspect.signature(cls).parameters)[1:] if p not in ("args", "kwargs")]
        raise UserInputError(f"bad options for the {info.name} backend ({exc}); it takes: "
                             f"{', '.join(params)}.") from exc
    return cls(target, **options)


def _recommended(path: Path, options: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The backend and options `edgesr optimize` chose `path` with (its sidecar's ``optimize`` block), under the
    caller's own options; (None, options) when it records none."""
    from edgesr.artifacts.sidecar import Sidecar, find_sidecar
    from edgesr.errors import EdgesrError

    found = find_sidecar(path) if path.is_file() else None
    if found is None:
        return None, options
    try:
        chosen = Sidecar.read(found).recommended_runtime()
    except EdgesrError:
        return None, options  # the runner reports a bad sidecar itself, naming the field
    if chosen is None or chosen[0] not in _BACKENDS or path.suffix.lower() not in _BACKENDS[chosen[0]].extensions:
        return None, options
    log.info("%s: running on %s %s, as recorded by edgesr optimize in its sidecar", path.name, chosen[0], chosen[1])
    return chosen[0], {**chosen[1], **options}


# ---- the backends ----------------------------------------------------------------------------
register_backend(BackendInfo(
    "torch", "edgesr.runtimes.torch_runner:TorchRunner",
    "PyTorch eager or torch.compile (cpu/cuda; fp32/fp16/bf16; channels_last)",
    package="torch", install="pip install torch", accepts_module=True), aliases=("pytorch", "eager"))
register_backend(BackendInfo(
    "onnxruntime", "edgesr.runtimes.onnxruntime_runner:OnnxRuntimeRunner",
    "ONNX Runtime (CPU; CUDA and TensorRT execution providers with onnxruntime-gpu)",
    package="onnxruntime", install="pip install onnxruntime (or edgesr[gpu] for CUDA)",
    extensions=(".onnx", ".ort"), default_for=(".onnx", ".ort")), aliases=("ort",))
register_backend(BackendInfo(
    "openvino", "edgesr.runtimes.openvino_runner:OpenVINORunner",
    "OpenVINO (CPU; f32/bf16/f16 precision hint always set)",
    package="openvino", extra="openvino", extensions=(".onnx", ".xml"), default_for=(".xml",)), aliases=("ov",))
register_backend(BackendInfo(
    "tensorrt", "edgesr.runtimes.tensorrt_runner:TensorRTRunner",
    "TensorRT serialized engine (NVIDIA GPU)",
    package="tensorrt", extra="tensorrt",
    note="TensorRT needs an NVIDIA GPU with CUDA (and engines are tied to the GPU and TensorRT version "
         "they were built with); on a CPU-only machine run the .onnx file with onnxruntime or openvino.",
    extensions=(".engine", ".plan"), default_for=(".engine", ".plan")), aliases=("trt",))
register_backend(BackendInfo(
    "ncnn", "edgesr.runtimes.ncnn_runner:NcnnRunner", "ncnn param/bin (CPU / Vulkan, mobile)",
    package="ncnn", extra="mobile", extensions=(".param",), default_for=(".param",)))
register_backend(BackendInfo(
    "executorch", "edgesr.runtimes.executorch_runner:ExecuTorchRunner", "ExecuTorch .pte program (XNNPACK, mobile)",
    package="executorch", extra="executorch", extensions=(".pte",), default_for=(".pte",)), aliases=("et",))
