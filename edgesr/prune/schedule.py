"""Group Fisher pruning schedule: train at a low learning rate, prune every d steps, slice, fine-tune.

`fisher_prune` is one function over an iterable of batches (LR tensors, (LR, HR) pairs, or dicts with
``lr``/``hr``; float NCHW in 0..1, edgesr's convention). Loss per sample: L1 to HR when HR is given,
plus `distill_weight` x L1 to the unpruned teacher's output. With LR-only data the Fisher estimate
uses a pseudo-target (teacher output + Gaussian noise of std `fisher_noise`): at step 0 the student
equals the teacher, so pure distillation would have zero gradient and every score would be 0.
"""
from __future__ import annotations

import copy
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn

from edgesr.errors import UserInputError
from edgesr.prune.pruner import METRICS, PruneEvent, Pruner
from edgesr.prune.slicing import PrunedConfig, rebuild
from edgesr.prune.trace import ChannelGroup

log = logging.getLogger(__name__)

__all__ = ["CHECKPOINT_NAME", "PruneResult", "Target", "fisher_prune", "fisher_step"]

CHECKPOINT_NAME = "prune_state.pth"
_CKPT_FORMAT = "edgesr.prune.checkpoint/1"
_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


@dataclass(frozen=True)
class Target:
    """When to stop pruning: `kind` ("flops" = conv MACs, "params", "acts", "latency") reaches `ratio`
    of the unpruned model's value, or the absolute `value` (MACs / params / elements / ms). Measured
    with the NTIRE definitions at the deployment size (1x3x256x256 by default)."""

    kind: str = "flops"
    ratio: float | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        kind = "flops" if self.kind == "macs" else self.kind
        object.__setattr__(self, "kind", kind)
        if kind not in METRICS:
            raise UserInputError(f"unknown target kind {self.kind!r}; choose one of {', '.join(METRICS)}.")
        if (self.ratio is None) == (self.value is None):
            raise UserInputError("a pruning target needs exactly one of ratio= (e.g. 0.8) or value= (absolute).")
        if self.ratio is not None and not (0.0 < float(self.ratio) <= 1.0):
            raise UserInputError(f"target ratio must be in (0, 1], got {self.ratio!r}.")
        if self.value is not None and not (float(self.value) > 0 and math.isfinite(float(self.value))):
            raise UserInputError(f"target value must be positive, got {self.value!r}.")

    def resolve(self, initial: float) -> float:
        return float(self.value) if self.value is not None else float(self.ratio) * initial

    @classmethod
    def parse(cls, text: str) -> "Target":
        """``"flops=0.9"`` (a bare number is a ratio in (0, 1]), ``"params=300k"`` / ``"flops=20G"`` /
        ``"latency=5ms"`` (absolute values need a unit: k, M, G or ms), ``"acts:0.8"``."""
        m = re.fullmatch(r"\s*(\w+)\s*[=:]\s*([0-9.eE+-]+)\s*(ms|[kKmMgG]?)\s*", str(text))
        number = None
        if m:
            try:
                number = float(m.group(2))
            except ValueError:
                number = None
        if m is None or number is None:
            raise UserInputError(f"cannot read target {text!r}; write KIND=VALUE, e.g. flops=0.9 or params=300k.")
        kind, suffix = m.group(1).lower(), m.group(3)
        if ("flops" if kind == "macs" else kind) not in METRICS:
            raise UserInputError(f"unknown target kind {kind!r}; choose one of {', '.join(METRICS)}.")
        if suffix == "ms":
            if kind != "latency":
                raise UserInputError(f"target {text!r}: the unit ms applies to latency only.")
            return cls(kind, value=number)
        if suffix:
            return cls(kind, value=number * _SUFFIX[suffix.lower()])
        if not 0.0 < number <= 1.0:  # a bare number is a ratio: flops=2 is not "2 FLOPs"
            unit = "5ms" if kind == "latency" else "20G"
            raise UserInputError(f"target {text!r}: a number without a unit is a ratio of the unpruned model and "
                                 f"must be in (0, 1]; an absolute value needs a unit, e.g. {kind}={unit}.")
        return cls(kind, ratio=number)

    def describe(self, value: float | None = None) -> str:
        what = f"{self.ratio:g} x unpruned" if self.ratio is not None else _fmt(self.kind, float(self.value))
        return f"{self.kind} <= {what}" + (f" ({_fmt(self.kind, value)})" if value is not None else "")


