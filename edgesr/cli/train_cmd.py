"""`edgesr train`: train or fine-tune a registered model on a folder of HR images."""
from __future__ import annotations

from pathlib import Path

import click

from edgesr.cli.common import force_option


def _parse_model_cfg(items: tuple[str, ...]) -> dict:
    import ast

    from edgesr.errors import UserInputError

    cfg = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--model-cfg expects KEY=VALUE, got {item!r}.")
        try:
            cfg[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            cfg[key.strip()] = value.strip()
    return cfg


@click.command("train")
@click.argument("model_name", metavar="MODEL")
@click.option("--hr", "hr_dir", required=True, type=click.Path(path_type=Path), help="Folder of HR training images.")
@click.option("--lr-dir", type=click.Path(path_type=Path), default=None,
              help="Matching LR images (default: MATLAB bicubic of the HR, computed once per image).")
@click.option("--scale", "-s", type=int, default=None, help="Upscaling factor (default: the variant's, else 4).")
@click.option("--patch", type=int, default=64, show_default=True, help="LR patch size (HR patch = patch x scale).")
@click.option("--batch", type=int, default=16, show_default=True, help="Global batch (split over torchrun processes).")
@click.option("--steps", type=int, default=1000, show_default=True, help="Optimizer steps per stage.")
@click.option("--init", default=None, metavar="FILE|NAME", help="Initial weights: checkpoint file or pretrained name.")
@click.option("--init-cross-scale", is_flag=True,
              help="Allow --init weights of another scale: load all but the upsampler (EDSR's x2 -> x4 init).")
@click.option("--loss", type=click.Choice(["l1", "mae", "mse", "l2"]), default="l1", show_default=True,
              help="Pixel loss.")
@click.option("--contrastive", type=float, default=0.0, show_default=True,
              help="Weight of RLFN's contrastive loss (0: off; 0.1 suggested).")
@click.option("--teacher", default=None, metavar="MODEL", help="Teacher for L1 distillation (e.g. rlfn_x4).")
@click.option("--teacher-weights", default=None, metavar="FILE|NAME", help="Teacher weights (default: official).")
@click.option("--distill", type=float, default=0.0, show_default=True, help="Weight of the distillation loss.")
@click.option("--warm-start-stages", "stages", type=int, default=1, show_default=True,
              help="RLFN warm-start stages: each starts from the previous one's weights with a fresh optimizer.")
@click.option("--lr", type=float, default=5e-4, show_default=True, help="Adam learning rate.")
@click.option("--schedule", type=click.Choice(["step", "cosine", "constant"]), default="step", show_default=True,
              help="step: halve every --lr-step steps (default steps/5); cosine: anneal to 1e-7.")
@click.option("--lr-step", type=int, default=None, help="Steps between LR halvings (step schedule).")
@click.option("--ema", type=float, default=None, help="EMA decay of the weights (e.g. 0.999); off by default.")
@click.option("--grad-clip", type=float, default=None, help="Clip the gradient norm to this value.")
@click.option("--val", "val_dir", type=click.Path(path_type=Path), default=None,
              help="Validation dataset folder (HR/ [+ LR_bicubic/X{s}/] or HR images): Y-PSNR, crop = scale.")
@click.option("--val-every", type=int, default=None,
              help="Validate every K steps (default ~10x per stage; 0: at stage ends).")
@click.option("--save-every", type=int, default=None, help="Checkpoint every K steps (default ~10x per stage).")
@click.option("--log-every", type=int, default=10, show_default=True, help="Write a train log line every K steps.")
@click.option("--limit", type=int, default=None, help="Use only the first N HR images.")
@click.option("--cache", type=click.Choice(["auto", "ram", "none"]), default="auto", show_default=True,
              help="Decode the training images once into RAM (auto: when they fit in 8 GiB).")
@click.option("--workers", type=int, default=None,
              help="DataLoader workers per process (default: 0 on CPU, <= 8 on CUDA).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-augment", is_flag=True, help="No random flips/rotations.")
@click.option("--model-cfg", "model_cfg", multiple=True, metavar="KEY=VALUE",
              help="Architecture hyper-parameter, e.g. feature_channels=32 (repeatable).")
@click.option("--no-fold", is_flag=True, help="Do not re-parameterize RepConv blocks at the end.")
@click.option("--tensorboard/--no-tensorboard", default=None, help="TensorBoard events (default: if installed).")
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue from OUTPUT/checkpoints/last.pt (a new run if none yet).")
@force_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(model_name: str, hr_dir: Path, lr_dir: Path | None, scale: int | None, patch: int, batch: int,
            steps: int, init: str | None, init_cross_scale: bool, loss: str, contrastive: float,
            teacher: str | None, teacher_weights: str | None, distill: float, stages: int, lr: float,
            schedule: str, lr_step: int | None, ema: float | None, grad_clip: float | None, val_dir: Path | None,
            val_every: int | None, save_every: int | None, log_every: int, limit: int | None, cache: str,
            workers: int | None, device: str, seed: int, no_augment: bool, model_cfg: tuple[str, ...],
            no_fold: bool, tensorboard: bool | None, output_dir: Path, resume: bool, force: bool,
            quiet: bool) -> None:
    """Train or fine-tune MODEL on patches of the images in --hr.

    \b
    Examples:
      edgesr train rlfn_s --hr DIV2K/HR --scale 2 --patch 64 --batch 64 --steps 200000 \\
          --contrastive 0.1 --warm-start-stages 3 --val Set5 -o runs/rlfn_s_x2
      edgesr train rlfn_x4 --hr DIV2K/HR --steps 2000 --lr 1e-5 --val Set5 -o runs/ft   # fine-tune
      edgesr train edsr_baseline --scale 4 --init runs/x2/model_final.pth --init-cross-scale ...
      torchrun --nproc_per_node=4 --standalone -m edgesr.cli.main train rlfn ...        # DDP
    """
    from edgesr.train import TrainConfig, train
    from edgesr.train.distributed import _env_int

    config = TrainConfig(
        model=model_name, hr_dir=hr_dir, lr_dir=lr_dir, scale=scale, patch=patch, batch=batch, steps=steps,
        init=init, init_cross_scale=init_cross_scale, loss=loss, contrastive=contrastive, teacher=teacher,
        teacher_weights=teacher_weights, distill=distill, stages=stages, lr=lr, schedule=schedule,
        lr_step=lr_step, ema=ema, grad_clip=grad_clip, val_dir=val_dir, val_every=val_every,
        save_every=save_every, log_every=log_every, limit=limit, cache=cache, workers=workers, device=device,
        seed=seed, augment=not no_augment, model_cfg=_parse_model_cfg(model_cfg), fold=not no_fold,
        tensorboard=tensorboard, output_dir=output_dir, resume=resume, force=force, progress=not quiet,
    )
    result = train(config)
    if _env_int("RANK", 0) != 0:
        return
    if result.init:
        click.echo(f"init: {result.init['mode']} from {result.init['source']}"
                   + (f" (skipped {', '.join(result.init['skipped'])})" if result.init.get("skipped") else ""))
    for rec in result.val_history:
        click.echo(f"  step {rec['step']:>7}  stage {rec['stage']}  PSNR {rec['psnr']:.4f} dB  SSIM {rec['ssim']:.5f}")
    summary = f"trained {result.steps} steps in {result.seconds:.1f} s"
    if result.best_psnr is not None:
        summary += f"; best PSNR {result.best_psnr:.4f} dB at step {result.best_step}"
    click.echo(summary)
    click.echo(f"weights: {result.final_weights}")
    if result.folded_weights:
        click.echo(f"folded weights: {result.folded_weights} (max |diff| {result.fold['max_abs_diff']:.2e})")
