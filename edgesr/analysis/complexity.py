"""Model complexity with the NTIRE efficient-SR definitions.

* ``macs``: multiply-accumulates of every convolution call (Conv2d, ConvTranspose2d, functional
  ``F.conv2d`` alike) plus ``nn.Linear`` calls; bias additions are not counted. The NTIRE reports call
  this number "FLOPs".
* ``acts``: elements of every convolution output (NTIRE's "#Acts"), batch 1.
* ``convs``: number of convolution *calls*; a conv module used twice counts twice (NTIRE's "#Conv").
* ``params``: all parameters (shared ones once); ``params_learned`` leaves out the frozen
  `MeanShift` layers of EDSR-PyTorch models, which is how those papers count.
* ``ntire_flops``: what the NTIRE 2022 ESR challenge's own counter (``utils/model_summary.py`` of
  ofsoundof/NTIRE2022_ESR) reports as "FLOPs": ``macs`` plus one per output element of every
  ReLU / PReLU / ELU / LeakyReLU / ReLU6 *module* call, plus 2 (affine) or 1 per BatchNorm2d output
  element. The "MACs (G)" column of the team's reference table is this number; pure conv MACs are
  0.17-0.25% lower for RLFN/RFDN/IMDN (the LeakyReLUs).
* ``fvcore_flops``: what fvcore's ``FlopCountAnalysis`` (default handles) reports, the counter of the NTIRE
  2023-2025 ESR challenges (EFDN's "16.70 G"): ``macs`` plus 4 per output element of bilinear upsampling
  and grid sampling, 1 per output element of nearest upsampling, 1 per input element of
  ``nn.AdaptiveAvgPool2d`` modules, and for norm modules 2 (affine) or 1 per element (eval BatchNorm) or
  5 / 4 (GroupNorm, LayerNorm, InstanceNorm). Activations and other element-wise ops count 0.

Convolutions are counted at the ATen level (``aten.convolution``) with a dispatch mode, so a conv made
with ``F.conv2d`` inside a custom block counts as well as an ``nn.Conv2d``; each call is attributed to the
innermost module that was running. The forward runs on the ``meta`` device (no arithmetic, no memory)
and falls back to a real batch-1 forward of zeros when a model cannot run on ``meta``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from edgesr.errors import UserInputError
from edgesr.utils.shapes import parse_hw

log = logging.getLogger(__name__)

__all__ = ["Complexity", "LayerCost", "profile_complexity"]


@dataclass(frozen=True)
class LayerCost:
    """One convolution (or linear) call."""

    name: str  # module path of the innermost module that made the call ("" = the model itself)
    kind: str  # "conv", "conv_transpose" or "linear"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]
    macs: int
    acts: int


@dataclass(frozen=True)
class Complexity:
    """Totals for one forward of a ``1 x in_channels x H x W`` input (see the module docstring)."""

    params: int
    params_learned: int
    macs: int
    acts: int
    convs: int
    input_size: tuple[int, int]
    ntire_flops: int = 0
    fvcore_flops: int = 0
    per_layer: tuple[LayerCost, ...] = field(default=(), repr=False)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def macts(self) -> float:
        return self.acts / 1e6

    def __str__(self) -> str:
        h, w = self.input_size
        return (f"params {self.params:,} | MACs {self.gmacs:.3f} G (NTIRE FLOPs {self.ntire_flops / 1e9:.3f} G, "
                f"fvcore {self.fvcore_flops / 1e9:.3f} G) | #Acts {self.macts:.3f} M | #Conv {self.convs} (input 1x{h}x{w})")


def _fvcore_resampling() -> dict[Any, int]:
    """fvcore's per-output-element FLOPs of the resampling ops it counts (ATen ops as dispatched)."""
    aten = torch.ops.aten
    return {aten.upsample_bilinear2d.default: 4, aten.upsample_nearest2d.default: 1,
            aten.grid_sampler_2d.default: 4}


class _ConvCounter(TorchDispatchMode):
    """Records every aten.convolution call, attributed to the innermost running module, and the
    resampling FLOPs fvcore counts."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names
        self.records: list[LayerCost] = []
        self.resampling = _fvcore_resampling()
        self.fvcore_extra = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        if func in self.resampling:
            self.fvcore_extra += self.resampling[func] * out.numel()
        elif func is torch.ops.aten.convolution.default:
            x, weight = args[0], args[1]
            transposed = bool(args[6]) if len(args) > 6 else bool((kwargs or {}).get("transposed", False))
            kernel = math.prod(weight.shape[2:])
            # weight: [out, in/groups, *k] (conv) or [in, out/groups, *k] (transposed); one MAC per
            # weight tap per output element (conv) or per input element (transposed).
            macs = (x.numel() if transposed else out.numel()) * weight.shape[1] * kernel
            self.records.append(LayerCost(self.names[-1], "conv_transpose" if transposed else "conv",
                                          tuple(x.shape), tuple(out.shape), tuple(weight.shape),
                                          int(macs), int(out.numel())))
        return out


def check_input_size(input_size: Sequence[int] | int) -> tuple[int, int]:
    return parse_hw(input_size, "input_size")


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters outside frozen MeanShift layers)."""
    from edgesr.layers.mean_shift import MeanShift

    frozen = {id(p) for m in model.modules() if isinstance(m, MeanShift) for p in m.parameters()}
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    return total, total - sum(p.numel() for p in params if id(p) in frozen)