def _fmt(kind: str, v: float) -> str:
    if kind == "latency":
        return f"{v:.3f} ms"
    if kind == "params":
        return f"{v:,.0f}"
    if kind == "flops":
        return f"{v / 1e9:.3f} G"
    return f"{v / 1e6:.3f} M"


@dataclass
class PruneResult:
    """What `fisher_prune` returns. `model` is the sliced (and fine-tuned) network."""

    model: nn.Module
    config: PrunedConfig
    target: Target
    target_value: float
    target_met: bool
    before: dict[str, float]
    after: dict[str, float]
    steps: int
    finetune_steps: int
    history: list[PruneEvent] = field(default_factory=list)
    groups: list[ChannelGroup] = field(default_factory=list)
    seconds: float = 0.0
    seconds_per_step: float = 0.0

    def summary(self) -> str:
        lines = [f"target {self.target.describe(self.target_value)}: {'met' if self.target_met else 'NOT met'} "
                 f"after {self.steps} steps ({len(self.history)} prunes), {self.finetune_steps} fine-tune steps, "
                 f"{self.seconds:.1f} s ({self.seconds_per_step:.3f} s/step)"]
        for k in ("params", "flops", "acts", "latency"):
            if k in self.before:
                b, a = self.before[k], self.after[k]
                lines.append(f"  {k:7s} {_fmt(k, b):>14s} -> {_fmt(k, a):>14s} ({a / b:.3f})")
        changed = [(n, g["width"], g["kept"]) for n, g in self.config.groups.items() if g["kept"] != g["width"]]
        if changed:
            lines.append("  widths: " + ", ".join(f"{n} {w}->{k}" for n, w, k in changed))
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Batches and loss
# --------------------------------------------------------------------------------------------------

class _Stream:
    """Endless batches from an iterable: a re-iterable (list, DataLoader) starts a new epoch when it
    runs out; a one-shot iterator ends the stream (None)."""

    def __init__(self, batches: Iterable) -> None:
        self.source = batches
        self.it: Iterator | None = None
        self.reiterable = not isinstance(batches, Iterator)

    def next(self) -> Any:
        if self.it is None:
            self.it = iter(self.source)
        try:
            return next(self.it)
        except StopIteration:
            if not self.reiterable:
                return None
            self.it = iter(self.source)
            try:
                return next(self.it)
            except StopIteration:
                raise UserInputError("the batch iterable is empty.") from None


def _unpack(batch: Any, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, Mapping):
        lr, hr = batch.get("lr"), batch.get("hr")
    elif isinstance(batch, (tuple, list)):
        if len(batch) not in (1, 2):
            raise UserInputError(f"a batch must be LR or (LR, HR); got a sequence of {len(batch)}.")
        lr, hr = batch[0], (batch[1] if len(batch) == 2 else None)
    else:
        lr, hr = batch, None
    if not isinstance(lr, torch.Tensor) or lr.dim() != 4:
        raise UserInputError(f"LR batches must be float N x C x H x W tensors in 0..1, got "
                             f"{type(lr).__name__}{tuple(lr.shape) if isinstance(lr, torch.Tensor) else ''}.")
    lr = lr.to(device=device, dtype=dtype)
    if hr is not None:
        if not isinstance(hr, torch.Tensor) or hr.dim() != 4 or hr.shape[0] != lr.shape[0]:
            raise UserInputError("HR batches must be N x C x H x W tensors matching the LR batch size.")
        hr = hr.to(device=device, dtype=dtype)
    return lr, hr


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.shape != b.shape:
        raise UserInputError(f"model output {tuple(a.shape)} and target {tuple(b.shape)} differ in shape "
                             "(HR must be the LR size times the scale).")
    return (a - b).abs().flatten(1).mean(1)


