"""ONNX Runtime mobile: an exported ONNX graph -> ORT format (``.ort``) + reduced-operator config + sidecar.

    from edgesr.export.ort_mobile import export_ort
    result = export_ort(model, "out/rlfn_x4.ort")                         # FP32
    result = export_ort(model, "out/rlfn_x4_fp16.ort", ExportOptions(fp16=True))
    result = export_ort(model, "out/rlfn_x4_int8.ort", quantize={"calib_images": ".../DIV2K_test_LR_x4"})

The conversion is ONNX Runtime's own tool (`onnxruntime.tools.convert_onnx_models_to_ort`, called through its
Python API, its console output sent to the log). Per artifact it writes

* ``<name>.ort``: the graph, optimized and serialized in the ORT flatbuffer format that the mobile
  packages (``onnxruntime-android`` / ``onnxruntime-mobile`` / a minimal build) load;
* ``<name>.required_operators.config``: the operators (per domain and opset) the model needs, for a
  reduced-size build (``build.sh --minimal_build --include_ops_by_config <file>``). The tool's own name
  for a single model; one per artifact, so the FP32, FP16 and INT8 files of a model can share a folder;
* ``<name>.ort.json``: the edgesr sidecar (format "ort"; written last, with the sha256 of both files), with
  parity of the ``.ort`` itself in ONNX Runtime
  against PyTorch and an ``ort`` block (optimization style, target platform, required operators, source
  ONNX checksum).

Optimization style: ``"fixed"`` (the default, for every precision) runs ONNX Runtime's full optimizer
(level "all") before saving, so the device loads a graph that is already fused (Conv+activation ->
FusedConv, QDQ groups -> QLinearConv/QLinearAdd/..., constant folding), needs no optimizer at session start,
and the operator config lists exactly the kernels that run. With the default target platform ``"arm"``
the x86-only NCHWc layout transform is left out (the tool does this for any non-amd64 target) and int8
QDQ groups with signed activations may fuse (``session.qdqisint8allowed``). That is the artifact for the
ONNX Runtime CPU execution provider, the common case on phones (``onnxruntime-android`` / a minimal build).
``"runtime"`` saves only basic optimizations and records the others to be replayed at session start, only
when the session option ``session.enable_saved_runtime_optimizations`` is "1": ONNX Runtime's guidance for
compiling execution providers (NNAPI, CoreML, QNN) that claim an unknown set of nodes at load time and would
refuse CPU-only fused nodes. Measured here (RLFN x4, desktop ONNX Runtime without the replay option), a
"runtime" INT8 .ort runs ~3x slower than a "fixed" one: the QDQ fusions are not applied.

FP16 caveat (measured): the conversion runs ONNX Runtime's CPU execution provider of the machine it runs on.
The x86 CPU provider has no float16 Conv/Sigmoid/LeakyRelu kernels, so it inserts Casts to float32 around
them and these are saved in the ``.ort`` (in either style). An FP16 ``.ort`` made on x86 is therefore a
half-size file that computes in float32; for float16 arithmetic on an ARM64 CPU (or a GPU/NPU provider),
convert the FP16 ONNX on that kind of machine, or ship the FP16 ``.onnx``.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import io as _io
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping


from edgesr.errors import ExportError, UserInputError
from edgesr.metrics.psnr import format_psnr
from edgesr.utils.hashing import sha256_bytes

if TYPE_CHECKING:
    from torch import nn

    from edgesr.artifacts.sidecar import Sidecar

    from edgesr.export.onnx_export import ExportOptions

log = logging.getLogger(__name__)

OPTIMIZATION_STYLES = ("fixed", "runtime")
TARGET_PLATFORMS = ("arm", "amd64")
CONFIG_SUFFIX = ".required_operators.config"


@dataclass
class OrtConversion:
    """Result of `convert_onnx_to_ort`."""

    ort_path: Path
    config_path: Path
    optimization_style: str
    target_platform: str
    required_ops: dict[str, list[str]] = field(default_factory=dict)  # "domain;opset" -> op types


@dataclass
class OrtExportResult:
    """What `export_ort` wrote and measured."""

    path: Path
    sidecar_path: Path
    config_path: Path
    sidecar: "Sidecar"
    precision: str
    onnx_summary: list[str] = field(default_factory=list)
    quantize_summary: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        lines = list(self.onnx_summary) + list(self.quantize_summary)
        ort = self.sidecar.block("ort")
        lines.append(f"ORT format: optimization style {ort.get('optimization_style')}, target platform "
                     f"{ort.get('target_platform')}; required operators: "
                     + "; ".join(f"{k}: {', '.join(v)}" for k, v in ort.get("required_ops", {}).items()))
        for e in self.sidecar.parity.entries:
            extra = " (FP16 vs FP32)" if e.fp16_psnr_db is not None else ""
            lines.append(f".ort parity {e.height}x{e.width}: vs PyTorch max|d| {e.max_abs_diff:.3g} "
                         f"(0..255), PSNR {format_psnr(e.psnr_db)}{extra}")
        art = self.sidecar.artifact
        lines.append(f"wrote {self.path} ({art.bytes / 1024:.1f} KiB, sha256 {art.sha256[:16]}...), "
                     f"{self.config_path.name} and {self.sidecar_path.name}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines


def config_path_for(ort_path: str | Path) -> Path:
    """``DIR/<name>.required_operators.config`` for ``DIR/<name>.ort``."""
    path = Path(ort_path)
    return path.with_name(path.stem + CONFIG_SUFFIX)


def read_required_ops(config: str | Path) -> dict[str, list[str]]:
    """``{"ai.onnx;18": ["Conv", ...], ...}`` from a required-operators config file."""
    ops: dict[str, list[str]] = {}
    for line in Path(config).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, names = line.rpartition(";")
        ops[key] = sorted(n.strip() for n in re.split(r",(?![^{]*})", names) if n.strip())
    return ops


def _check_style(optimization_style: str, target_platform: str) -> tuple[str, str]:
    style = str(optimization_style).lower()
    if style not in OPTIMIZATION_STYLES:
        raise UserInputError(f"unknown ORT optimization style {optimization_style!r}; choose one of "
                             f"{', '.join(OPTIMIZATION_STYLES)}.")
    platform = str(target_platform).lower()
    if platform not in TARGET_PLATFORMS:
        raise UserInputError(f"unknown ORT target platform {target_platform!r}; choose one of "
                             f"{', '.join(TARGET_PLATFORMS)}.")
    return style, platform


def convert_onnx_to_ort(onnx_path: str | Path, ort_path: str | Path, *, optimization_style: str = "fixed",
                        target_platform: str = "arm", force: bool = False) -> OrtConversion:
    """Convert one ONNX file to ``ort_path`` (.ort) and its ``<name>.required_operators.config`` beside it.

    Runs ``onnxruntime.tools.convert_onnx_models_to_ort`` on a copy in a temporary folder (the tool
    converts every .onnx of a folder and names its outputs itself), then moves both files into place.
    """
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    from edgesr.utils.atomic import check_writable, commit_files

    style, platform = _check_style(optimization_style, target_platform)
    onnx_path, ort_path = Path(onnx_path), Path(ort_path)
    if not onnx_path.is_file():
        raise UserInputError(f"ONNX model not found: {onnx_path}")
    if ort_path.suffix.lower() != ".ort":
        raise UserInputError(f"the ORT format artifact must end in .ort, got {ort_path}.")
    config_path = config_path_for(ort_path)
    check_writable(ort_path, force)
    check_writable(config_path, force)
    with tempfile.TemporaryDirectory(prefix="edgesr-ort-") as tmp:
        src_dir, out_dir = Path(tmp) / "src", Path(tmp) / "out"
        src_dir.mkdir()
        src = src_dir / "model.onnx"
        src.write_bytes(onnx_path.read_bytes())
        console = _io.StringIO()
        tool_log = logging.getLogger("ort_format_model.utils")
        level = tool_log.level
        tool_log.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(console):
                convert_onnx_models_to_ort(src, output_dir=out_dir,
                                           optimization_styles=[OptimizationStyle[style.capitalize()]],
                                           target_platform=platform)
        except Exception as exc:  # noqa: BLE001 - the tool raises whatever ONNX Runtime raises
            raise ExportError(f"ONNX Runtime could not convert {onnx_path.name} to ORT format: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}") from exc
        finally:
            tool_log.setLevel(level)
            log.debug("convert_onnx_models_to_ort: %s", console.getvalue())
        made = sorted(out_dir.glob("*.ort"))
        configs = sorted(out_dir.glob("*.config"))
        if len(made) != 1 or len(configs) != 1:
            raise ExportError(f"ONNX Runtime's ORT conversion did not produce one .ort and one config file "
                              f"(got {[p.name for p in made + configs]}); its output:\n{console.getvalue()}")
        commit_files({ort_path: made[0].read_bytes(), config_path: configs[0].read_bytes()}, force=force)
    return OrtConversion(ort_path, config_path, style, platform, read_required_ops(config_path))


def export_ort(model: "nn.Module", path: str | Path, options: "ExportOptions | None" = None, *,
               optimization_style: str | None = None, target_platform: str = "arm",
               quantize: Mapping[str, Any] | None = None) -> OrtExportResult:
    """Export `model` to ``path`` (.ort), its required-operators config and sidecar, verified in ONNX Runtime.

    `options` are `export_onnx`'s (fp16, io, reparam, parity sizes...): the model is exported to ONNX in a
    temporary folder first (FP32, or FP16 with `options.fp16`), optionally quantized to INT8 (`quantize`:
    keyword arguments of `edgesr.export.quantize.quantize_onnx`, ``calib_images`` required), then
    converted. The ``.ort`` file is run in ONNX Runtime on the parity images and compared with the PyTorch FP32
    model (FP32: max |diff| <= `options.max_abs_diff` on 0..255; FP16: PSNR >= `options.fp16_min_psnr`,
    recorded as ``fp16_psnr_db``) and with the ONNX graph it was converted from (``ort.max_abs_diff_vs_onnx``). `optimization_style` and `target_platform`: see the module docstring.
    Nothing is written unless every check passes. The sidecar's ``graph`` block describes the source ONNX
    (the ``.ort`` holds ONNX Runtime's optimized form of it; its operators are in ``ort.required_ops``).
    """
    from torch import nn

    from edgesr.export.onnx_export import ExportOptions, export_onnx
    from edgesr.export.verify import (
        compare_255,
        create_session,
        parity_images,
        run_onnx_255,
        torch_reference_255,
    )
    from edgesr.artifacts.sidecar import ParityEntry, ParityInfo, sidecar_path_for
    from edgesr.utils.atomic import check_writable

    options = options or ExportOptions()
    if not isinstance(model, nn.Module):
        raise UserInputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    path = Path(path)
    if path.suffix.lower() != ".ort":
        raise UserInputError(f"the ORT format artifact path must end in .ort, got {path}.")
    if quantize is not None and options.half:
        raise UserInputError("INT8 and FP16 exclude each other: quantize the FP32 export (drop --fp16).")
    if quantize is not None and "calib_images" not in quantize:
        raise UserInputError("INT8 needs calibration images: pass quantize={'calib_images': DIR, ...} "
                             "(CLI: --calib-images DIR).")
    if quantize is not None:
        from edgesr.export.calibration import calibration_files

        calibration_files(quantize["calib_images"])  # fail before exporting anything
    style = optimization_style or "fixed"
    style, platform = _check_style(style, target_platform)
    side_path = sidecar_path_for(path)
    config_path = config_path_for(path)
    for p in (path, side_path, config_path):
        check_writable(p, options.force)

    warn: list[str] = []
    with tempfile.TemporaryDirectory(prefix="edgesr-ort-export-") as tmp:
        tmpdir = Path(tmp)
        onnx_path = tmpdir / (path.stem + ".onnx")
        result = export_onnx(model, onnx_path, dataclasses.replace(options, force=True))
        warn.extend(result.warnings)
        src, base = onnx_path, result.sidecar
        quant_lines: list[str] = []
        precision = "fp16" if options.half else "fp32"
        if quantize is not None:
            from edgesr.export.quantize import quantize_onnx

            kwargs = dict(quantize)
            calib = kwargs.pop("calib_images")
            kwargs.setdefault("threads", options.threads)
            q = quantize_onnx(onnx_path, tmpdir / (path.stem + "_int8.onnx"), calib, force=True, **kwargs)
            src, base, precision = q.path, q.sidecar, "int8"
            quant_lines = q.summary()[:-1]  # not the "wrote <temporary file>" line
            warn.extend(q.warnings)
        conv = convert_onnx_to_ort(src, tmpdir / path.name, optimization_style=style, target_platform=platform,
                                   force=True)

        # ---- parity of the .ort file itself
        sizes = [(e.height, e.width) for e in base.parity.entries] if precision != "int8" \
            else list(options.parity_sizes)
        sizes = sizes or list(options.parity_sizes)
        images = parity_images(sizes, options.parity_dir)
        threads, io = options.threads, options.io
        sess_ort = create_session(conv.ort_path, threads=threads)
        sess_src = create_session(src, threads=threads)
        reference = _cpu_copy(model)
        entries, ort_vs_src = [], 0.0
        old = {(e.height, e.width): e for e in base.parity.entries}
        tol = max(options.max_abs_diff, 1.0) if io == "uint8" else options.max_abs_diff
        for (name, image), (h, w) in zip(images, sizes):
            out = run_onnx_255(sess_ort, image, io)
            ref = torch_reference_255(reference, image, io)
            c = compare_255(out, ref)
            if not c.finite:
                raise ExportError(f"the .ort model returns non-finite values at {h}x{w} ({name}).")
            ort_vs_src = max(ort_vs_src, compare_255(out, run_onnx_255(sess_src, image, io)).max_abs_diff)
            entry = ParityEntry(height=h, width=w, image=name, max_abs_diff=c.max_abs_diff, psnr_db=c.psnr_db)
            if precision == "fp32" and c.max_abs_diff > tol:
                raise ExportError(f".ort parity check failed at {h}x{w}: it differs from PyTorch by up to "
                                  f"{c.max_abs_diff:.4g} (0..255 scale; allowed {tol:g}), PSNR {c.psnr_db:.2f} dB.")
            if precision == "fp16":  # vs the FP32 reference (PyTorch FP32 = the FP32 graph within 1e-3 levels)
                c16 = c
                entry.fp16_max_abs_diff, entry.fp16_psnr_db = c16.max_abs_diff, c16.psnr_db
                prev = old.get((h, w))
                if prev is not None:
                    entry.fp16_emulated_psnr_db, entry.fp16_peak = prev.fp16_emulated_psnr_db, prev.fp16_peak
                if options.fp16_min_psnr is not None and c16.psnr_db < options.fp16_min_psnr:
                    raise ExportError(f"the FP16 .ort output is only {c16.psnr_db:.2f} dB from FP32 at {h}x{w} "
                                      f"(at least {options.fp16_min_psnr:g} dB required). Keep FP32.")
            entries.append(entry)
        del sess_ort, sess_src

        import onnxruntime

        ort_bytes = conv.ort_path.read_bytes()
        src_bytes = Path(src).read_bytes()
        config_bytes = conv.config_path.read_bytes()
        side = base.copy()
        side.artifact.file, side.artifact.format = path.name, "ort"
        fp16s = [e.fp16_psnr_db for e in entries if e.fp16_psnr_db is not None]
        side.parity = ParityInfo(
            reference="PyTorch eager FP32, CPU (the model before folding)",
            runtime=f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider running the .ort file, "
                    f"{threads} threads",
            entries=entries,
            max_abs_diff=max(e.max_abs_diff for e in entries),
            min_psnr_db=min(e.psnr_db for e in entries),
            fp16_min_psnr_db=min(fp16s) if fp16s else None,
            fp16_emulated_min_psnr_db=base.parity.fp16_emulated_min_psnr_db,
            fp16_peak=base.parity.fp16_peak,
        )
        side.versions = {**side.versions, "onnxruntime": onnxruntime.__version__}
        side.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        side.blocks["ort"] = {
            "optimization_style": style,
            "optimization_level": "all" + (" (NCHWc layout transform excluded)" if platform != "amd64" else ""),
            "target_platform": platform,
            "required_operators": config_path.name,
            "required_ops": conv.required_ops,
            "runtime_optimizations_note": ("replay needs the session option "
                                           "session.enable_saved_runtime_optimizations=1") if style == "runtime" else None,
            "max_abs_diff_vs_onnx": ort_vs_src,
            "source_onnx": {"precision": precision, "bytes": len(src_bytes), "sha256": sha256_bytes(src_bytes)},
            "tool": "onnxruntime.tools.convert_onnx_models_to_ort",
        }
        side.write({path: ort_bytes, config_path: config_bytes}, force=options.force,
                   roles={config_path.name: "required_operators"})
    for w in warn:
        log.warning("%s", w)
    onnx_lines = [line for line in result.summary() if not line.startswith("wrote ")]
    return OrtExportResult(path=path, sidecar_path=side_path, config_path=config_path, sidecar=side,
                           precision=precision, onnx_summary=onnx_lines, quantize_summary=quant_lines, warnings=warn)


def _cpu_copy(model: "nn.Module") -> "nn.Module":
    return copy.deepcopy(model).float().cpu().eval()

