"""`TrainConfig`: everything a training run needs, as one serializable dataclass."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgesr.errors import UserInputError
from edgesr.train.losses import PIXEL_LOSSES

SCHEDULES = ("step", "cosine", "constant")
#: Fields a resumed run may change; every other field must equal the checkpoint's.
RESUMABLE_CHANGES = frozenset({
    "output_dir", "resume", "force", "progress", "workers", "device", "tensorboard", "log_every",
    "save_every", "val_every", "val_dir", "val_limit", "cache", "cache_gb", "hr_dir", "lr_dir",
})
STAGE_FIELDS = ("steps", "lr", "loss", "contrastive", "distill", "schedule")


@dataclass
class TrainConfig:
    """A training run. `None` means "the default described here".

    Model and data:
        model: registered model or pretrained variant name (a variant, e.g. ``rlfn_x4``, implies its
            scale and, unless `init` is given, starts from its official weights).
        hr_dir: folder of HR training images. lr_dir: optional matching LR folder (else MATLAB bicubic).
        scale: upscaling factor (default: the variant's, else 4).
        model_cfg: architecture hyper-parameters passed to the builder (e.g. ``feature_channels``).
        patch: LR patch size; the HR patch is ``patch * scale``. batch: *global* batch (split over
            the DDP processes). limit: use the first N HR images only. augment: flips/rotations.
        cache / cache_gb: "auto" | "ram" | "none" decoded-image cache (see `edgesr.train.data`).
        workers: DataLoader workers per process (None: 0 on CPU, up to 8 on CUDA).
    Recipe:
        steps: optimizer steps per stage. stages: RLFN's warm-start stages (each starts from the
            previous stage's weights, EMA weights if `ema`, with a fresh optimizer and LR schedule).
        stage_overrides: per-stage changes, a list of dicts with keys among ``steps lr loss contrastive
            distill schedule`` (e.g. RLFN's last stage: ``{"loss": "mse", "lr": 2e-5}``).
        loss: pixel loss 'l1' (= 'mae') or 'mse' (= 'l2'). contrastive: weight of RLFN's contrastive
            loss (0 = off; 0.1 suggested). contrastive_layer_weights: w_l of its two layers.
        teacher / teacher_weights / distill: L1 distillation to a teacher's output (model name, weights
            file or None for the official ones, weight).
        lr, betas, eps, weight_decay: Adam (defaults: the papers' 5e-4 RLFN / (0.9, 0.999) / 1e-8 / 0).
        schedule: 'step' (x `lr_gamma` every `lr_step` steps; default every steps/5 with gamma 0.5,
            RLFN's "halved every 2e5 of 1e6"), 'cosine' (to `min_lr`) or 'constant'.
        grad_clip: max gradient norm (None: no clipping). ema: EMA decay (None: no EMA).
        init: initial weights (file or pretrained name). init_cross_scale: allow weights of another
            scale, skipping the upsampler (EDSR's x2 -> x4 initialisation).
        seed: seeds the model init, the patch sampling and the contrastive extractor.
    Run:
        output_dir: run folder. val_dir: validation dataset folder (Set5 layout or plain HR images);
            val_every: validate every K steps (None: ~10 times per stage; 0: only at stage ends).
        save_every: checkpoint every K steps (None: ~10 times per stage) and at every stage end.
        log_every: train-log every K steps. resume: continue from ``output_dir/checkpoints/last.pt`` if
            present. force: clear a previous run's files first. fold: re-parameterize RepConv models
            at the end (if `edgesr.transforms` is available). device: 'auto', 'cpu', 'cuda', 'cuda:1'.
    """

    model: str
    hr_dir: str | Path
    output_dir: str | Path
    scale: int | None = None
    lr_dir: str | Path | None = None
    model_cfg: dict[str, Any] = field(default_factory=dict)
    patch: int = 64
    batch: int = 16
    limit: int | None = None
    augment: bool = True
    cache: str = "auto"
    cache_gb: float = 8.0
    workers: int | None = None
    steps: int = 1000
    stages: int = 1
    stage_overrides: list[dict[str, Any]] = field(default_factory=list)
    loss: str = "l1"
    contrastive: float = 0.0
    contrastive_layer_weights: tuple[float, ...] = (1.0, 1.0)
    teacher: str | None = None
    teacher_weights: str | None = None
    distill: float = 0.0
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "step"
    lr_step: int | None = None
    lr_gamma: float = 0.5
    min_lr: float = 1e-7
    grad_clip: float | None = None
    ema: float | None = None
    init: str | None = None
    init_cross_scale: bool = False
    seed: int = 0
    val_dir: str | Path | None = None
    val_every: int | None = None
    val_limit: int | None = None
    save_every: int | None = None
    log_every: int = 10
    resume: bool = False
    force: bool = False
    fold: bool = True
    device: str = "auto"
    progress: bool = True
    tensorboard: bool | None = None

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