def _loss(sr: torch.Tensor, hr: torch.Tensor | None, teacher_out: torch.Tensor | None,
          distill_weight: float) -> torch.Tensor:
    """Per-sample loss [N]."""
    loss = torch.zeros(sr.shape[0], device=sr.device, dtype=sr.dtype)
    if hr is not None:
        loss = loss + _l1(sr, hr)
    if teacher_out is not None and distill_weight:
        loss = loss + distill_weight * _l1(sr, teacher_out)
    return loss


def fisher_step(pruner: Pruner, batch: Any, teacher: nn.Module | None, *,
                optimizer: torch.optim.Optimizer | None = None, distill_weight: float = 1.0,
                fisher_noise: float = 0.01) -> torch.Tensor:
    """One training step of the pruning phase on `pruner.model`; returns the per-sample losses (detached).

    Forward with per-sample group masks, loss per sample (L1 to HR if given + `distill_weight` x L1 to
    the teacher's output; with LR-only batches the teacher output plus N(0, `fisher_noise`^2) noise is
    the pseudo-target), backward of the batch mean, Fisher accumulation (gradients rescaled to each
    sample's own loss), then ``optimizer.step()`` when an optimizer is given.
    """
    model = pruner.model
    ref = next(model.parameters())
    x, hr = _unpack(batch, ref.device, ref.dtype)
    t_out = None
    if teacher is not None and (distill_weight or hr is None):
        with torch.no_grad():
            t_out = teacher(x)
    if hr is None:
        if t_out is None or not distill_weight:
            raise UserInputError("LR-only batches need a teacher and distill_weight > 0 (there is no HR).")
        if fisher_noise:
            t_out = t_out + fisher_noise * torch.randn_like(t_out)
    with pruner.attached(), pruner.fisher():
        sr = model(x)
        loss = _loss(sr, hr, t_out, distill_weight)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        loss.mean().backward()
        pruner.accumulate(scale=float(loss.shape[0]))
    if optimizer is not None:
        optimizer.step()
    return loss.detach()


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------

def _save_ckpt(folder: Path, state: dict[str, Any]) -> None:
    from edgesr.utils.atomic import atomic_path, ensure_folder

    ensure_folder(folder)
    with atomic_path(folder / CHECKPOINT_NAME, force=True) as tmp:
        torch.save(state, tmp)


def _load_ckpt(folder: Path, signature: str) -> dict[str, Any] | None:
    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise UserInputError(f"cannot read pruning checkpoint {path}: {exc}; delete it or pass resume=False.") \
            from None
    if not isinstance(state, dict) or state.get("format") != _CKPT_FORMAT:
        raise UserInputError(f"{path} is not an edgesr pruning checkpoint; delete it or pass resume=False.")
    if state.get("signature") != signature:
        raise UserInputError(f"pruning checkpoint {path} was made for a different model (channel groups differ); "
                             "use another checkpoint_dir or pass resume=False.")
    return state


# --------------------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------------------

