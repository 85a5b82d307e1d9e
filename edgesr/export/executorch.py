"""PyTorch SR model -> ExecuTorch ``.pte`` program (XNNPACK delegate) + sidecar, verified with its runtime.

The pipeline of `export_executorch`:

1. check the options, that ExecuTorch is installed (`pip install edgesr[executorch]`) and that the
   outputs may be written, before any work;
2. wrap a copy of the model for the I/O convention (``float01`` or ``float255``) and fold it for
   inference (`edgesr.transforms.reparameterize`);
3. `torch.export.export` with dynamic height and width, ``Dim(min=lower bound, max=upper bound)``: the
   lower bound is the model's minimum input size, the upper bound the export's ``max_shape``. ExecuTorch
   plans all activation memory for the upper bound when the program is loaded (about 1 GB for RLFN x4
   at 1024x1024, 59 MiB at 256x256): the sidecar records it; export with a small ``max_shape`` for
   phones and tile. When torch.export proves the model only works for a narrower range (ESA: its
   pooled attention map must be larger than one pixel, which needs 21 px, not 15), the lower bound is
   raised to the smallest value that holds and the sidecar's ``min_size`` says so; when a dynamic
   export is impossible, the program is exported for the ``opt_shape`` only (``executorch.dynamic_shape``
   false, with the reason) and the runner refuses other sizes;
4. lower with `to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])` and
   `.to_executorch()`; an op outside the Core ATen opset, or one neither XNNPACK nor the installed
   runtime's kernels implement, is an ExportError naming the op and the module calling it;
5. run the program with ExecuTorch's Python runtime at several sizes (odd ones included), assert the
   output shape and compare with PyTorch;
6. write ``<name>.pte`` and then its sidecar ``<name>.pte.json`` as one transaction.

FP16 is refused: an FP16 program (weights and activations in float16, XNNPACK) exported this way
measured 11 dB PSNR vs PyTorch on x86 with executorch 1.5.1, i.e. broken.
"""
from __future__ import annotations

import ast
import collections
import contextlib
import logging
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from edgesr.errors import ExportError, MissingDependencyError, UserInputError
from edgesr.export.ncnn import (
    MobileExportResult,
    PreparedModel,
    base_versions,
    build_sidecar,
    check_mobile_options,
    check_outputs,
    example_input,
    locate_ops,
    parity_entries,
    parity_info,
    prepare_model,
    tensor_specs,
)
from edgesr.export.onnx_export import ExportOptions
from edgesr.artifacts.sidecar import GraphStats, sidecar_path_for

log = logging.getLogger(__name__)

EXECUTORCH_EXTRA = "pip install edgesr[executorch]"
EXECUTORCH_INSTALL_NOTE = ("(or, to be sure no other torch is pulled in: pip install --no-deps executorch==1.5.1 "
                           "torchao==0.18.0 && pip install ruamel.yaml tabulate)")
METHOD = "forward"
_GUARD = re.compile(r"Not all values of (\w+) = L\['x'\]\.size\(\)\[(\d)\] in the specified range .*? satisfy the "
                    r"generated guard (.+?)\.\s*$", re.M)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence torch.export / ExecuTorch / torchao chatter (loggers, warnings, C++ prints)."""
    from edgesr.export.onnx_export import _quiet_exporter

    loggers = [logging.getLogger(n) for n in ("executorch", "torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with _quiet_exporter():
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _missing(what: str, exc: BaseException) -> MissingDependencyError:
    return MissingDependencyError(
        f"{what} needs the Python package 'executorch' (1.5.1), which is not installed or incomplete ({exc}). "
        f"Install it with: {EXECUTORCH_EXTRA} {EXECUTORCH_INSTALL_NOTE}.")


def import_executorch_runtime() -> Any:
    """`executorch.runtime` (imported quietly), or a MissingDependencyError naming the extra."""
    try:
        with quiet():
            import executorch.runtime as runtime
    except ImportError as exc:
        raise _missing("the ExecuTorch runtime", exc) from exc
    return runtime


def import_executorch_exporter() -> tuple[Any, Any]:
    """(to_edge_transform_and_lower, XnnpackPartitioner), or a MissingDependencyError naming the extra."""
    try:
        with quiet():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise _missing("ExecuTorch export", exc) from exc
    return to_edge_transform_and_lower, XnnpackPartitioner


def thread_count() -> int | None:
    """The size of ExecuTorch's process-wide XNNPACK thread pool (None if unknown)."""
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:
        return None
    get = getattr(portable_lib, "_threadpool_get_thread_count", None)
    return int(get()) if get else None


