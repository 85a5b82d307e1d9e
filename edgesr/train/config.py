"""`TrainConfig`: everything a training run needs, as one serializable dataclass."""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgesr.errors import UserInputError
from edgesr.train.data import CACHE_MODES
from edgesr.train.losses import PIXEL_LOSSES

SCHEDULES = ("step", "cosine", "constant")
#: Fields a resumed run may change; every other field must equal the checkpoint's.
RESUMABLE_CHANGES = frozenset({
    "output_dir", "resume", "force", "progress", "workers", "device", "tensorboard", "log_every",
    "save_every", "val_every", "val_dir", "val_limit", "cache", "cache_gb", "hr_dir", "lr_dir",
})
STAGE_FIELDS = ("steps", "lr", "loss", "contrastive", "distill", "schedule")


def _field(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING,
           flags: tuple[str, ...] = (), choices: tuple[str, ...] = ()) -> Any:
    """A TrainConfig field with its user-facing description. `flags` overrides the derived CLI spelling
    (``--field-name``); the CLI and the run-file reader are built from these fields, so a new field is
    reachable from both without being declared again."""
    meta = {"help": help, "flags": flags, "choices": choices}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """A training run. `None` means "the default described here".

    Every field carries its own description (``dataclasses.fields(TrainConfig)[i].metadata["help"]``);
    `edgesr train --help` lists them, and a run file (`from_file`, ``edgesr train --config run.yaml``)
    uses the field names as keys. Groups:

    Model and data: model, scale, model_cfg, hr_dir, lr_dir, patch, batch, limit, augment, cache, cache_gb,
        workers. `batch` is the *global* batch, split over the DDP processes.
    Recipe: steps, stages, stage_overrides, loss, contrastive, contrastive_layer_weights, teacher,
        teacher_weights, distill, lr, betas, eps, weight_decay (Adam; the papers' 5e-4 RLFN / (0.9, 0.999) /
        1e-8 / 0), schedule, lr_step, lr_gamma, min_lr, grad_clip, ema, init, init_cross_scale, seed.
    Run: output_dir, val_dir, val_every, val_limit, save_every, log_every, resume, force, fold, device,
        progress, tensorboard.
    """

    model: str = _field(help="Registered model or pretrained variant (a variant, e.g. rlfn_x4, implies its scale "
                             "and, unless init is given, starts from its official weights).")
    hr_dir: str | Path = _field(help="Folder of HR training images.", flags=("--hr",))
    output_dir: str | Path = _field(help="Run folder.", flags=("--output", "-o"))
    scale: int | None = _field(None, "Upscaling factor (default: the variant's, else 4).", flags=("--scale", "-s"))
    lr_dir: str | Path | None = _field(None, "Matching LR images (default: MATLAB bicubic of the HR, computed once "
                                             "per image).")
    model_cfg: dict[str, Any] = _field(factory=dict, help="Architecture hyper-parameters passed to the builder, "
                                                          "e.g. feature_channels=32.")
    patch: int = _field(64, "LR patch size (HR patch = patch x scale).")
    batch: int = _field(16, "Global batch (split over torchrun processes).")
    limit: int | None = _field(None, "Use only the first N HR images.")
    augment: bool = _field(True, "Random flips/rotations.")
    cache: str = _field("auto", "Decode the training images once into RAM (auto: when they fit in cache_gb).",
                        choices=CACHE_MODES)
    cache_gb: float = _field(8.0, "RAM budget (GiB) of cache=auto.")
    workers: int | None = _field(None, "DataLoader workers per process (default: 0 on CPU, <= 8 on CUDA).")
    steps: int = _field(1000, "Optimizer steps per stage.")
    stages: int = _field(1, "RLFN warm-start stages: each starts from the previous one's weights (EMA weights if "
                            "ema) with a fresh optimizer and LR schedule.", flags=("--warm-start-stages",))
    stage_overrides: list[dict[str, Any]] = _field(
        factory=list, help=f"Per-stage changes, a list of mappings with keys among {', '.join(STAGE_FIELDS)} "
                           "(RLFN's last stage: [{}, {}, {loss: mse, lr: 2.0e-5}]).")
    loss: str = _field("l1", "Pixel loss.", choices=PIXEL_LOSSES)
    contrastive: float = _field(0.0, "Weight of RLFN's contrastive loss (0: off; 0.1 suggested).")
    contrastive_layer_weights: tuple[float, ...] = _field((1.0, 1.0), "Weights of the contrastive loss's two "
                                                                      "feature layers.")
    teacher: str | None = _field(None, "Teacher for L1 distillation (e.g. rlfn_x4).")
    teacher_weights: str | None = _field(None, "Teacher weights, file or pretrained name (default: official).")
    distill: float = _field(0.0, "Weight of the distillation loss.")
    lr: float = _field(5e-4, "Adam learning rate.")
    betas: tuple[float, float] = _field((0.9, 0.999), "Adam betas.")
    eps: float = _field(1e-8, "Adam epsilon.")
    weight_decay: float = _field(0.0, "Adam weight decay.")
    schedule: str = _field("step", "step: x lr_gamma every lr_step steps; cosine: anneal to min_lr; constant.",
                           choices=SCHEDULES)
    lr_step: int | None = _field(None, "Steps between LR decays of the step schedule (default steps/5: RLFN's "
                                       "\"halved every 2e5 of 1e6\").")
    lr_gamma: float = _field(0.5, "LR factor of each step-schedule decay.")
    min_lr: float = _field(1e-7, "Final LR of the cosine schedule.")
    grad_clip: float | None = _field(None, "Clip the gradient norm to this value.")
    ema: float | None = _field(None, "EMA decay of the weights (e.g. 0.999); off by default.")
    init: str | None = _field(None, "Initial weights: checkpoint file or pretrained name.")
    init_cross_scale: bool = _field(False, "Allow init weights of another scale: load all but the upsampler "
                                           "(EDSR's x2 -> x4 init).")
    seed: int = _field(0, "Seeds the model init, the patch sampling and the contrastive extractor.")
    val_dir: str | Path | None = _field(None, "Validation dataset folder (HR/ [+ LR_bicubic/X{s}/] or HR images): "
                                              "Y-PSNR, crop = scale.", flags=("--val",))
    val_every: int | None = _field(None, "Validate every K steps (default ~10x per stage; 0: at stage ends).")
    val_limit: int | None = _field(None, "Validate on the first N images only.")
    save_every: int | None = _field(None, "Checkpoint every K steps (default ~10x per stage) and at stage ends.")
    log_every: int = _field(10, "Write a train log line every K steps.")
    resume: bool = _field(False, "Continue from output_dir/checkpoints/last.pt (a new run if none yet).")
    force: bool = _field(False, "Clear a previous run's files first.", flags=("--force/--no-force", "-f"))
    fold: bool = _field(True, "Re-parameterize RepConv blocks at the end.")
    device: str = _field("auto", "auto, cpu, cuda or cuda:N.")
    progress: bool = _field(True, "Progress bar.", flags=("--progress/--quiet", " /-q"))
    tensorboard: bool | None = _field(None, "TensorBoard events (default: if installed).")

    def __post_init__(self) -> None:
        self.hr_dir = Path(self.hr_dir)
        self.output_dir = Path(self.output_dir)
        self.lr_dir = None if self.lr_dir is None else Path(self.lr_dir)
        self.val_dir = None if self.val_dir is None else Path(self.val_dir)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.contrastive_layer_weights = tuple(float(w) for w in self.contrastive_layer_weights)
        self.model_cfg = dict(self.model_cfg)
        self.stage_overrides = [dict(o) for o in self.stage_overrides]

    # --------------------------------------------------------------------------------------- checking
    def validate(self) -> None:
        """Raise UserInputError for any value that cannot work, naming the option."""
        def positive_int(name: str, value: Any, allow_none: bool = False, allow_zero: bool = False) -> None:
            if value is None and allow_none:
                return
            ok = isinstance(value, int) and not isinstance(value, bool) and (value > 0 or allow_zero and value == 0)
            if not ok:
                raise UserInputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} integer, "
                                     f"got {value!r}.")

        for name in ("patch", "batch", "steps", "stages", "log_every"):
            positive_int(name, getattr(self, name))
        positive_int("limit", self.limit, allow_none=True)
        positive_int("lr_step", self.lr_step, allow_none=True)
        positive_int("val_every", self.val_every, allow_none=True, allow_zero=True)
        positive_int("save_every", self.save_every, allow_none=True)
        positive_int("val_limit", self.val_limit, allow_none=True)
        if self.workers is not None:
            positive_int("workers", self.workers, allow_zero=True)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise UserInputError(f"lr must be a positive number, got {self.lr!r}.")
        if self.schedule not in SCHEDULES:
            raise UserInputError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if self.loss.lower() not in PIXEL_LOSSES:
            raise UserInputError(f"loss must be one of {', '.join(PIXEL_LOSSES)}, got {self.loss!r}.")
        if self.contrastive < 0 or self.distill < 0:
            raise UserInputError("--contrastive and --distill weights must be >= 0.")
        if self.distill > 0 and not self.teacher:
            raise UserInputError("--distill needs --teacher MODEL.")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UserInputError(f"--ema must be a decay in (0, 1) such as 0.999, got {self.ema!r}.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UserInputError(f"grad_clip must be > 0, got {self.grad_clip!r}.")
        if not 0 < self.lr_gamma <= 1:
            raise UserInputError(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}.")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserInputError(f"betas must be two numbers in [0, 1), got {self.betas!r}.")
        if len(self.stage_overrides) > self.stages:
            raise UserInputError(f"{len(self.stage_overrides)} stage overrides for {self.stages} stage(s).")
        for i, override in enumerate(self.stage_overrides):
            unknown = set(override) - set(STAGE_FIELDS)
            if unknown:
                raise UserInputError(f"stage {i + 1} override has unknown keys {sorted(unknown)}; "
                                     f"allowed: {', '.join(STAGE_FIELDS)}.")
            merged = dataclasses.replace(self, stage_overrides=[], stages=1, **override)
            merged.validate()

    # ------------------------------------------------------------------------------------------ stages
    def stage(self, index: int) -> "TrainConfig":
        """This config with stage `index`'s (0-based) overrides applied."""
        override = self.stage_overrides[index] if index < len(self.stage_overrides) else {}
        return dataclasses.replace(self, **override) if override else self

    def stage_steps(self) -> list[int]:
        return [self.stage(i).steps for i in range(self.stages)]

    @property
    def total_steps(self) -> int:
        return sum(self.stage_steps())

    # ---------------------------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """A run file (`read_run_file`) with `overrides` (field name -> value) applied on top."""
        values = read_run_file(path)
        values.update(overrides)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise UserInputError(f"{path} does not set {', '.join(missing)}.")
        return cls(**values)


# ---------------------------------------------------------------------------------------- run files
def field_kind(name: str) -> tuple[str, bool]:
    """(kind, optional) of a TrainConfig field: kind is one of bool int float str path tuple dict list.

    The CLI derives its options from this and the run-file reader its checks, so both follow the
    annotations of the dataclass."""
    hint = _HINTS[name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    optional = type(None) in args
    args = tuple(a for a in args if a is not type(None))
    if Path in args:
        return "path", optional
    base = typing.get_origin(args[0]) or args[0]
    return {bool: "bool", int: "int", float: "float", str: "str", tuple: "tuple", dict: "dict",
            list: "list"}[base], optional


_KIND_TEXT = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "text",
              "path": "a path", "tuple": "a list of numbers", "dict": "a mapping", "list": "a list of mappings"}


def coerce_field(name: str, value: Any) -> Any:
    """`value` as field `name` holds it, or UserInputError. YAML 1.1 reads ``5e-4`` (no dot) as text, so
    numeric text is accepted for numbers; stage overrides are checked key by key."""
    kind, optional = field_kind(name)
    if value is None:
        if optional:
            return None
        raise UserInputError(f"{name} must be {_KIND_TEXT[kind]}, got null.")
    if kind in ("int", "float") and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and (kind == "float" or number.is_integer()):
            value = int(number) if kind == "int" else number
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "path": isinstance(value, (str, Path)),
        "tuple": isinstance(value, (list, tuple)),
        "dict": isinstance(value, dict),
        "list": isinstance(value, list) and all(isinstance(v, dict) for v in value),
    }[kind]
    if not ok:
        raise UserInputError(f"{name} must be {_KIND_TEXT[kind]}, got {value!r}.")
    if kind == "float":
        return float(value)
    if kind == "path":
        return Path(value)
    if kind == "tuple":
        return tuple(_number(name, v) for v in value)
    if kind == "list":
        return [{k: coerce_field(k, v) if k in STAGE_FIELDS else v for k, v in override.items()}
                for override in value]
    return value