_NTIRE_ACTIVATIONS = (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6)
_NORMS_5_4 = (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def _fvcore_module_flops(module: nn.Module, inp: Any, out: torch.Tensor) -> int:
    """fvcore's FLOPs for the pooling / norm modules it counts (see the module docstring)."""
    if isinstance(module, nn.AdaptiveAvgPool2d) and inp and isinstance(inp[0], torch.Tensor):
        return inp[0].numel()
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return out.numel() * (2 if module.affine else 1)
    if isinstance(module, _NORMS_5_4):
        affine = getattr(module, "affine", None)
        affine = getattr(module, "elementwise_affine", False) if affine is None else affine
        return out.numel() * (5 if affine else 4)
    return 0


def _run(model: nn.Module, x: torch.Tensor, names: list[str],
         state: dict[str, Any] | None) -> tuple[list[LayerCost], int, int]:
    """One forward with module-name tracking hooks and the conv counter.

    Returns the conv/linear records, the element count NTIRE's counter adds for activation and
    BatchNorm modules, and what fvcore adds to the MACs.
    """
    paths: dict[int, str] = {}
    for name, module in model.named_modules():
        paths.setdefault(id(module), name)
    linear: list[LayerCost] = []
    elementwise = [0]
    fvcore = [0]

    def pre(module: nn.Module, _inp: Any) -> None:
        names.append(paths.get(id(module), type(module).__name__))

    def post(module: nn.Module, inp: Any, out: Any) -> None:
        if isinstance(module, nn.Linear) and isinstance(out, torch.Tensor):
            linear.append(LayerCost(names[-1], "linear", tuple(inp[0].shape), tuple(out.shape),
                                    tuple(module.weight.shape), int(out.numel() * module.in_features),
                                    int(out.numel())))
        elif isinstance(module, _NTIRE_ACTIVATIONS) and isinstance(out, torch.Tensor):
            elementwise[0] += out.numel()
        elif isinstance(module, nn.BatchNorm2d) and isinstance(out, torch.Tensor):
            elementwise[0] += out.numel() * (2 if module.affine else 1)
        if isinstance(out, torch.Tensor):
            fvcore[0] += _fvcore_module_flops(module, inp, out)
        names.pop()

    handles = []
    for module in {id(m): m for m in model.modules()}.values():
        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    counter = _ConvCounter(names)
    try:
        with torch.no_grad(), counter:
            if state is None:
                model(x)
            else:
                torch.func.functional_call(model, state, (x,), strict=False)
    finally:
        for handle in handles:
            handle.remove()
        del names[1:]
    # Linear layers lower to matmuls (not convolutions), so they come from the hooks; order is by kind.
    return counter.records + linear, elementwise[0], fvcore[0] + counter.fvcore_extra


def profile_complexity(model: nn.Module, input_size: Sequence[int] | int = (256, 256),
                       in_channels: int = 3) -> Complexity:
    """Params, MACs, #Acts and #Conv of `model` for a ``1 x in_channels x H x W`` input.

    Args:
        model: any module taking one NCHW tensor.
        input_size: (height, width) of the input (the NTIRE protocol uses 256x256 LR).
        in_channels: input channels (3 for RGB).

    The model is not modified (it runs in eval mode, on the meta device when possible).
    """
    h, w = check_input_size(input_size)
    ref = next((t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()), None)
    dtype = ref.dtype if ref is not None else torch.float32
    device = ref.device if ref is not None else torch.device("cpu")
    params, params_learned = count_params(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    names: list[str] = [""]
    try:
        try:
            state = {k: torch.empty_like(v, device="meta")
                     for k, v in list(model.named_parameters(remove_duplicate=False))
                     + list(model.named_buffers(remove_duplicate=False))}
            records, elementwise, fvcore = _run(model, torch.empty(1, in_channels, h, w, dtype=dtype,
                                                                   device="meta"), names, state)
        except Exception as exc:  # noqa: BLE001 - meta is an optimisation; a real forward is the truth
            log.debug("meta-device forward failed (%s: %s); profiling with a real forward", type(exc).__name__, exc)
            records, elementwise, fvcore = _run(model, torch.zeros(1, in_channels, h, w, dtype=dtype,
                                                                    device=device), names, None)
    finally:
        for module, mode in modes.items():
            module.train(mode)
    convs = [r for r in records if r.kind != "linear"]
    macs = sum(r.macs for r in records)
    return Complexity(params=params, params_learned=params_learned, macs=macs,
                      acts=sum(r.acts for r in convs), convs=len(convs), input_size=(h, w),
                      ntire_flops=macs + elementwise, fvcore_flops=macs + fvcore, per_layer=tuple(records))