def set_threads(threads: int | None) -> int | None:
    """Resize ExecuTorch's process-wide XNNPACK thread pool; return the previous size (None if unknown).

    Only call it while no program is loaded: a method loaded before the resize keeps a pointer to the
    old pool and crashes when run (the binding calls it "unsafe")."""
    if threads is None:
        return None
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:
        return None
    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    previous = thread_count()
    if reset is not None and previous != threads:
        reset(int(threads))
    return previous


# ---------------------------------------------------------------------------------- torch.export


def _is_constraint_violation(exc: BaseException) -> bool:
    return "Constraints violated" in str(exc)


_SAFE_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Constant, ast.Name, ast.Add,
               ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.USub, ast.UAdd, ast.Eq, ast.NotEq, ast.Lt, ast.LtE,
               ast.Gt, ast.GtE, ast.And, ast.Or, ast.Load)


def _guard_predicate(expr: str, dim: int):
    """A function v -> bool for a guard on ``L['x'].size()[dim]`` only, or None when it cannot be read."""
    text = expr.replace(f"L['x'].size()[{dim}]", "v")
    if "L[" in text:
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    if not all(isinstance(node, _SAFE_NODES) for node in ast.walk(tree)):
        return None
    if any(isinstance(node, ast.Name) and node.id != "v" for node in ast.walk(tree)):
        return None
    code = compile(tree, "<guard>", "eval")
    return lambda v: bool(eval(code, {"__builtins__": {}}, {"v": v}))  # noqa: S307 - checked AST, ints only


def lower_bound_from_guards(message: str, bounds: dict[int, tuple[int, int]]) -> dict[int, int] | None:
    """The smallest lower bound per dim such that every guard in a torch.export constraint violation
    holds from it up to the upper bound; None when a guard cannot be read (search instead)."""
    found = _GUARD.findall(message)
    if not found:
        return None
    new = {d: lo for d, (lo, _) in bounds.items()}
    for _, dim_text, expr in found:
        dim = int(dim_text)
        if dim not in bounds:
            return None
        pred = _guard_predicate(expr, dim)
        if pred is None:
            return None
        lo, hi = bounds[dim]
        bad = [v for v in range(lo, hi + 1) if not pred(v)]
        if bad:
            if bad[-1] >= hi:
                return None
            new[dim] = max(new[dim], bad[-1] + 1)
    return new


def _export(module: nn.Module, example: torch.Tensor, bounds: dict[int, tuple[int, int]] | None):
    from torch.export import Dim

    dynamic = None
    if bounds is not None:
        (lo_h, hi_h), (lo_w, hi_w) = bounds[2], bounds[3]
        dynamic = ({2: Dim("height", min=lo_h, max=hi_h), 3: Dim("width", min=lo_w, max=hi_w)},)
    with quiet(), torch.no_grad():
        return torch.export.export(module, (example,), dynamic_shapes=dynamic, strict=False)


def export_dynamic(module: nn.Module, example: torch.Tensor, bounds: dict[int, tuple[int, int]]):
    """torch.export with dynamic H/W in `bounds` ({2: (lo, hi), 3: (lo, hi)}), raising the lower bounds
    to what the model's guards need. Returns (exported program, bounds used, note or None)."""
    try:
        return _export(module, example, bounds), bounds, None
    except Exception as exc:  # noqa: BLE001 - a constraint violation is handled, the rest re-raised
        if not _is_constraint_violation(exc):
            raise
        message = str(exc)
    raised = lower_bound_from_guards(message, bounds)
    if raised is None:  # unreadable guards: search the smallest lower bound that exports (success is monotone)
        raised = {}
        for dim in (2, 3):
            lo, hi = bounds[dim][0], int(example.shape[dim])
            while lo < hi:
                mid = (lo + hi) // 2
                trial = dict(bounds)
                trial[dim] = (mid, bounds[dim][1])
                try:
                    _export(module, example, trial)
                    hi = mid
                except Exception as exc:  # noqa: BLE001
                    if not _is_constraint_violation(exc):
                        raise
                    lo = mid + 1
            raised[dim] = lo
    new_bounds = {d: (raised[d], bounds[d][1]) for d in (2, 3)}
    guards = "; ".join(sorted({g.replace("L['x'].size()[2]", "H").replace("L['x'].size()[3]", "W")
                               for _, _, g in _GUARD.findall(message)})) or "see torch.export's message"
    if any(lo >= hi for lo, hi in new_bounds.values()):
        raise ExportError(f"torch.export specialised the input size (guards: {guards})")
    note = (f"lower bound of height/width raised from {bounds[2][0]}x{bounds[3][0]} to "
            f"{new_bounds[2][0]}x{new_bounds[3][0]}: torch.export guards that hold only from there ({guards})")
    return _export(module, example, new_bounds), new_bounds, note


