"""GPU suite: the NTIRE efficient-SR runtime protocol on one CUDA GPU, for every path edgesr offers there.

Paths: PyTorch fp32 / fp16 / bf16, fp16 channels_last, fp16 torch.compile, fp16 CUDA graphs (one graph per
input shape), and ONNX Runtime's CUDA provider when onnxruntime-gpu is installed; models: RLFN x4,
RLFN-NTIRE x4 and whichever of SPAN / EFDN x4 the model zoo registers, plus a pruned model folder if one is
given. For each (model, path): per-image runtime of the 100 DIV2K LR x4 images with CUDA events after a
warm-up, mean of 5 runs over the set (as the NTIRE challenges report it), `torch.cuda.max_memory_allocated`,
and Set5 x4 PSNR (Y channel, 4-pixel border) of the outputs of that path. Results: gpu_suite_<gpu>.md/json.

    # 1. where ../shared is: gather what the GPU run needs into a git-ignored folder (< 64 MiB):
    #    weights, DIV2K LR + Set5 as compressed numpy arrays, fp32 ONNX exports for ONNX Runtime
    python3 benchmarks/gpu_suite.py --prepare gpu_data [--pruned runs/prune/rlfn_p50]
    # 2. on the GPU machine (torch with CUDA; numpy; edgesr from this checkout):
    PYTHONPATH=$PWD python3 benchmarks/gpu_suite.py --data gpu_data
    # the same code on CPU at tiny sizes, in seconds (the test suite runs this):
    PYTHONPATH=$PWD python3 benchmarks/gpu_suite.py --dry-run --out /tmp/gpu_dry

The run is sized for <= 8 minutes on one GPU: a time budget (--budget-s) skips the remaining paths, named
in the results, rather than overrun.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BASE_MODELS = ("rlfn_x4", "rlfn_ntire_x4")
ZOO_FAMILIES = ("span", "efdn")  # every x4 variant of these the zoo registers joins the run
NTIRE_FIGURES = {"rlfn_ntire_x4": "27.11 ms in the NTIRE 2022 ESR report, 13.54 ms on an RTX 3090 in NTIRE 2024"}
MAX_DATA_BYTES = 64 << 20


@dataclass(frozen=True)
class Path_:
    """One way of running a model."""

    name: str
    dtype: str = "fp32"  # fp32 | fp16 | bf16
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    backend: str = "torch"  # torch | onnxruntime


PATHS = (Path_("torch fp32"), Path_("torch fp16", "fp16"), Path_("torch bf16", "bf16"),
         Path_("torch fp16 channels_last", "fp16", channels_last=True),
         Path_("torch fp16 compile", "fp16", compile=True),
         Path_("torch fp16 CUDA graphs", "fp16", cuda_graphs=True),
         Path_("onnxruntime CUDA fp32", backend="onnxruntime"))


@dataclass
class Result:
    model: str
    path: str
    status: str = "ok"  # ok | skipped: <why> | failed: <why>
    runtime_ms: float | None = None  # mean over runs of the per-image mean
    run_means_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    max_memory_mb: float | None = None
    set5_psnr: float | None = None
    setup_s: float | None = None


# ---- data -----------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    from edgesr.utils.hashing import sha256_file as digest

    return digest(path)


def available_models(names: list[str] | None = None) -> list[str]:
    """RLFN x4, RLFN-NTIRE x4 and the SPAN / EFDN x4 variants the zoo registers (or `names`, checked)."""
    from edgesr.models.registry import list_pretrained

    cfgs = list_pretrained()
    known = {c.name for c in cfgs}
    wanted = names or [n for n in BASE_MODELS if n in known] + sorted(
        c.name for c in cfgs if c.scale == 4 and c.model.split("_")[0] in ZOO_FAMILIES)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"Error: no pretrained model named {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return wanted


def _export_onnx(model: Any, path: Path, dry_run: bool) -> None:
    """edgesr's verified fp32 export; the dry run (random weights) takes torch's plain exporter, in seconds."""
    import torch

    if dry_run:
        torch.onnx.export(model, (torch.rand(1, 3, 16, 16),), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "H", 3: "W"}},
                          dynamo=False)
        return
    from edgesr.export import ExportOptions, export_onnx

    export_onnx(model, path, ExportOptions(parity_sizes=((24, 20),), opt_shape=(64, 64), max_shape=(1024, 1024),
                                           force=True))


def prepare(out: Path, models: list[str], pruned: Path | None = None, *, dry_run: bool = False) -> Path:
    """Write the data folder: weights/, images.npz (DIV2K LR + Set5 LR/HR x4), onnx/, pruned/, manifest.json.
    Dry run: random-init models and a few synthetic images, same layout."""
    import torch

    from edgesr.models import create_model
    from edgesr.models.registry import get_pretrained_cfg

    out.mkdir(parents=True, exist_ok=True)
    (out / "weights").mkdir(exist_ok=True)
    (out / "onnx").mkdir(exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    if dry_run:
        rng = np.random.default_rng(0)
        for i, (h, w) in enumerate([(16, 20), (20, 16), (16, 20)]):  # >= 15: ESA's minimum input
            arrays[f"div2k/{i:04d}"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        hr = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
        arrays["set5_hr/tiny"], arrays["set5_lr/tiny"] = hr, hr[::4, ::4].copy()
    else:
        from edgesr.data import read_image
        from edgesr.paths import shared_dir

        data = shared_dir() / "datasets"
        for p in sorted((data / "DIV2K_test_LR_x4").glob("*.png")):
            arrays[f"div2k/{p.stem}"] = read_image(p)
        for p in sorted((data / "Set5" / "HR").glob("*.png")):
            arrays[f"set5_hr/{p.stem}"] = read_image(p)
            arrays[f"set5_lr/{p.stem}"] = read_image(data / "Set5" / "LR_bicubic" / "X4" / p.name)
    np.savez_compressed(out / "images.npz", **{k.replace("/", "__"): v for k, v in arrays.items()})
    for name in models:
        model = create_model(name, pretrained=not dry_run).eval()
        if not dry_run:
            from edgesr.paths import weight_search_dirs

            filename = get_pretrained_cfg(name).filename
            src = next(d / filename for d in weight_search_dirs() if (d / filename).is_file())
            shutil.copy2(src, out / "weights" / filename)
        with torch.no_grad():
            _export_onnx(model, out / "onnx" / f"{name}.onnx", dry_run)
    if pruned is not None:
        shutil.copytree(pruned, out / "pruned" / Path(pruned).name, dirs_exist_ok=True)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    total = sum(p.stat().st_size for p in files)
    manifest = {"models": models, "pruned": Path(pruned).name if pruned else None, "dry_run": dry_run,
                "bytes": total, "files": {str(p.relative_to(out)): sha256_file(p) for p in files}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    if total > MAX_DATA_BYTES:
        raise SystemExit(f"Error: {out} holds {total / 2**20:.1f} MiB, over the 64 MiB that can travel")
    print(f"prepared {out}: {len(files)} files, {total / 2**20:.1f} MiB ({', '.join(models)})")
    return out


def load_data(folder: Path) -> tuple[dict[str, Any], list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """(manifest, DIV2K LR images, Set5 (LR, HR) pairs), files checked against the manifest."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for rel, digest in manifest["files"].items():
        if sha256_file(folder / rel) != digest:
            raise SystemExit(f"Error: {folder / rel} does not match its sha256 in the manifest; prepare again")
    with np.load(folder / "images.npz") as z:
        arrays = {k.replace("__", "/"): z[k] for k in z.files}
    div2k = [arrays[k] for k in sorted(arrays) if k.startswith("div2k/")]
    set5 = [(arrays[k.replace("set5_hr/", "set5_lr/")], arrays[k]) for k in sorted(arrays) if k.startswith("set5_hr/")]
    return manifest, div2k, set5


