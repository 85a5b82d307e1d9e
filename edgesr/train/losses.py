"""Training losses on 0..1 RGB: pixel L1/MSE, RLFN's contrastive loss, distillation to a teacher.

RLFN's contrastive loss (Kong et al., CVPRW 2022, sec. 3.3) follows the contrastive regularisation of
AECR-Net but replaces the pretrained VGG-19 by the *first two layers only*, Tanh instead of ReLU, and
random (never trained) weights: features from shallow layers suit PSNR-oriented training. Here::

    phi_1(x) = tanh(conv3x3_1(x))             (3 -> 64 channels)
    phi_2(x) = conv3x3_2(phi_1(x))            (64 -> 64 channels)
    CL = sum_l w_l * mean_i [ L1(phi_l(SR_i), phi_l(HR_i)) / (L1(phi_l(SR_i), phi_l(LRup_i)) + eps) ]

positives are the HR patches, negatives the bicubic-upsampled LR patches (torch bicubic), anchors the
SR output. Choices the paper leaves open, made here:

* the extractor reads the 0..1 images; its weights are PyTorch's default conv init from a fixed seed,
  frozen (``requires_grad=False``) and saved with the training checkpoint;
* equal layer weights ``w = (1, 1)``, and the loss weight (``--contrastive``) is the caller's; 0.1 is
  edgesr's suggested value, not a number from the paper;
* the ratio is taken per image and then averaged (with one image per batch it is the paper's formula),
  which makes the batch loss a mean over images, so DDP's gradient averaging gives exactly the
  gradient of the global batch.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgesr.errors import UserInputError

PIXEL_LOSSES = ("l1", "mae", "mse", "l2")


def pixel_loss(kind: str) -> nn.Module:
    """'l1'/'mae' (EDSR, RLFN) or 'mse'/'l2' (RLFN's last fine-tuning stage)."""
    kind = kind.lower()
    if kind in ("l1", "mae"):
        return nn.L1Loss()
    if kind in ("mse", "l2"):
        return nn.MSELoss()
    raise UserInputError(f"unknown loss {kind!r}; choose one of {', '.join(PIXEL_LOSSES)}.")


class ShallowTanhExtractor(nn.Module):
    """RLFN's randomly initialised, frozen Conv3x3-Tanh-Conv3x3 feature extractor; returns both taps."""

    def __init__(self, in_channels: int = 3, channels: int = 64, seed: int = 0) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # the default conv init, reproducibly; the caller's RNG is restored below
        try:
            self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        finally:
            torch.random.set_rng_state(generator_state)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ShallowTanhExtractor":  # frozen: always in eval mode
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = torch.tanh(self.conv1(x))
        return [f1, self.conv2(f1)]


def _per_image_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).mean(dim=1)


class ContrastiveLoss(nn.Module):
    """RLFN contrastive loss: sum_l w_l * mean_i L1(phi_l(sr), phi_l(hr)) / L1(phi_l(sr), phi_l(lr_up)).

    `forward(sr, hr, lr)` takes the LR batch and upsamples it bicubically to the SR size itself.
    """

    def __init__(self, layer_weights: Sequence[float] = (1.0, 1.0), extractor: nn.Module | None = None,
                 seed: int = 0, eps: float = 1e-7) -> None:
        super().__init__()
        self.extractor = extractor if extractor is not None else ShallowTanhExtractor(seed=seed)
        self.extractor.requires_grad_(False)
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.eps = float(eps)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        lr_up = F.interpolate(lr, size=sr.shape[-2:], mode="bicubic", align_corners=False)
        f_sr = self.extractor(sr)
        with torch.no_grad():
            f_hr = self.extractor(hr)
            f_neg = self.extractor(lr_up)
        if len(f_sr) != len(self.layer_weights):
            raise ValueError(f"extractor returned {len(f_sr)} features for {len(self.layer_weights)} layer weights")
        total = sr.new_zeros(())
        for w, a, p, n in zip(self.layer_weights, f_sr, f_hr, f_neg):
            ratio = _per_image_l1(a, p) / (_per_image_l1(a, n) + self.eps)
            total = total + w * ratio.mean()
        return total


class SRLoss(nn.Module):
    """The training objective: ``pixel(SR, HR) + contrastive * CL + distill * L1(SR, teacher(LR))``.

    Returns (total, parts): parts holds each weighted term as a detached 0-d tensor (for logging;
    converting them to floats only when logging avoids a device sync per step).
    """

    def __init__(self, pixel: str = "l1", contrastive: float = 0.0, distill: float = 0.0,
                 teacher: nn.Module | None = None, contrastive_layer_weights: Sequence[float] = (1.0, 1.0),
                 seed: int = 0) -> None:
        super().__init__()
        if contrastive < 0 or distill < 0:
            raise UserInputError("loss weights must be >= 0.")
        if distill > 0 and teacher is None:
            raise UserInputError("distillation needs a teacher model.")
        self.pixel_kind = pixel
        self.pixel = pixel_loss(pixel)
        self.contrastive_weight = float(contrastive)
        self.distill_weight = float(distill)
        self.contrastive = ContrastiveLoss(contrastive_layer_weights, seed=seed) if contrastive > 0 else None
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()

    def train(self, mode: bool = True) -> "SRLoss":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor,
                lr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rec = self.pixel(sr, hr)
        total = rec
        parts = {self.pixel_kind: rec.detach()}
        if self.contrastive is not None:
            cl = self.contrastive_weight * self.contrastive(sr, hr, lr)
            total = total + cl
            parts["contrastive"] = cl.detach()
        if self.teacher is not None and self.distill_weight > 0:
            with torch.no_grad():
                target = self.teacher(lr)
            dl = self.distill_weight * F.l1_loss(sr, target)
            total = total + dl
            parts["distill"] = dl.detach()
        return total, parts