# ---------------------------------------------------------------------------------------- lowering


def _op_name(target: Any) -> str:
    name = getattr(target, "__name__", None) or str(target)
    text = str(target)
    if "EdgeOpOverload" in text or "OpOverload" in text:
        m = re.search(r"(aten|dim_order_ops|quantized_decomposed)\.[\w.]+", text)
        if m:
            return m.group(0)
    return name


def program_op_counts(edge_program: Any) -> tuple[dict[str, int], int]:
    """({op: count} of the lowered graph, number of XNNPACK delegate calls)."""
    counts: collections.Counter[str] = collections.Counter()
    delegates = 0
    for node in edge_program.graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if name == "executorch_call_delegate":
            delegates += 1
            continue
        if name in ("getitem", "alloc") or "sym_size" in name or name.startswith("<built-in"):
            continue
        counts[name] += 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), delegates


def program_operators(manager: Any) -> list[str]:
    """The kernel names (``aten::op.overload``) the program's non-delegated instructions call."""
    ops = []
    for plan in manager.executorch_program.execution_plan:
        for op in plan.operators:
            ops.append(f"{op.name}.{op.overload}" if op.overload else op.name)
    return ops


def planned_memory_bytes(manager: Any) -> int:
    return int(sum(sum(plan.non_const_buffer_sizes) for plan in manager.executorch_program.execution_plan))


def _locate(module: nn.Module, example: torch.Tensor, ops: list[str]) -> dict[str, str]:
    return locate_ops(module, example, [o.replace("aten.", "aten::").split(".")[0] if o.startswith("aten.") else
                                        o.split(".")[0] for o in ops])


def _where(op: str, located: dict[str, str]) -> str:
    key = op.replace("aten.", "aten::").split(".")[0] if op.startswith("aten.") else op.split(".")[0]
    return f" in module {located[key]}" if key in located else ""


def lower_to_executorch(program: Any, module: nn.Module, example: torch.Tensor) -> tuple[Any, Any]:
    """(edge program manager, ExecuTorch program manager), XNNPACK-partitioned; ExportError naming an op
    that cannot be expressed."""
    to_edge_transform_and_lower, XnnpackPartitioner = import_executorch_exporter()
    try:
        with quiet():
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    except Exception as exc:  # noqa: BLE001 - SpecViolationError etc.
        text = str(exc)
        m = re.search(r"Operator (?:torch\._ops\.)?([\w.]+) is not in Core ATen opset", text)
        if m:
            op = m.group(1)
            located = _locate(module, example, [op])
            raise ExportError(f"ExecuTorch cannot express op {op}{_where(op, located)}: it is not in the Core ATen "
                              "opset that ExecuTorch programs are made of, and XNNPACK does not take it. Replace it "
                              "with supported ops, or export another format (--format onnx).") from exc
        first = text.strip().splitlines()[0][:400] if text.strip() else type(exc).__name__
        raise ExportError(f"ExecuTorch lowering failed: {first}") from exc
    try:
        with quiet():
            manager = edge.to_executorch()
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ExecuTorch program generation failed: {str(exc).strip().splitlines()[0][:400]}") from exc
    return edge, manager


