"""RLFN-Rep: RLFN whose 3x3 convs are re-parameterizable (`RepConv`) at training time.

At training time ``conv_1``, ``conv_2`` and every block's ``c1_r`` / ``c2_r`` / ``c3_r`` are `RepConv`
(3x3 + 1x1 + identity where shapes allow + ECB expand-squeeze). `reparameterize()` (the same as
``edgesr.transforms.reparameterize(model, passes=["repconv"])``) folds each into one ``nn.Conv2d`` at the
same path, after which the model *is* an RLFN: identical state_dict keys and shapes, loadable strictly into
``create_model("rlfn")``. ``create_model("rlfn_rep", deploy=True)`` builds that folded form directly.
ESA's convs and the upsampler stay plain (ESA's stride-2 conv has no same-size identity; keeping them
plain keeps the folded model exactly RLFN).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgesr.layers.reparam import ReparamConv
from edgesr.layers.repconv import convert_to_repconv
from edgesr.models.detect import Candidate, Shapes, ranked, register_detector
from edgesr.models.registry import register_model
from edgesr.models.rlfn import DEFAULTS as RLFN_DEFAULTS
from edgesr.models.rlfn import RLFN, read_rlfn_config

if TYPE_CHECKING:
    from edgesr.transforms import FoldReport

_PAPER = ("RLFN (Kong et al., CVPRW 2022) trained with re-parameterizable convs (RepVGG, CVPR 2021; "
          "ECB, ACM MM 2021)")


class RepModelMixin:
    """`deploy` and `reparameterize()` for models built from re-parameterizable blocks (`ReparamConv`:
    RepConv, Conv3XC, EDBB)."""

    @property
    def deploy(self) -> bool:
        """True once no training-time block is left (folded, or built with ``deploy=True``)."""
        return not any(isinstance(m, ReparamConv) and not m.deploy
                       for m in self.modules())  # type: ignore[attr-defined]

    def reparameterize(self) -> FoldReport:
        """Fold every re-parameterizable block into a plain ``nn.Conv2d`` at the same path, in place. Idempotent.

        Same as ``edgesr.transforms.reparameterize(model, passes=["repconv"])``: afterwards the model has
        the plain architecture's state_dict. Run the full ``edgesr.transforms.reparameterize(model)`` for
        the export-time folds (value scaling, ...).
        """
        from edgesr.transforms import reparameterize

        return reparameterize(self, passes=["repconv"])  # type: ignore[arg-type]


class RLFNRep(RepModelMixin, RLFN):
    """RLFN with RepConv 3x3s. Args as `RLFN`, plus:

    Args:
        deploy: build the folded (plain RLFN) form directly.
        expand_ratio: width of RepConv's expand-squeeze branch (multiple of the conv's output channels).
    """

    def __init__(self, *args: Any, deploy: bool = False, expand_ratio: float = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not deploy:
            paths = ["conv_1", "conv_2"] + [f"block_{i}.{c}" for i in range(1, self.num_blocks + 1)
                                             for c in ("c1_r", "c2_r", "c3_r")]
            convert_to_repconv(self, paths, expand_ratio)


@register_model("rlfn_rep", scales=(2, 3, 4), input_range=255.0, paper=_PAPER,
                description="RLFN (52 ch, 6 RLFB) with RepConv 3x3s for training; folds to plain RLFN")
def rlfn_rep(scale: int = 4, **cfg: Any) -> RLFNRep:
    return RLFNRep(**{**DEFAULTS["rlfn_rep"], "upscale": scale, **cfg})


DEFAULTS = {"rlfn_rep": {**RLFN_DEFAULTS["rlfn"], "expand_ratio": 2}}


def expand_ratio(shapes: Shapes, path: str) -> float:
    """A training-time RepConv's expand-squeeze width as a multiple of its output channels (0: none)."""
    mid = shapes.dim(f"{path}.expand.weight", 0) or 0
    out = shapes[f"{path}.conv_kxk.weight"][0]
    ratio = mid / out
    return int(ratio) if ratio == int(ratio) else ratio


@register_detector("rlfn_rep")
def detect(shapes: Shapes) -> list[Candidate]:
    """The training-time form only: folded (deploy) weights are plain RLFN's and detected as such."""
    if "conv_1.conv_kxk.weight" not in shapes:
        return []
    config, scale = read_rlfn_config(shapes, conv="{}.conv_kxk")
    if not scale:
        return []
    return ranked({**config, "expand_ratio": expand_ratio(shapes, "conv_1")}, scale, DEFAULTS)


rlfn_rep.tiny_cfg = {"feature_channels": 8, "num_blocks": 1, "esa_channels": 4}  # for fast tests
