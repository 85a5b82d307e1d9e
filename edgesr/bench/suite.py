"""Benchmark suites: a YAML file listing models/artifacts, backends and settings.

    title: CPU suite
    settings: {sizes: [256x256], threads: [2], psnr_dataset: Set5, min_seconds: 3}
    entries:
      - model: rlfn_x4                      # registered name or pretrained variant
        stage: reparameterized              # original | reparameterized | pruned (with `pruned: DIR`)
        backends: [torch, torch:channels_last, onnxruntime, openvino:bf16]
      - artifact: exports/rlfn_x4.onnx      # an exported file
        backend: onnxruntime

Relative dataset names (Set5, DIV2K_test_LR_x4) resolve under shared/datasets.
"""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from edgesr.bench.harness import BenchConfig
from edgesr.bench.targets import BackendSpec, BenchTarget, target_for_artifact, targets_for_model
from edgesr.data.datasets import resolve_dataset
from edgesr.errors import UserInputError
from edgesr.utils.shapes import parse_hw


def parse_size(text: str | int | tuple | list) -> tuple[int, int]:
    """'256', '256x256', '360x640' (HxW), 256 or (h, w)."""
    return parse_hw(text, "size")


def prepare_model(name: str | None, scale: int | None = None, weights: str | None = None, stage: str = "original",
                  pruned: Path | None = None):
    """The model at a pipeline stage: original, reparameterized (folded) or pruned (from a saved dir)."""
    from edgesr.models import create_model

    if stage == "pruned":
        if pruned is None:
            raise UserInputError("stage 'pruned' needs the folder written by `edgesr prune` (--pruned DIR).")
        from edgesr.prune import load_pruned

        model = load_pruned(pruned)
    elif stage in ("original", "reparameterized") and name is None:
        if not weights:
            raise UserInputError("give a model name, or weights to detect the model from.")
        from edgesr.models import load_model

        model = load_model(weights, scale=scale)
    elif stage in ("original", "reparameterized"):
        model = create_model(name, scale=scale, pretrained=weights if weights else True)
    else:
        raise UserInputError(f"unknown stage {stage!r}; use original, reparameterized or pruned.")
    if stage == "reparameterized":
        from edgesr.transforms import reparameterize

        reparameterize(model)
    model.edgesr_stage = stage
    return model.eval()


def load_suite(path: Path, work_dir: Path) -> tuple[str, BenchConfig, list[BenchTarget]]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserInputError(f"cannot read suite {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise UserInputError(f"suite {path} needs a list under 'entries'.")
    settings: dict[str, Any] = dict(data.get("settings") or {})
    known = {f.name for f in fields(BenchConfig)}
    unknown = set(settings) - known
    if unknown:
        raise UserInputError(f"unknown suite settings {sorted(unknown)}; known: {sorted(known)}.")
    if "sizes" in settings:
        settings["sizes"] = [parse_size(s) for s in settings["sizes"]]
    for key in ("psnr_dataset", "images"):
        if key in settings:
            settings[key] = resolve_dataset(settings[key])
    if "complexity_size" in settings:
        settings["complexity_size"] = parse_size(settings["complexity_size"])
    config = replace(BenchConfig(), **settings)
    targets: list[BenchTarget] = []
    for i, entry in enumerate(data["entries"]):
        if not isinstance(entry, dict):
            raise UserInputError(f"suite entry {i} must be a mapping.")
        if "model" in entry:
            specs = [BackendSpec.parse(b) for b in entry.get("backends", ["torch"])]
            model = prepare_model(entry["model"], entry.get("scale"), entry.get("weights"),
                                  entry.get("stage", "original"), Path(entry["pruned"]) if entry.get("pruned") else None)
            targets += targets_for_model(model, specs, work_dir, stage=entry.get("stage", "original"),
                                         label=entry.get("label"))
        elif "artifact" in entry:
            targets.append(target_for_artifact(Path(entry["artifact"]), entry.get("backend")))
        else:
            raise UserInputError(f"suite entry {i} needs 'model' or 'artifact'.")
    return str(data.get("title", Path(path).stem)), config, targets
