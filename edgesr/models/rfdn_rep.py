"""RFDN-Rep: RFDN whose 3x3 convs are re-parameterizable (`RepConv`) at training time.

At training time ``fea_conv``, ``LR_conv`` and every block's ``c1_r`` / ``c2_r`` / ``c3_r`` / ``c4`` are
`RepConv`. The shallow residual convs ``c*_r`` already have an identity outside (``c*_r(x) + x``), so their
RepConv has no identity branch of its own. `reparameterize()` folds each RepConv into one ``nn.Conv2d`` at
the same path: the model then has exactly RFDN's state_dict keys and shapes (loadable strictly into
``create_model("rfdn")``). ``create_model("rfdn_rep", deploy=True)`` builds that form directly.
"""
from __future__ import annotations

from typing import Any

from edgesr.layers.repconv import convert_to_repconv
from edgesr.models.detect import Candidate, Shapes, ranked, register_detector
from edgesr.models.registry import register_model
from edgesr.models.rfdn import DEFAULTS as RFDN_DEFAULTS
from edgesr.models.rfdn import RFDN, read_rfdn_config
from edgesr.models.rlfn_rep import RepModelMixin, expand_ratio

_PAPER = ("RFDN (Liu et al., ECCVW 2020) trained with re-parameterizable convs (RepVGG, CVPR 2021; "
          "ECB, ACM MM 2021)")


class RFDNRep(RepModelMixin, RFDN):
    """RFDN with RepConv 3x3s. Args as `RFDN`, plus `deploy` and `expand_ratio` (see `RLFNRep`)."""

    def __init__(self, *args: Any, deploy: bool = False, expand_ratio: float = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not deploy:
            blocks = [f"B{i}" for i in range(1, self.num_modules + 1)]
            convert_to_repconv(self, [f"{b}.{c}" for b in blocks for c in ("c1_r", "c2_r", "c3_r")],
                               expand_ratio, identity=False)
            convert_to_repconv(self, ["fea_conv", "LR_conv"] + [f"{b}.c4" for b in blocks], expand_ratio)


@register_model("rfdn_rep", scales=(2, 3, 4), input_range=255.0, paper=_PAPER,
                description="RFDN (50 ch, 4 RFDB) with RepConv 3x3s for training; folds to plain RFDN")
def rfdn_rep(scale: int = 4, **cfg: Any) -> RFDNRep:
    return RFDNRep(**{**DEFAULTS["rfdn_rep"], "upscale": scale, **cfg})


DEFAULTS = {"rfdn_rep": {**RFDN_DEFAULTS["rfdn"], "expand_ratio": 2}}


@register_detector("rfdn_rep")
def detect(shapes: Shapes) -> list[Candidate]:
    """The training-time form only: folded (deploy) weights are plain RFDN's and detected as such."""
    if "fea_conv.conv_kxk.weight" not in shapes:
        return []
    config, scale = read_rfdn_config(shapes, conv="{}.conv_kxk")
    if not scale:
        return []
    return ranked({**config, "expand_ratio": expand_ratio(shapes, "fea_conv")}, scale, DEFAULTS)


rfdn_rep.tiny_cfg = {"nf": 8, "num_modules": 2}  # for fast tests