def _number(name: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{name} must be {_KIND_TEXT['tuple']}, got an item {value!r}.") from None


def closest_field(key: str) -> str:
    """The TrainConfig field nearest to `key`, CLI spellings (``hr``, ``warm_start_stages``) included."""
    aliases = {f.name: f.name for f in dataclasses.fields(TrainConfig)}
    for f in dataclasses.fields(TrainConfig):
        for flag in f.metadata.get("flags", ()):
            for spelling in flag.split("/"):
                spelling = spelling.strip().lstrip("-").replace("-", "_")
                if len(spelling) > 1:
                    aliases.setdefault(spelling, f.name)
    best = difflib.get_close_matches(key.replace("-", "_"), list(aliases), n=1, cutoff=0.0)
    return aliases[best[0]] if best else "model"


def read_run_file(path: str | Path) -> dict[str, Any]:
    """The TrainConfig fields set by a YAML run file (keys: field names, as in BasicSR's option files).

    An unknown key is an error that names the closest field, so a misspelt option never silently
    falls back to its default."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserInputError(f"cannot read run file {path}: {exc.strerror or exc}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserInputError(f"{path} is not valid YAML{where}: {problem}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserInputError(f"{path} must hold a mapping of TrainConfig fields, got {type(data).__name__}.")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {}
    for key, value in data.items():
        if str(key) not in names:
            raise UserInputError(f"{path}: unknown key {str(key)!r}; the closest field is "
                                 f"{closest_field(str(key))!r}.")
        try:
            values[key] = coerce_field(key, value)
        except UserInputError as exc:
            raise UserInputError(f"{path}: {exc}") from None
    return values


_HINTS = typing.get_type_hints(TrainConfig)