def check_kernels(manager: Any, runtime: Any, module: nn.Module, example: torch.Tensor) -> list[str]:
    """The program's non-delegated kernels; an ExportError naming those the installed runtime lacks."""
    ops = program_operators(manager)
    try:
        registered = set(runtime.Runtime.get().operator_registry.operator_names)
    except Exception:  # noqa: BLE001 - an older runtime without the registry: the load decides
        return ops
    missing = sorted({op for op in ops if op not in registered})
    if missing:
        located = _locate(module, example, [m.replace("::", ".") for m in missing])
        parts = [f"{op}{_where(op.replace('::', '.'), located)}" for op in missing]
        raise ExportError(f"ExecuTorch cannot run op{'s' if len(missing) > 1 else ''} {', '.join(parts)}: XNNPACK does "
                          "not take it and the installed ExecuTorch runtime has no kernel for it. Replace it with "
                          "supported ops, or export another format (--format onnx).")
    return ops


class ProgramRunner:
    """An in-memory ExecuTorch program run on float32 1x3xHxW arrays (one image per call)."""

    def __init__(self, runtime: Any, data: bytes) -> None:
        with quiet():
            self.program = runtime.Runtime.get().load_program(data)
            self.method = self.program.load_method(METHOD)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        outs = [self.method.execute([torch.from_numpy(np.ascontiguousarray(img[None]))])[0] for img in x]
        return np.concatenate([o.detach().numpy().astype(np.float32, copy=True) for o in outs])