# ---- timing ---------------------------------------------------------------------------------------------
class Clock:
    """Per-call milliseconds: CUDA events on a GPU (the NTIRE scripts' method), perf_counter on CPU."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def time(self, fn: Callable[[], Any]) -> float:
        import torch

        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000.0


def _to_uint8(y: Any) -> np.ndarray:
    return (y.float().clamp(0, 1) * 255.0).round().byte()[0].permute(1, 2, 0).cpu().numpy()


def torch_path(model: Any, path: Path_, device: Any, dry_run: bool) -> Callable[[Any], Any]:
    """A function x (float32 NCHW 0..1 on `device`) -> y, for this path; graphs are captured per shape."""
    import torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[path.dtype]
    model = model.to(device=device, dtype=dtype)
    fmt = torch.channels_last if path.channels_last else torch.contiguous_format
    if path.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if path.compile:  # dynamic shapes: one compilation for the 26 DIV2K sizes; the dry run only traces
        model = torch.compile(model, dynamic=True, backend="eager" if dry_run else "inductor")
    if not path.cuda_graphs:
        def run(x: Any) -> Any:
            with torch.inference_mode():
                return model(x.to(dtype=dtype, memory_format=fmt))
        return run
    if device.type != "cuda":
        raise RuntimeError("skipped: CUDA graphs need a CUDA device")
    graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
    pool = torch.cuda.graph_pool_handle()

    def run_graph(x: Any) -> Any:
        key = tuple(x.shape)
        if key not in graphs:
            static_in = x.to(dtype=dtype).clone()
            with torch.inference_mode():
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(2):
                        model(static_in)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    static_out = model(static_in)
            graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out
    return run_graph


def ort_path(onnx_path: Path, device: Any) -> Callable[[Any], Any]:
    """ONNX Runtime on CUDA (CPU in the dry run), inputs and outputs bound to torch tensors on `device`."""
    import onnxruntime as ort
    import torch

    cuda = device.type == "cuda"
    provider = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise RuntimeError(f"skipped: onnxruntime {ort.__version__} has no {provider} (install onnxruntime-gpu)")
    session = ort.InferenceSession(str(onnx_path), providers=[provider])
    if session.get_providers()[0] != provider:
        raise RuntimeError(f"skipped: {provider} did not load ({session.get_providers()})")
    name_in, name_out = session.get_inputs()[0].name, session.get_outputs()[0].name
    scale = int(onnx_path.stem.rsplit("_x", 1)[-1]) if "_x" in onnx_path.stem else 4

    def run(x: Any) -> Any:
        x = x.contiguous()
        y = torch.empty((1, 3, x.shape[2] * scale, x.shape[3] * scale), dtype=torch.float32, device=device)
        binding = session.io_binding()
        kind, index = ("cuda", device.index or 0) if cuda else ("cpu", 0)
        binding.bind_input(name_in, kind, index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(name_out, kind, index, np.float32, tuple(y.shape), y.data_ptr())
        session.run_with_iobinding(binding)
        return y
    return run


def measure(model_name: str, model: Any, path: Path_, data: Path, div2k: list[np.ndarray],
            set5: list[tuple[np.ndarray, np.ndarray]], device: Any, runs: int, dry_run: bool) -> Result:
    import torch

    from edgesr.metrics.psnr import psnr

    result = Result(model_name, path.name)
    cuda = device.type == "cuda"
    started = time.perf_counter()
    try:
        if path.backend == "onnxruntime":
            fn = ort_path(data / "onnx" / f"{model_name}.onnx", device)
        else:
            fn = torch_path(model, path, device, dry_run)
    except (RuntimeError, ImportError) as exc:
        result.status = str(exc) if str(exc).startswith("skipped") else f"skipped: {exc}"
        return result
    inputs = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)[None])).to(device).float().div_(255.0)
              for im in div2k]
    clock = Clock(cuda)
    for x in {tuple(x.shape): x for x in inputs}.values():  # warm-up: compile / capture every shape, then 10 more
        fn(x)
    for _ in range(2 if dry_run else 10):
        fn(inputs[0])
    if cuda:
        torch.cuda.synchronize()
    result.setup_s = round(time.perf_counter() - started, 2)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    per_image: list[float] = []
    for _ in range(runs):
        times = [clock.time(lambda x=x: fn(x)) for x in inputs]
        result.run_means_ms.append(round(statistics.fmean(times), 4))
        per_image.extend(times)
    result.runtime_ms = round(statistics.fmean(result.run_means_ms), 4)
    result.median_ms = round(statistics.median(per_image), 4)
    if cuda:
        result.max_memory_mb = round(torch.cuda.max_memory_allocated(device) / 2**20, 2)
    scores = []
    for lr, hr in set5:
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)[None])).to(device).float().div_(255.0)
        scores.append(psnr(_to_uint8(fn(x)), hr, crop_border=4))
    result.set5_psnr = round(statistics.fmean(scores), 4)
    return result


# ---- the run --------------------------------------------------------------------------------------------
def environment(device: Any) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                           "device": "cpu (dry run)" if device.type != "cuda" else torch.cuda.get_device_name(device)}
    try:
        import onnxruntime as ort

        env["onnxruntime"] = ort.__version__
        env["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        env["onnxruntime"] = None
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(compute_capability=f"{p.major}.{p.minor}", memory_gb=round(p.total_memory / 2**30, 1))
        from edgesr.utils.nvidia import driver_version

        env["driver"] = driver_version()
    return env


def markdown(results: list[Result], env: dict[str, Any], config: dict[str, Any]) -> str:
    lines = ["# GPU suite: NTIRE runtime protocol per path", "",
             f"{env['device']}; torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env['cudnn']}); onnxruntime "
             f"{env.get('onnxruntime')}; driver {env.get('driver')}.",
             f"{config['images']} DIV2K LR x4 images, per-image CUDA-event time after warm-up, mean of "
             f"{config['runs']} runs; peak memory = torch.cuda.max_memory_allocated during the runs; Set5 x4 PSNR "
             "(Y, 4-px border) through the same path.", "",
             "| model | path | runtime ms (mean of runs) | median ms | max memory MB | Set5 PSNR dB | setup s | status |",
             "|---|---|---|---|---|---|---|---|"]

    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for r in results:
        lines.append(f"| {r.model} | {r.path} | {f(r.runtime_ms, '.3f')} | {f(r.median_ms, '.3f')} | "
                     f"{f(r.max_memory_mb, '.1f')} | {f(r.set5_psnr, '.4f')} | {f(r.setup_s, '.1f')} | {r.status} |")
    for model, text in NTIRE_FIGURES.items():
        best = min((r for r in results if r.model == model and r.runtime_ms), key=lambda r: r.runtime_ms, default=None)
        if best is not None:
            lines += ["", f"{model}: fastest path here {best.path}, {best.runtime_ms:.3f} ms/image. Challenge "
                          f"figures: {text}."]
    return "\n".join(lines) + "\n"


def run_suite(data: Path, out: Path, *, runs: int, budget_s: float, paths: list[str] | None,
              models: list[str] | None, dry_run: bool) -> list[Result]:
    import torch

    from edgesr.models import create_model

    os.environ["EDGESR_OFFLINE"] = "1"
    os.environ["EDGESR_WEIGHTS_DIR"] = str(data / "weights")
    manifest, div2k, set5 = load_data(data)
    device = torch.device("cuda" if torch.cuda.is_available() and not dry_run else "cpu")
    if not dry_run and device.type != "cuda":
        raise SystemExit("Error: no CUDA device; run with --dry-run for the CPU rehearsal")
    chosen = [p for p in PATHS if paths is None or p.name in paths]
    names = models or manifest["models"]
    entries: list[tuple[str, Callable[[], Any]]] = [
        (n, lambda n=n: create_model(n, pretrained=not manifest["dry_run"]).eval()) for n in names]
    if manifest.get("pruned"):
        from edgesr.prune.slicing import load_pruned

        entries.append((f"pruned:{manifest['pruned']}", lambda: load_pruned(data / "pruned" / manifest["pruned"])))
    started = time.perf_counter()
    results: list[Result] = []
    for name, build in entries:
        for path in chosen:
            if time.perf_counter() - started > budget_s:
                results.append(Result(name, path.name, status=f"skipped: time budget {budget_s:.0f} s spent"))
                continue
            if path.backend == "onnxruntime" and not (data / "onnx" / f"{name}.onnx").is_file():
                results.append(Result(name, path.name, status="skipped: no ONNX export in the data folder"))
                continue
            try:
                r = measure(name, build(), path, data, div2k, set5, device, runs, dry_run)
            except Exception as exc:  # noqa: BLE001 - one failing path must not lose the others' numbers
                r = Result(name, path.name, status=f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            results.append(r)
            print(f"{name:18s} {path.name:26s} {r.status:8s} {r.runtime_ms} ms  {r.max_memory_mb} MB  "
                  f"PSNR {r.set5_psnr}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    env = environment(device)
    config = {"runs": runs, "images": len(div2k), "budget_s": budget_s, "dry_run": dry_run,
              "seconds": round(time.perf_counter() - started, 1), "data_manifest_bytes": manifest["bytes"]}
    slug = "dry_run" if dry_run else "".join(c if c.isalnum() else "_" for c in env["device"].lower()).strip("_")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gpu_suite_{slug}.json").write_text(json.dumps({"env": env, "config": config,
                                                            "results": [asdict(r) for r in results]}, indent=1)
                                                 + "\n", encoding="utf-8")
    (out / f"gpu_suite_{slug}.md").write_text(markdown(results, env, config), encoding="utf-8")
    print(f"wrote {out / f'gpu_suite_{slug}.md'} and .json in {config['seconds']} s")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", type=Path, metavar="DIR", help="write the data folder for the GPU run and exit")
    ap.add_argument("--data", type=Path, metavar="DIR", help="the prepared data folder (GPU run)")
    ap.add_argument("--dry-run", action="store_true", help="the same code on CPU, random weights, tiny images")
    ap.add_argument("--models", nargs="+", help="pretrained x4 variants (default: RLFN x4, RLFN-NTIRE x4 and the "
                                                "SPAN / EFDN x4 variants the zoo registers)")
    ap.add_argument("--pruned", type=Path, help="a pruned model folder (config.json + weights.pth) to include")
    ap.add_argument("--paths", nargs="+", choices=[p.name for p in PATHS], help="paths to run (default: all)")
    ap.add_argument("--runs", type=int, default=5, help="passes over the images (default: %(default)s)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="time budget; later paths are skipped")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.prepare:
        prepare(args.prepare, available_models(args.models), args.pruned)
        return 0
    if args.dry_run:
        import torch

        torch.set_num_threads(1)  # a rehearsal: no thread contention on a shared CPU
        with tempfile.TemporaryDirectory() as tmp:
            data = prepare(Path(tmp) / "data", args.models or ["rlfn_ntire_x4"], args.pruned, dry_run=True)
            run_suite(data, args.out, runs=min(args.runs, 2), budget_s=args.budget_s, paths=args.paths,
                      models=None, dry_run=True)
        return 0
    if not args.data:
        ap.error("give --data DIR (made by --prepare DIR), --prepare DIR or --dry-run")
    results = run_suite(args.data, args.out, runs=args.runs, budget_s=args.budget_s, paths=args.paths,
                        models=args.models, dry_run=False)
    return 0 if any(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
