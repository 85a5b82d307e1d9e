"""Several prunes per step on one set of scores, and the Fisher-stability measurement."""
from __future__ import annotations

import pytest
import torch

from edgesr.models import create_model
from edgesr.prune import Pruner, Target, fisher_prune, fisher_step
from edgesr.prune.stability import fisher_agreement

CFG = {"feature_channels": 12, "num_blocks": 2, "esa_channels": 6}


@pytest.fixture(scope="module")
def model_and_batches():
    torch.manual_seed(0)
    model = create_model("rlfn", scale=2, **CFG)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.rand(2, 3, 16, 16, generator=gen), torch.rand(2, 3, 32, 32, generator=gen)) for _ in range(2)]
    return model, batches


def test_step_many_prunes_distinct_groups_then_resets(model_and_batches) -> None:
    model, batches = model_and_batches
    pruner = Pruner(model, round_to=2)
    fisher_step(pruner, batches[0], None)
    events = pruner.step_many(4)
    assert len(events) == 4 and len({e.group for e in events}) == 4
    assert all(len(e.channels) == 2 for e in events)
    assert not pruner.importance.scores  # reset after the round
    fisher_step(pruner, batches[1], None)
    stopped = pruner.step_many(5, stop=lambda e: True)
    assert len(stopped) == 1


@pytest.mark.slow
def test_prunes_per_step_reaches_the_target_in_fewer_steps(model_and_batches) -> None:
    model, batches = model_and_batches
    kw = dict(prune_every=1, round_to=2, base_config=CFG, progress=False, verify=True)
    one = fisher_prune(create_model("rlfn", scale=2, **CFG), None, batches, Target("flops", ratio=0.7), **kw)
    many = fisher_prune(create_model("rlfn", scale=2, **CFG), None, batches, Target("flops", ratio=0.7),
                        prunes_per_step=4, **kw)
    assert one.target_met and many.target_met and many.steps < one.steps


def test_identical_samples_agree_perfectly(model_and_batches) -> None:
    model, batches = model_and_batches
    agree = fisher_agreement(model, batches, batches)
    assert agree.samples == 4 and agree.channels > 0
    assert agree.spearman == pytest.approx(1.0) and agree.bottom_overlap == 1.0