def export_executorch(model: nn.Module, path: str | Path, options: ExportOptions | None = None,
                      **kw: Any) -> MobileExportResult:
    """Export an edgesr SR model to an ExecuTorch program ``path`` (``.pte``, XNNPACK) + sidecar ``<name>.pte.json``.

    Uses from `options`: io ("float01" | "float255"), reparam*, min_shape / max_shape (the dynamic H/W
    bounds: memory is planned for the max), opt_shape (the static fallback), parity_sizes / parity_dir /
    max_abs_diff, threads (XNNPACK threads for the parity runs), force. `fp16` is refused. Raises
    UserInputError for bad options, MissingDependencyError without executorch, ExportError when the model
    cannot be exported or the program does not match PyTorch; nothing is written then.
    """
    options = options or ExportOptions()
    path = Path(path)
    if kw:
        raise UserInputError(f"unknown option(s) for the executorch format: {', '.join(sorted(kw))}.")
    if path.suffix.lower() != ".pte":
        raise UserInputError(f"the ExecuTorch artifact path must end in .pte, got {path}.")
    runtime = import_executorch_runtime()
    import_executorch_exporter()
    if not isinstance(model, nn.Module):
        raise UserInputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    if options.half:
        raise UserInputError("--fp16 is not supported for ExecuTorch export: an FP16 XNNPACK program measured "
                             "11 dB PSNR vs PyTorch on x86 with executorch 1.5.1. Export FP32 (drop --fp16).")
    min_size = max(2, int(getattr(model, "min_input_size", 1) or 1))
    lo, opt, hi, *sizes = check_mobile_options(options, min_size, "executorch", fp16_supported=False)
    side_path = sidecar_path_for(path)
    check_outputs([path, side_path], options.force)

    prepared: PreparedModel = prepare_model(model, options)
    side = min(max(64, lo[0], lo[1]), hi[0], hi[1])
    example = example_input(max(side, lo[0]), max(side, lo[1]), options.io)
    warn: list[str] = []
    bounds = {2: (max(2, lo[0]), hi[0]), 3: (max(2, lo[1]), hi[1])}
    dynamic = True
    try:
        program, bounds, note = export_dynamic(prepared.module, example, bounds)
    except Exception as exc:  # noqa: BLE001 - fall back to one static shape, and say why
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        log.warning("dynamic-shape export failed (%s); exporting a static %dx%d program", reason, *opt)
        dynamic = False
        example = example_input(opt[0], opt[1], options.io)
        try:
            program = _export(prepared.module, example, None)
        except Exception as exc2:  # noqa: BLE001
            raise ExportError(f"torch.export failed: {str(exc2).strip().splitlines()[0][:400]}") from exc2
        note = (f"static {opt[0]}x{opt[1]} program: the dynamic-shape export failed ({reason}); the program "
                "accepts only this input size (tile to it)")
        bounds = {2: (opt[0], opt[0]), 3: (opt[1], opt[1])}
        sizes = [opt]
        warn.append(note)
    if note and dynamic:
        warn.append(note)
    edge, manager = lower_to_executorch(program, prepared.module, example)
    kernels = check_kernels(manager, runtime, prepared.module, example)
    data = bytes(manager.buffer)
    op_counts, delegates = program_op_counts(manager.exported_program())

    previous = None
    if not _executorch_runners_active():  # resizing the shared pool under a loaded program would crash it
        with quiet():
            previous = set_threads(options.threads)
    run: ProgramRunner | None = None
    try:
        run = ProgramRunner(runtime, data)
        io_scale = np.float32(1.0 if options.io == "float01" else 255.0)
        eff_sizes = [s for s in sizes if bounds[2][0] <= s[0] <= bounds[2][1] and bounds[3][0] <= s[1] <= bounds[3][1]]
        if not eff_sizes:
            raise ExportError(f"no parity size fits the exported range {bounds[2][0]}x{bounds[3][0]} .. "
                              f"{bounds[2][1]}x{bounds[3][1]}; pass parity sizes inside it.")
        if len(eff_sizes) < len(sizes):
            warn.append(f"parity sizes below the raised lower bound were skipped: "
                        f"{', '.join(f'{h}x{w}' for h, w in sizes if (h, w) not in eff_sizes)}")
        entries = parity_entries(prepared.reference, eff_sizes, options, "ExecuTorch",
                                 lambda x01: run(x01 * io_scale) / io_scale)
    finally:
        run = None  # free the loaded program before the pool is resized back
        if previous is not None:
            with quiet():
                set_threads(previous)

    import executorch

    version = str(getattr(executorch, "__version__", None) or _dist_version("executorch"))
    lo_hw, hi_hw = (bounds[2][0], bounds[3][0]), (bounds[2][1], bounds[3][1])
    opt_hw = (min(max(opt[0], lo_hw[0]), hi_hw[0]), min(max(opt[1], lo_hw[1]), hi_hw[1]))
    inputs_spec, outputs_spec = tensor_specs(options.io, "input", "output", dynamic=dynamic, static_hw=opt if not
                                             dynamic else None, scale=prepared.scale)
    planned = planned_memory_bytes(manager)
    block = {
        "method": METHOD,
        "backend": "XnnpackBackend",
        "dynamic_shape": dynamic,
        "height_range": list(bounds[2]),
        "width_range": list(bounds[3]),
        "planned_memory_bytes": planned,
        "delegate_calls": delegates,
        "portable_ops": op_counts,
        "kernels": sorted(set(kernels)),
        "note": note,
    }
    prepared.min_size = max(lo_hw)
    sidecar = build_sidecar(
        model, prepared, options,
        artifact=path.name, fmt="executorch", inputs=inputs_spec, outputs=outputs_spec, shapes=(lo_hw, opt_hw, hi_hw),
        exporter="torch.export+xnnpack", note=note,
        parity=parity_info(entries, f"ExecuTorch {version} runtime (XNNPACK), {options.threads} threads"),
        graph=GraphStats(nodes=delegates + sum(op_counts.values()),
                         op_counts={"xnnpack_delegate": delegates, **op_counts}, initializers=0,
                         initializer_bytes=0),
        versions=base_versions(executorch=version), precision="fp32", min_size=max(lo_hw))
    sidecar.blocks["executorch"] = block
    sidecar.write({path: data}, force=options.force)
    log.info("wrote %s and %s", path, side_path)
    if planned > 512 << 20:
        warn.append(f"the program plans {planned / (1 << 20):.0f} MiB of activation memory (for inputs up to "
                    f"{hi_hw[0]}x{hi_hw[1]}), allocated when it is loaded: for phones export with a smaller "
                    "--max-shape and tile.")
    return MobileExportResult(path=path, sidecar_path=side_path, sidecar=sidecar,
                              reparam_report=prepared.reparam_report, warnings=warn, files=[path, side_path],
                              details=block)


def _executorch_runners_active() -> bool:
    import sys

    module = sys.modules.get("edgesr.runtimes.executorch_runner")
    return bool(module is not None and any(r.is_active for r in getattr(module, "_ACTIVE", ())))


def _dist_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


__all__ = [
    "EXECUTORCH_EXTRA",
    "export_executorch",
    "import_executorch_runtime",
    "lower_bound_from_guards",
    "set_threads",
]
