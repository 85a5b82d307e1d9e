"""ncnn runner: a ``.param`` + ``.bin`` pair (from `edgesr export --format ncnn`) on the CPU (or Vulkan).

ncnn runs one image at a time (a CHW Mat): a batch is run image by image. Each call is timed in
three stages: ``input`` (numpy -> Mat copies), ``compute`` (the extractor) and ``output`` (Mat ->
numpy). Blob names, the value range, FP16 storage, minimum size and scale come from the sidecar
(``<name>.json``, see `edgesr.export.ncnn`); without one the blobs are read from the param file
and the I/O is taken as float 0..1.

ncnn's own defaults enable FP16 storage/arithmetic on CPUs that have it (ARMv8.2): this runner
always sets them, from `fp16` or the sidecar, so an FP32 artifact runs in FP32 everywhere.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesr.errors import UserInputError
from edgesr.runtimes.base import BaseRunner, InputSpec
from edgesr.runtimes.io_convention import load_artifact_info
from edgesr.runtimes.registry import import_backend_package


class NcnnRunner(BaseRunner):
    """Run an ncnn model (``.param`` + ``.bin`` beside it).

    Args:
        path: the ``.param`` file; the weights are ``<stem>.bin`` (or the sidecar's ``ncnn.bin.file``).
        threads: ncnn's ``num_threads`` (None: ncnn's default, all big cores).
        fp16: FP16 storage (and packed layout); None: the sidecar's ``ncnn.opt.use_fp16_storage``, else False.
        fp16_arithmetic: also compute in FP16 where the CPU can (ARMv8.2); default False.
        vulkan: run on the GPU with Vulkan (needs an ncnn build with Vulkan and a GPU).
        use_sidecar: read the sidecar ``<file>.json`` (default True; validated, files checked against it).
        input_blob / output_blob: override the blob names.
        min_size / align / scale: override the sidecar's values for input validation.
    """

    backend = "ncnn"

    def __init__(self, path: str | Path, *, threads: int | None = None, fp16: bool | None = None,
                 fp16_arithmetic: bool = False, vulkan: bool = False, use_sidecar: bool = True,
                 input_blob: str | None = None, output_blob: str | None = None, min_size: int | None = None,
                 align: int | None = None, scale: int | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(name or f"ncnn:{self.path.name}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise UserInputError(f"threads must be an integer >= 1, got {threads!r}.")
        self.threads = threads
        self._fp16_option = fp16
        self.fp16 = bool(fp16)
        self.fp16_arithmetic = bool(fp16_arithmetic)
        self.vulkan = bool(vulkan)
        self.use_sidecar = use_sidecar
        self._blobs = (input_blob, output_blob)
        self._overrides = {"min_size": min_size, "align": align}
        self._scale_override = scale
        self.scale = scale
        self.net: Any = None
        self.input_blob = self.output_blob = ""
        self._ncnn: Any = import_backend_package("ncnn")  # MissingDependencyError naming edgesr[mobile]

    def _bin_path(self) -> Path:
        block = self.artifact.block("ncnn")
        name = (block.get("bin") or {}).get("file") if isinstance(block.get("bin"), dict) else None
        return self.path.with_name(name) if name else self.path.with_suffix(".bin")

    def activate_impl(self) -> None:
        from edgesr.export.ncnn import (param_io_blobs, read_ncnn_blobs, read_param, set_ncnn_options,
                                        unknown_layer_types)

        ncnn = self._ncnn
        if not self.path.is_file():
            raise UserInputError(f"model file not found: {self.path}")
        layers = read_param(self.path)
        self.artifact = load_artifact_info(self.path, input_names=param_io_blobs(layers)[0],
                                           use_sidecar=self.use_sidecar)
        self.io = self.artifact.io
        self.scale = self._scale_override or self.artifact.scale or self.scale
        block = self.artifact.block("ncnn")
        if self._fp16_option is None:
            opt = block.get("opt") if isinstance(block.get("opt"), dict) else {}
            self.fp16 = bool(opt.get("use_fp16_storage", block.get("fp16_weights", False)))
        bin_path = self._bin_path()
        if not bin_path.is_file():
            raise UserInputError(f"the weights of {self.path.name} are missing: {bin_path} not found "
                                 "(an ncnn model is a .param and a .bin file).")
        unknown = unknown_layer_types(layers, ncnn)
        if unknown:
            raise UserInputError(f"{self.path.name} uses layer type(s) {', '.join(unknown)} that the installed ncnn "
                                 f"{ncnn.__version__} does not implement; re-export the model with ops ncnn supports.")
        in_blob, out_blob = self._blobs
        if not (in_blob and out_blob):
            side_in, side_out = block.get("input_blob"), block.get("output_blob")
            if not (side_in and side_out):
                side_in, side_out = read_ncnn_blobs(self.path)
            in_blob, out_blob = in_blob or side_in, out_blob or side_out
        if self.vulkan and not (hasattr(ncnn, "get_gpu_count") and ncnn.get_gpu_count() > 0):
            raise UserInputError("vulkan=True, but this ncnn has no Vulkan GPU (ncnn.get_gpu_count() == 0); "
                                 "use vulkan=False.")
        net = ncnn.Net()
        set_ncnn_options(net.opt, threads=self.threads, fp16=self.fp16, fp16_arithmetic=self.fp16_arithmetic,
                         vulkan=self.vulkan)
        if net.load_param(str(self.path)) != 0:
            raise UserInputError(f"ncnn cannot load {self.path} (not a valid param file for ncnn {ncnn.__version__}).")
        if net.load_model(str(bin_path)) != 0:
            raise UserInputError(f"ncnn cannot load the weights {bin_path}: truncated or not matching "
                                 f"{self.path.name}.")
        names_in, names_out = list(net.input_names()), list(net.output_names())
        for blob, names, what in ((in_blob, names_in, "input"), (out_blob, names_out, "output")):
            if names and blob not in names:
                raise UserInputError(f"{self.path.name} has no {what} blob {blob!r}; its {what}s are {names}.")
        self.net, self.input_blob, self.output_blob = net, in_blob, out_blob

    def deactivate_impl(self) -> None:
        self.net = None

    def get_input_spec(self) -> InputSpec:
        return InputSpec(self.input_blob, (None, 3, None, None), np.float32,
                         self._overrides["min_size"] or self.artifact.min_size or 1,
                         self._overrides["align"] or self.artifact.align or 1)

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        ncnn, net = self._ncnn, self.net
        outs = []
        stages = {"input": 0.0, "compute": 0.0, "output": 0.0}
        for image in x:
            t0 = time.perf_counter()
            mat = ncnn.Mat(np.ascontiguousarray(image, dtype=np.float32)).clone()  # ncnn may write into it
            t1 = time.perf_counter()
            with net.create_extractor() as ex:
                ex.input(self.input_blob, mat)
                rc, out = ex.extract(self.output_blob)
                t2 = time.perf_counter()
                if rc != 0:
                    raise UserInputError(f"ncnn failed to compute {self.output_blob!r} for a {tuple(image.shape)} "
                                         f"input (status {rc}).")
                y = np.array(out, dtype=np.float32, copy=True)
            t3 = time.perf_counter()
            stages["input"] += t1 - t0
            stages["compute"] += t2 - t1
            stages["output"] += t3 - t2
            if y.ndim == 2:
                y = y[None]
            h, w = image.shape[-2:]
            if self.scale and y.shape[-2:] != (h * self.scale, w * self.scale):
                raise UserInputError(
                    f"{self.path.name} returned {tuple(y.shape)} for a {h}x{w} input, not x{self.scale} "
                    f"({h * self.scale}x{w * self.scale}): the model froze a shape at conversion; re-export it.")
            outs.append(y)
        self._stages = stages
        return np.stack(outs)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(path=str(self.path), threads=self.threads, fp16=self.fp16, fp16_arithmetic=self.fp16_arithmetic,
                    vulkan=self.vulkan, precision="fp16" if self.fp16 else "fp32", ncnn=self._ncnn.__version__,
                    device="vulkan" if self.vulkan else "cpu")
        if self.is_active:
            info.update(input_blob=self.input_blob, output_blob=self.output_blob)
        return info