def fisher_prune(model: nn.Module, teacher: nn.Module | None, batches: Iterable, target: Target | str, *,
                 normalize: str | None = "memory", prune_every: int = 10, round_to: int = 1, lr: float = 2e-5,
                 steps: int | None = None, finetune_steps: int = 0, finetune_lr: float | None = None,
                 distill_weight: float = 1.0, fisher_noise: float = 0.01,
                 importance: Callable[[nn.Module, ChannelGroup], torch.Tensor] | None = None,
                 latency_table: Mapping[str | int, float] | None = None, latency_base_ms: float = 0.0,
                 deploy_size: Sequence[int] | int = (256, 256),
                 example_input: torch.Tensor | Sequence[int] | None = None,
                 base_config: Mapping[str, Any] | None = None, progress: bool = True,
                 checkpoint_dir: str | Path | None = None, checkpoint_every: int = 50, resume: bool = True,
                 verify: bool = True, on_prune: Callable[[PruneEvent], None] | None = None,
                 depth: bool = False, min_blocks: int = 1, prunes_per_step: int = 1) -> PruneResult:
    """Prune `model` with Group Fisher until `target` is met, slice it physically, fine-tune it.

    Args:
        model: a registered edgesr model (`create_model`), usually pretrained. It is trained in place
            during the pruning phase (masked, unsliced); the result is a new, smaller module.
        teacher: the unpruned network for distillation; None = a frozen copy of `model` as given.
        batches: iterable of LR tensors, (LR, HR) pairs or {"lr", "hr"} dicts (0..1, NCHW).
        target: `Target` or its text form (``"flops=0.9"``).
        normalize: importance normaliser: "memory" (default, ΔM), "flops", "latency" or None.
        prune_every: d, steps of Fisher accumulation between prunes.
        round_to: k, prune k channels of one group at a time so widths stay multiples of k.
        lr: Adam learning rate while pruning (low: 0.04-0.1x the training rate).
        steps: at most this many pruning-phase steps (None: until the target is met or the batches end).
        finetune_steps / finetune_lr: training of the sliced model afterwards (lr defaults to `lr`).
        distill_weight: weight of L1 to the teacher's output.
        fisher_noise: std of the pseudo-target noise with LR-only batches (0..1 range).
        importance: custom importance callable ``(model, group) -> scores`` (default Group Fisher).
        latency_table / latency_base_ms: {group: ms per channel} for normalize/target "latency".
        deploy_size: LR (H, W) for ΔM and target metrics.
        example_input: tensor or shape for tracing (default 2x3x32x32).
        base_config: `create_model` kwargs of `model` if not its registered defaults (for rebuild).
        progress: tqdm progress bars.
        checkpoint_dir / checkpoint_every / resume: periodic checkpoints (weights, masks, step,
            optimizer, history) and resuming from them.
        verify: check that the sliced model reproduces the masked one on a batch.
        on_prune: called with every `PruneEvent` (for logging).
        depth: also drop whole residual blocks (RLFN, EDSR, RFDN) when a block's Fisher gate score per saved
            memory/MAC is lower than the cheapest channels'; a drop that would take the target metric below
            the goal is not taken (channels finish). The model is then rebuilt shallower, so `model` is no
            longer the trained module after a drop (use the result).
        min_blocks: depth pruning keeps at least this many blocks.
        prunes_per_step: at each prune, up to this many prunes on the same Fisher scores, each in a
            different group (`Pruner.step_many`): faster schedules without thinning a group on stale scores.

    Raises:
        UserInputError: bad arguments, or a target below the smallest reachable value.
    """
    start_time = time.perf_counter()
    if isinstance(target, str):
        target = Target.parse(target)
    if not isinstance(target, Target):
        raise UserInputError(f"target must be a Target or text like 'flops=0.9', got {target!r}.")
    for name, v in (("prune_every", prune_every), ("checkpoint_every", checkpoint_every),
                    ("prunes_per_step", prunes_per_step)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserInputError(f"{name} must be a positive integer, got {v!r}.")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise UserInputError(f"steps must be a non-negative integer or None, got {steps!r}.")
    if isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or finetune_steps < 0:
        raise UserInputError(f"finetune_steps must be a non-negative integer, got {finetune_steps!r}.")
    if not lr > 0:
        raise UserInputError(f"lr must be positive, got {lr!r}.")
    from edgesr.prune.slicing import resolve_base_config

    if getattr(model, "edgesr_name", None):
        _, _, base_cfg = resolve_base_config(model, base_config)  # fail now, not after the pruning run
    else:
        base_cfg = dict(base_config or {})
        log.warning("%s was not built by edgesr.create_model: it is pruned and sliced, but the result cannot "
                    "be saved as a rebuildable config + weights artifact", type(model).__name__)
    ref = next(model.parameters())
    device, dtype = ref.device, ref.dtype
    if teacher is None:
        teacher = copy.deepcopy(model)
    teacher = teacher.eval().requires_grad_(False)
    pruner = Pruner(model, example_input=example_input, deploy_size=deploy_size, importance=importance,
                    normalize=normalize, latency_table=latency_table, latency_base_ms=latency_base_ms,
                    round_to=round_to, depth=depth, min_blocks=min_blocks)
    if target.kind == "latency" and pruner.latency_table is None:
        raise UserInputError("a latency target needs latency_table={group name: ms per channel}.")
    if depth and target.kind == "latency":  # the table prices channels of named groups, not whole blocks
        raise UserInputError("depth pruning cannot aim at a latency target: a latency table prices channels, not "
                             "whole blocks; use a flops, params or acts target with depth.")
    before = pruner.complexity()
    initial = before[target.kind]
    goal = target.resolve(initial)
    reachable = pruner.metric(target.kind, pruner.minimal_keep())
    if goal < reachable:
        raise UserInputError(
            f"target {target.describe(goal)} cannot be reached: the smallest reachable {target.kind} is "
            f"{_fmt(target.kind, reachable)} ({reachable / initial:.3f} of the unpruned {_fmt(target.kind, initial)}), "
            f"with every prunable channel group at its minimum width (round_to={round_to}, frozen channels kept).")
    signature = pruner.graph.signature()
    if depth:
        pruner.block_floor = (target.kind, goal)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    history: list[PruneEvent] = []
    step = 0
    phase = "prune"
    ft_state: dict[str, Any] | None = None
    if ckpt_dir is not None and resume:
        state = _load_ckpt(ckpt_dir, signature)
        if state is not None:
            history = [PruneEvent(**e) for e in state["history"]]
            step = int(state["step"])
            dropped = [e.block for e in history if e.block]
            if dropped:  # replay the block removals, then the saved weights fit
                pruner = pruner.without_blocks(dropped)
                model = pruner.model
                optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
            pruner.load_keep_state(state["keep"])
            phase = state["phase"]
            if phase == "prune":
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                load = getattr(pruner.importance, "load_state_dict", None)
                if load is not None and state.get("importance") is not None:
                    load(state["importance"])
            else:
                ft_state = state
            log.info("resumed pruning from %s at step %d (%s phase)", ckpt_dir, step, phase)

    stream = _Stream(batches)
    met = pruner.metric(target.kind) <= goal
    last_lr: torch.Tensor | None = None
    bar = None
    prune_seconds = 0.0

    def checkpoint(extra: dict[str, Any]) -> None:
        if ckpt_dir is None:
            return
        imp_state = getattr(pruner.importance, "state_dict", None)
        _save_ckpt(ckpt_dir, {"format": _CKPT_FORMAT, "signature": signature, "step": step,
                              "keep": pruner.keep_state(), "history": [e.to_dict() for e in history],
                              "importance": imp_state() if imp_state is not None and phase == "prune" else None,
                              **extra})

    if phase == "prune":
        if progress and not met:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, initial=step, desc=f"prune to {target.describe()}", unit="step", leave=False)
        first_step = step
        t0 = time.perf_counter()
        model.train()
        pruner.attach()
        try:
            while not met:
                if steps is not None and step >= steps:
                    log.warning("pruning stopped after %d steps before reaching %s (now %s)", step,
                                target.describe(goal), _fmt(target.kind, pruner.metric(target.kind)))
                    break
                batch = stream.next()
                if batch is None:
                    log.warning("the batches ran out after %d steps before reaching %s", step, target.describe(goal))
                    break
                last_lr = _unpack(batch, device, dtype)[0]
                loss = fisher_step(pruner, batch, teacher, optimizer=optimizer, distill_weight=distill_weight,
                                   fisher_noise=fisher_noise)
                step += 1
                if step % prune_every == 0:
                    events = pruner.step_many(prunes_per_step, step, stop=lambda e: e.metrics[target.kind] <= goal)
                    if not events:
                        log.warning("nothing left to prune at step %d (every group at its minimum width)", step)
                        break
                    for event in events:
                        history.append(event)
                        if event.block is not None:
                            pruner.detach()
                            pruner = pruner.without_blocks([event.block])
                            model = pruner.model.train()
                            optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
                            pruner.attach()
                            log.info("step %d: removed block %s, %s %s", step, event.block, target.kind,
                                     _fmt(target.kind, event.metrics[target.kind]))
                        else:
                            log.info("step %d: pruned %d channel(s) of %s -> width %d, %s %s", step,
                                     len(event.channels), event.name, event.width, target.kind,
                                     _fmt(target.kind, event.metrics[target.kind]))
                        if on_prune is not None:
                            on_prune(event)
                    met = events[-1].metrics[target.kind] <= goal
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{target.kind} {pruner.metric(target.kind) / initial:.3f}, "
                                        f"loss {float(loss.detach().mean()):.4g}", refresh=False)
                if step % checkpoint_every == 0:
                    checkpoint({"phase": "prune", "model": model.state_dict(), "optimizer": optimizer.state_dict()})
        finally:
            pruner.detach()
        prune_seconds = time.perf_counter() - t0
        n_steps = step - first_step
        if bar is not None:
            bar.close()
        if last_lr is None:
            batch = stream.next()
            last_lr = _unpack(batch, device, dtype)[0] if batch is not None else None
        verify_x = last_lr[:1] if (verify and last_lr is not None) else None
        dropped = [e.block for e in history if e.block]
        small, config = pruner.export(None if dropped else base_cfg, verify=verify_x)
        config.blocks_removed = dropped
        config.complexity["before"] = before
        ft_step = 0
        ft_opt_state = None
    else:
        n_steps = 0
        config = PrunedConfig.from_dict(ft_state["config"])
        small = rebuild(config, ft_state["model"]).to(device)
        ft_step = int(ft_state["ft_step"])
        ft_opt_state = ft_state["optimizer"]
    met = pruner.metric(target.kind) <= goal
    after = pruner.complexity()
    small.train()
    ft_params = [p for p in small.parameters() if p.requires_grad]
    ft_opt = torch.optim.Adam(ft_params, lr=finetune_lr or lr)
    if ft_opt_state is not None:
        ft_opt.load_state_dict(ft_opt_state)
    phase = "finetune"

    def ft_checkpoint() -> None:
        checkpoint({"phase": "finetune", "model": small.state_dict(), "optimizer": ft_opt.state_dict(),
                    "config": config.to_dict(), "ft_step": ft_step})

    if finetune_steps > ft_step:
        fbar = None
        if progress:
            from tqdm.auto import tqdm

            fbar = tqdm(total=finetune_steps, initial=ft_step, desc="fine-tune", unit="step", leave=False)
        while ft_step < finetune_steps:
            batch = stream.next()
            if batch is None:
                log.warning("the batches ran out after %d fine-tuning steps", ft_step)
                break
            x, hr = _unpack(batch, device, dtype)
            with torch.no_grad():
                t_out = teacher(x) if (distill_weight or hr is None) else None
            if hr is None and not distill_weight:
                raise UserInputError("LR-only batches need distill_weight > 0 (there is no HR to compare to).")
            loss = _loss(small(x), hr, t_out, distill_weight)
            ft_opt.zero_grad(set_to_none=True)
            loss.mean().backward()
            ft_opt.step()
            ft_step += 1
            if fbar is not None:
                fbar.update(1)
                fbar.set_postfix_str(f"loss {float(loss.detach().mean()):.4g}", refresh=False)
            if ft_step % checkpoint_every == 0:
                ft_checkpoint()
        if fbar is not None:
            fbar.close()
    if ckpt_dir is not None:
        ft_checkpoint()
    small.eval()
    seconds = time.perf_counter() - start_time
    return PruneResult(model=small, config=config, target=target, target_value=goal, target_met=met, before=before,
                       after=after, steps=step, finetune_steps=ft_step, history=history,
                       groups=pruner.graph.groups, seconds=seconds,
                       seconds_per_step=prune_seconds / n_steps if n_steps else math.nan)
