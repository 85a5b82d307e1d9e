"""Training and fine-tuning: patches, the seed papers' losses and schedules, checkpoints, DDP.

    from edgesr.train import TrainConfig, train

    result = train(TrainConfig("rlfn_s", hr_dir="DIV2K/HR", scale=2, patch=64, batch=16, steps=100_000,
                               val_dir="Set5", contrastive=0.1, stages=3, output_dir="runs/rlfn_s_x2"))
    print(result.best_psnr, result.final_weights)

The recipes (see `TrainConfig`): RLFN (Adam 5e-4 halved every steps/5, L1 + optional contrastive loss
with a random shallow Tanh extractor, warm-start stages), EDSR (L1, x2 -> x4 initialisation with
``init_cross_scale``), EMA of weights, distillation to a teacher. ``torchrun --nproc_per_node=N`` runs
the same code under DistributedDataParallel.
"""
from __future__ import annotations

from edgesr.train.config import TrainConfig
from edgesr.train.data import PatchSampler, TrainPatchDataset, lr_patch_from_hr
from edgesr.train.initialize import InitReport, load_init_weights
from edgesr.train.losses import ContrastiveLoss, ShallowTanhExtractor, SRLoss, pixel_loss
from edgesr.train.state import EMA
from edgesr.train.trainer import TrainResult, train

__all__ = [
    "EMA",
    "ContrastiveLoss",
    "InitReport",
    "PatchSampler",
    "SRLoss",
    "ShallowTanhExtractor",
    "TrainConfig",
    "TrainPatchDataset",
    "TrainResult",
    "load_init_weights",
    "lr_patch_from_hr",
    "pixel_loss",
    "train",
]
