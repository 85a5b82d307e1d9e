"""`train(config) -> TrainResult`: the training loop (single process, or DDP under torchrun).

Run folder (``config.output_dir``; only rank 0 writes)::

    config.json              resolved config + environment
    log.jsonl                one JSON object per line: train / val / stage / checkpoint / fold events
    checkpoints/last.pt      full training state (model, optimizer, scheduler, EMA, step, RNG), atomic
    stage{k}.safetensors     weights at the end of warm-start stage k (when stages > 1)
    model_best.safetensors   weights with the best validation PSNR (when validating)
    model_final.safetensors  final weights (the EMA weights when EMA is on), trainable form
    model_folded.safetensors re-parameterized weights (models with re-parameterizable blocks)
    pruned/                  with ``--init PRUNED_DIR``: the trained pruned model as config.json +
                             weights.safetensors (`edgesr.prune.load_pruned`, and ``--init`` again)
    result.json              the TrainResult summary
    tb/                      TensorBoard events (if tensorboard is installed)

Every ``*.safetensors`` is a plain state_dict: ``create_model(name, scale=s, pretrained="model_final.safetensors",
**model_cfg)``, or ``edgesr.load_model("model_final.safetensors")`` (architecture detected from the weights).
Nothing is created before the inputs (data, model, weights, options) have been checked.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from edgesr.errors import EdgesrError, OutputExistsError, UserInputError
from edgesr.train import distributed as ddp_util
from edgesr.train.config import RESUMABLE_CHANGES, TrainConfig
from edgesr.train.data import PatchSampler, TrainPatchDataset, make_loader
from edgesr.train.initialize import InitReport, load_init_weights
from edgesr.train.losses import SRLoss
from edgesr.train.state import (
    EMA,
    RunLogger,
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    save_weights,
)
from edgesr.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)

Callback = Callable[[str, dict[str, Any]], None]
WEIGHTS_SUFFIX = ".safetensors"
#: Files a run writes; --force removes exactly these (never other files in the folder).
RUN_ARTIFACTS = ("config.json", "log.jsonl", "checkpoints", *(f"model_{k}{ext}" for k in ("final", "best", "folded")
                                                            for ext in (WEIGHTS_SUFFIX, ".pth")),
                 "result.json", "tb", "pruned")


@dataclass
class TrainResult:
    """What a run produced. `model` holds the final weights (EMA when on), trainable form, on CPU."""

    output_dir: Path
    model: nn.Module = field(repr=False)
    steps: int
    stages: int
    seconds: float
    final_weights: Path | None
    best_weights: Path | None = None
    folded_weights: Path | None = None
    folded_model: nn.Module | None = field(default=None, repr=False)
    val_history: list[dict[str, Any]] = field(default_factory=list)
    final_psnr: float | None = None
    best_psnr: float | None = None
    best_step: int | None = None
    resumed_from: int | None = None
    init: dict[str, Any] | None = None
    fold: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("model", "folded_model")}
        return json.loads(json.dumps(out, default=str))


# ----------------------------------------------------------------------------------------------- helpers
def _build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "step":
        step = cfg.lr_step or max(1, cfg.steps // 5)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=cfg.lr_gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.steps, eta_min=min(cfg.min_lr, cfg.lr))
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas,
                            eps=cfg.eps, weight_decay=cfg.weight_decay)


def _every(value: int | None, steps: int, parts: int = 10) -> int:
    """A period in steps: `value`, or about `parts` times per stage when None (0 = never)."""
    if value is None:
        return max(1, steps // parts)
    return value


def _pruned_init(init: str | None, model: str, scale: int) -> Any:
    """The `PrunedConfig` when `init` is a pruned-model folder (checked against MODEL and scale), else None."""
    if not init:
        return None
    from edgesr.prune import read_pruned_config

    pruned = read_pruned_config(init)
    if pruned is None:
        return None
    if pruned.model != model or pruned.scale != scale:
        raise UserInputError(f"--init {init} holds a pruned {pruned.model} x{pruned.scale}, not {model} x{scale}; "
                             f"train it as {pruned.model} (or leave MODEL out to take it from the folder).")
    return pruned


def _clear_artifacts(folder: Path) -> None:
    for name in RUN_ARTIFACTS:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for pattern in (f"stage*{WEIGHTS_SUFFIX}", "stage*.pth"):
        for path in folder.glob(pattern):
            path.unlink()


def _has_content(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _config_differences(saved: dict[str, Any], current: TrainConfig) -> list[str]:
    now = current.to_dict()
    diffs = []
    for key, value in now.items():
        if key in RESUMABLE_CHANGES or key not in saved:
            continue
        if json.dumps(saved[key], default=str) != json.dumps(value, default=str):
            diffs.append(f"{key}: checkpoint {saved[key]!r}, now {value!r}")
    return diffs


def _environment(info: ddp_util.DistInfo) -> dict[str, Any]:
    import edgesr

    return {"edgesr": edgesr.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "device": str(info.device), "world_size": info.world_size,
            "cuda": torch.cuda.get_device_name(info.device) if info.device.type == "cuda" else None}


def _has_repconv(model: nn.Module) -> bool:
    """True when the model has training-time re-parameterizable blocks (RepConv, Conv3XC, EDBB) left."""
    from edgesr.layers.reparam import ReparamConv

    return any(isinstance(m, ReparamConv) and not m.deploy for m in model.modules())


class _Validator:
    """Y-channel PSNR/SSIM (crop = scale) of a module on a preloaded dataset, via `edgesr.evaluate`."""

    def __init__(self, folder: Path, scale: int, limit: int | None, device: torch.device) -> None:
        from edgesr.data import open_eval_dataset

        ds = open_eval_dataset(folder, scale, limit=limit)
        self.items = [ds[i] for i in range(len(ds))]  # decoded once
        self.name = folder.resolve().name if folder.name.upper() != "HR" else folder.resolve().parent.name
        self.scale = scale
        self.device = device

    def __call__(self, module: nn.Module) -> tuple[float, float]:
        from edgesr.evaluate import evaluate
        from edgesr.inference import torch_sr_function

        was_training = module.training
        try:
            fn = torch_sr_function(module, device=self.device)
            res = evaluate(fn, self.items, self.scale, dataset=self.name,
                           min_size=getattr(module, "min_input_size", 1))
        finally:
            module.train(was_training)
        return res.psnr, res.ssim


# --------------------------------------------------------------------------------------------- the run
class _Run:
    """One training run; `train()` is its public face."""

    def __init__(self, config: TrainConfig, callback: Callback | None) -> None:
        self.cfg = config
        self.callback = callback
        self.out = Path(config.output_dir)
        self.ckpt_path = self.out / "checkpoints" / "last.pt"
        self.logger: RunLogger | None = None
        self.val_history: list[dict[str, Any]] = []
        self.best: tuple[float, int] | None = None
        self.global_step = 0
        self.start_time = time.perf_counter()

    # ------------------------------------------------------------------------------------ preparation
    def prepare(self, info: ddp_util.DistInfo) -> None:
        """Check every input and build everything; nothing is written here."""
        from edgesr.models import create_model
        from edgesr.models.registry import resolve_name_and_scale

        cfg = self.cfg
        self.info = info
        cfg.validate()
        if cfg.batch % info.world_size:
            raise UserInputError(f"--batch {cfg.batch} is the global batch and must divide evenly over "
                                 f"{info.world_size} processes.")
        self.per_rank_batch = cfg.batch // info.world_size
        entry, scale, implied = resolve_name_and_scale(cfg.model, cfg.scale)
        self.entry, self.scale = entry, scale
        self.build_cfg = {**(implied.config if implied else {}), **cfg.model_cfg}
        torch.manual_seed(cfg.seed)
        self.pruned_config = _pruned_init(cfg.init, entry.name, scale)
        if self.pruned_config is not None:  # a pruned folder: its own (smaller) architecture and weights
            from edgesr.prune import load_pruned

            model = load_pruned(cfg.init).train()
        else:
            model = create_model(entry.name, scale=scale, **self.build_cfg)
        min_size = getattr(model, "min_input_size", 1)
        if cfg.patch < min_size:
            raise UserInputError(f"{entry.name} needs inputs of at least {min_size} pixels; --patch {cfg.patch} "
                                 "is too small.")
        self.model = model

        # Output folder: decide resume / refuse before any heavy work.
        self.resume_state: dict[str, Any] | None = None
        has_ckpt = self.ckpt_path.is_file()
        if cfg.resume and has_ckpt:
            state = load_checkpoint(self.ckpt_path)
            diffs = _config_differences(state["config"], cfg)
            if diffs:
                raise UserInputError(f"cannot resume {self.out}: the configuration changed ({'; '.join(diffs)}). "
                                     "Use the original options, or a new output folder.")
            self.resume_state = state
        elif not cfg.force and not cfg.resume and _has_content(self.out):
            hint = "pass --resume to continue it or " if has_ckpt else ""
            raise OutputExistsError(f"{self.out} already holds files; {hint}pass --force to start over "
                                    "(removes the previous run's files), or choose another -o folder.")
        elif self.out.exists() and not self.out.is_dir():
            raise UserInputError(f"output {self.out} exists and is not a folder.")

        # Data.
        local_world = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size)))  # copies in this RAM
        self.dataset = TrainPatchDataset(
            cfg.hr_dir, scale, cfg.patch, lr_dir=cfg.lr_dir, augment=cfg.augment, seed=cfg.seed, cache=cfg.cache,
            cache_gb=cfg.cache_gb / local_world, limit=cfg.limit, epoch_multiple=cfg.batch)
        self.validator = None
        if cfg.val_dir is not None and info.is_main:
            self.validator = _Validator(Path(cfg.val_dir), scale, cfg.val_limit, info.device)

        # Weights.
        self.init_report: InitReport | None = None
        init = cfg.init or (implied.name if implied else None)
        if self.pruned_config is not None and self.resume_state is None:
            self.init_report = InitReport(source=str(cfg.init), mode="pruned", source_scale=scale,
                                          loaded=len(model.state_dict()))
        elif init and self.resume_state is None:
            self.init_report = load_init_weights(model, init, entry=entry, scale=scale, cfg=self.build_cfg,
                                                 cross_scale=cfg.init_cross_scale)
        self.teacher = None
        if cfg.teacher:
            try:
                self.teacher = create_model(cfg.teacher, scale=scale, pretrained=cfg.teacher_weights or True)
            except UserInputError as exc:
                raise type(exc)(f"--teacher {cfg.teacher}: {exc}") from None

    def create_output(self) -> None:
        cfg = self.cfg
        if cfg.force and self.resume_state is None and self.out.is_dir():
            _clear_artifacts(self.out)
        (self.out / "checkpoints").mkdir(parents=True, exist_ok=True)
        payload = {"config": cfg.to_dict(), "environment": _environment(self.info),
                   "model": {"name": self.entry.name, "scale": self.scale, "cfg": self.build_cfg,
                             "params": sum(p.numel() for p in self.model.parameters())},
                   "init": self.init_report.to_dict() if self.init_report else None}
        write_text_atomic(self.out / "config.json", json.dumps(payload, indent=2, default=str) + "\n", force=True)
        self.logger = RunLogger(self.out, cfg.tensorboard)
        if self.init_report is not None:
            self.logger.write("init", 0, **self.init_report.to_dict())

    # ---------------------------------------------------------------------------------------- helpers
    def _log(self, event: str, **values: Any) -> None:
        if self.logger is not None:
            self.logger.write(event, self.global_step, **values)

    def _emit(self, event: str, **values: Any) -> None:
        if self.callback is not None:
            self.callback(event, {"step": self.global_step, **values})

    def _deploy_module(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.raw

    def _validate(self, stage: int) -> float | None:
        if self.validator is None:
            return None
        t0 = time.perf_counter()
        psnr, ssim = self.validator(self._deploy_module())
        rec = {"step": self.global_step, "stage": stage + 1, "psnr": psnr, "ssim": ssim,
               "weights": "ema" if self.ema is not None else "model", "seconds": time.perf_counter() - t0}
        self.val_history.append(rec)
        self._log("val", **{k: v for k, v in rec.items() if k != "step"}, dataset=self.validator.name)
        log.info("step %d: %s PSNR %.4f dB SSIM %.5f", self.global_step, self.validator.name, psnr, ssim)
        if self.best is None or psnr > self.best[0]:
            self.best = (psnr, self.global_step)
            save_weights(self.out / f"model_best{WEIGHTS_SUFFIX}", self._deploy_module())
        return psnr

    def _checkpoint(self, stage: int, stage_step: int, optimizer, scheduler) -> None:
        if not self.info.is_main:
            return
        state = {
            "config": self.cfg.to_dict(), "step": self.global_step, "stage": stage, "stage_step": stage_step,
            "model": self.raw.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "extractor": (self.loss_fn.contrastive.state_dict()
                          if self.loss_fn is not None and self.loss_fn.contrastive is not None else None),
            "rng": capture_rng(), "val_history": self.val_history,
            "best": list(self.best) if self.best else None,
            "init": self.init_report.to_dict() if self.init_report else None,
        }
        save_checkpoint(self.ckpt_path, state)
        self._log("checkpoint", path=str(self.ckpt_path), stage=stage + 1, stage_step=stage_step)

    def _batches(self, loader, sampler: PatchSampler) -> Iterator[dict[str, torch.Tensor]]:
        consumed = self.global_step * self.per_rank_batch
        while True:
            sampler.start_at(consumed)
            for batch in loader:
                consumed += self.per_rank_batch
                yield batch

    # -------------------------------------------------------------------------------------------- run
    def run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        device = info.device
        self.raw = self.model.to(device)
        self.raw.train()
        model: nn.Module = self.raw
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(self.raw, device_ids=[device.index] if device.type == "cuda" else None)
        self.ema = EMA(self.raw, cfg.ema) if cfg.ema else None
        if self.teacher is not None:
            self.teacher.to(device)
        self.loss_fn: SRLoss | None = None

        start_stage, start_stage_step, resumed_from = 0, 0, None
        rs = self.resume_state
        if rs is not None:
            self.raw.load_state_dict(rs["model"])
            if self.ema is not None and rs.get("ema"):
                self.ema.load_state_dict(rs["ema"])
            self.global_step = resumed_from = int(rs["step"])
            start_stage, start_stage_step = int(rs["stage"]), int(rs["stage_step"])
            self.val_history = list(rs.get("val_history") or [])
            self.best = tuple(rs["best"]) if rs.get("best") else None  # type: ignore[assignment]
            if rs.get("init"):
                self.init_report = InitReport(**rs["init"])
            restore_rng(rs["rng"])
            self._log("resume", stage=start_stage + 1, stage_step=start_stage_step)
            log.info("resuming %s at step %d (stage %d, step %d of it)", self.out, self.global_step,
                     start_stage + 1, start_stage_step)
        stage_steps = cfg.stage_steps()
        if start_stage < cfg.stages and start_stage_step >= stage_steps[start_stage]:
            start_stage, start_stage_step = start_stage + 1, 0  # the checkpoint was a stage's last step

        sampler = PatchSampler(self.dataset, num_replicas=info.world_size, rank=info.rank, seed=cfg.seed)
        loader = make_loader(self.dataset, sampler, self.per_rank_batch, device, cfg.workers)
        batches = self._batches(loader, sampler)

        bar = None
        if cfg.progress and info.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.total_steps, initial=self.global_step, unit="step", desc="train", dynamic_ncols=True)
        in_update = False
        optimizer = scheduler = None
        stage = start_stage
        stage_step = start_stage_step
        try:
            for stage in range(start_stage, cfg.stages):
                scfg = cfg.stage(stage)
                resuming_here = rs is not None and stage == int(rs["stage"]) and start_stage_step > 0
                if stage > 0 and not resuming_here:
                    self._warm_start(stage)
                optimizer = _build_optimizer(self.raw, scfg)
                scheduler = _build_scheduler(optimizer, scfg)
                self.loss_fn = SRLoss(scfg.loss, scfg.contrastive, scfg.distill, self.teacher,
                                      cfg.contrastive_layer_weights, seed=cfg.seed).to(device)
                stage_step = start_stage_step if stage == start_stage else 0
                if resuming_here:
                    optimizer.load_state_dict(rs["optimizer"])
                    scheduler.load_state_dict(rs["scheduler"])
                    if rs.get("extractor") and self.loss_fn.contrastive is not None:
                        self.loss_fn.contrastive.load_state_dict(rs["extractor"])
                self._log("stage", stage=stage + 1, steps=scfg.steps, lr=scfg.lr, loss=scfg.loss,
                          contrastive=scfg.contrastive, distill=scfg.distill, schedule=scfg.schedule)
                self._emit("stage_start", stage=stage, model=self.raw, optimizer=optimizer, scheduler=scheduler)
                val_every = _every(cfg.val_every, scfg.steps)
                save_every = _every(cfg.save_every, scfg.steps)
                window: dict[str, Any] = {"n": 0, "wait": 0.0, "t0": time.perf_counter()}
                sums: dict[str, torch.Tensor] = {}
                while stage_step < scfg.steps:
                    t_wait = time.perf_counter()
                    batch = next(batches)
                    window["wait"] += time.perf_counter() - t_wait
                    lr_t = batch["lr"].to(device, non_blocking=True).float().div_(255.0)
                    hr_t = batch["hr"].to(device, non_blocking=True).float().div_(255.0)
                    sr = model(lr_t)
                    loss, parts = self.loss_fn(sr, hr_t, lr_t)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(self.raw.parameters(), cfg.grad_clip)
                    in_update = True
                    optimizer.step()
                    scheduler.step()
                    if self.ema is not None:
                        self.ema.update(self.raw)
                    stage_step += 1
                    self.global_step += 1
                    in_update = False
                    parts = {"loss": loss.detach(), **parts}
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v
                    window["n"] += 1
                    if bar is not None:
                        bar.update(1)
                    if stage_step % cfg.log_every == 0 or stage_step == scfg.steps:
                        self._log_train(stage, sums, window, optimizer, bar)
                        sums = {}
                        window = {"n": 0, "wait": 0.0, "t0": time.perf_counter()}
                    last = stage_step == scfg.steps
                    if info.is_main and (last or (val_every and stage_step % val_every == 0)):
                        psnr = self._validate(stage)
                        if bar is not None and psnr is not None:
                            bar.set_postfix_str(f"val {psnr:.2f} dB", refresh=False)
                    if last or stage_step % save_every == 0:
                        self._checkpoint(stage, stage_step, optimizer, scheduler)
                    if self.callback is not None:
                        self._emit("step", stage=stage, stage_step=stage_step, model=self.raw, optimizer=optimizer,
                                   scheduler=scheduler, loss=float(loss.detach()))
                if info.is_main and cfg.stages > 1:
                    path = save_weights(self.out / f"stage{stage + 1}{WEIGHTS_SUFFIX}", self._deploy_module())
                    self._log("stage_end", stage=stage + 1, weights=str(path))
        except KeyboardInterrupt:
            if optimizer is not None and not in_update and info.is_main:
                self._checkpoint(stage, stage_step, optimizer, scheduler)
                log.warning("interrupted at step %d; saved %s (continue with --resume)", self.global_step,
                            self.ckpt_path)
            raise
        finally:
            if bar is not None:
                bar.close()
            del batches, loader
        return self._finish(resumed_from)

    def _warm_start(self, stage: int) -> None:
        """RLFN warm start: stage k starts from stage k-1's final weights (EMA's when on)."""
        if self.ema is not None:
            self.raw.load_state_dict(self.ema.module.state_dict())
            self.ema.reset(self.raw)
        self._log("warm_start", stage=stage + 1, source=f"stage{stage}{WEIGHTS_SUFFIX}")

    def _log_train(self, stage: int, sums: dict[str, torch.Tensor], window: dict[str, Any], optimizer,
                   bar) -> None:
        n = max(1, window["n"])
        keys = sorted(sums)
        stacked = torch.stack([torch.as_tensor(sums[k], dtype=torch.float32) for k in keys])
        if self.info.enabled:  # the global batch's losses, not rank 0's share
            import torch.distributed as dist

            dist.all_reduce(stacked)
            stacked /= self.info.world_size
        values = {k: float(v) / n for k, v in zip(keys, stacked.tolist())}
        elapsed = time.perf_counter() - window["t0"]
        rec = {"stage": stage + 1, **values, "lr": optimizer.param_groups[0]["lr"],
               "samples_per_s": n * self.cfg.batch / max(elapsed, 1e-9),
               "data_wait_frac": window["wait"] / max(elapsed, 1e-9)}
        self._log("train", **rec)
        if bar is not None:
            bar.set_description(f"train loss {values.get('loss', 0.0):.4f}", refresh=False)

    # ------------------------------------------------------------------------------------------ finish
    def _finish(self, resumed_from: int | None) -> TrainResult:
        cfg, info = self.cfg, self.info
        final = copy.deepcopy(self._deploy_module()).to("cpu").eval()
        final_path = best_path = folded_path = None
        folded, fold_info = None, None
        if info.is_main:
            final_path = save_weights(self.out / f"model_final{WEIGHTS_SUFFIX}", final)
            if self.pruned_config is not None:
                from edgesr.prune import save_pruned

                save_pruned(self.out / "pruned", final, self.pruned_config, force=True)
            if (self.out / f"model_best{WEIGHTS_SUFFIX}").is_file():
                best_path = self.out / f"model_best{WEIGHTS_SUFFIX}"
            if cfg.fold and _has_repconv(final):
                folded, fold_info = self._fold(final)
                if folded is not None:
                    folded_path = save_weights(self.out / f"model_folded{WEIGHTS_SUFFIX}", folded)
                    fold_info["weights"] = str(folded_path)
                self._log("fold", **(fold_info or {}))
        result = TrainResult(
            output_dir=self.out, model=final, steps=self.global_step, stages=cfg.stages,
            seconds=time.perf_counter() - self.start_time, final_weights=final_path, best_weights=best_path,
            folded_weights=folded_path, folded_model=folded, val_history=self.val_history,
            final_psnr=self.val_history[-1]["psnr"] if self.val_history else None,
            best_psnr=self.best[0] if self.best else None, best_step=self.best[1] if self.best else None,
            resumed_from=resumed_from, init=self.init_report.to_dict() if self.init_report else None,
            fold=fold_info)
        if info.is_main:
            write_text_atomic(self.out / "result.json", json.dumps(result.to_dict(), indent=2) + "\n", force=True)
            self._log("done", seconds=result.seconds, final_psnr=result.final_psnr, best_psnr=result.best_psnr)
        return result

    def _fold(self, final: nn.Module) -> tuple[nn.Module | None, dict[str, Any]]:
        """Fold re-parameterizable blocks with `edgesr.transforms.reparameterize` (skipped if that is unavailable)
        and check the folded model computes the same function."""
        try:
            from edgesr.transforms import reparameterize
        except ImportError as exc:
            log.warning("model has re-parameterizable blocks but edgesr.transforms is unavailable (%s); not folded", exc)
            return None, {"folded": False, "reason": f"edgesr.transforms unavailable: {exc}"}
        folded = copy.deepcopy(final).eval()
        # Only the repconv pass: the folded model keeps the plain architecture's state_dict (rlfn_rep ->
        # rlfn), still trainable and loadable; export runs the full pipeline (value scaling, ...) itself.
        reparameterize(folded, passes=["repconv"])
        size = max(getattr(final, "min_input_size", 1), 32)
        x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            diff = float((final(x) - folded(x)).abs().max())
        info: dict[str, Any] = {"folded": True, "max_abs_diff": diff,
                                "params_before": sum(p.numel() for p in final.parameters()),
                                "params_after": sum(p.numel() for p in folded.parameters())}
        if self.validator is not None:
            info["psnr"], info["ssim"] = self.validator(folded)
        log.info("folded re-parameterizable blocks: max |diff| %.2e on a random input", diff)
        return folded, info


def train(config: TrainConfig, *, callback: Callback | None = None) -> TrainResult:
    """Train `config.model` as configured; returns the final weights and the validation curve.

    Runs on one process (CPU or one GPU) unless launched by ``torchrun`` with several processes, in
    which case it joins the process group (gloo on CPU, nccl on CUDA), shards the patches with a
    DistributedSampler and lets rank 0 alone write. `callback(event, info)` is called on
    ``"stage_start"`` and after every optimizer ``"step"`` (info holds the step counters, the model,
    optimizer and scheduler): hooks for tests and custom monitoring.
    """
    info = ddp_util.setup(config.device)
    run = _Run(config, callback)
    try:
        error: str | None = None
        try:
            run.prepare(info)
        except EdgesrError as exc:
            if not info.enabled:
                raise
            error = f"rank {info.rank}: {exc}"
        if info.enabled:  # every rank fails together, with the first rank's message, instead of hanging
            import torch.distributed as dist

            errors: list[str | None] = [None] * info.world_size
            dist.all_gather_object(errors, error)
            first = next((e for e in errors if e), None)
            if first:
                raise UserInputError(first)
        if info.is_main:
            run.create_output()
        ddp_util.barrier(info)
        try:
            return run.run()
        finally:
            if run.logger is not None:
                run.logger.close()
    finally:
        ddp_util.teardown(info)
