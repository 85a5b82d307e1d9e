"""Fisher pruning of coupled channels into physically smaller models.

Pipeline (each step usable on its own)::

    from edgesr.prune import Target, find_groups, format_groups, fisher_prune, save_pruned, load_pruned

    print(format_groups(find_groups(model)))              # what is coupled / frozen
    result = fisher_prune(model, None, batches, Target("flops", ratio=0.9), prune_every=10, round_to=4)
    save_pruned("out/rlfn_pruned", result.model, result.config)
    small = load_pruned("out/rlfn_pruned")                # rebuild(config, state_dict), loaded strictly

* `trace_channels` / `find_groups` — channel groups from the torch.fx graph of any traceable model
  (add/mul coupling, cat/split offsets, PixelShuffle blocks, depthwise convs, frozen I/O channels).
* `Pruner` — shared per-group masks on consumer inputs, Group Fisher accumulation, normalisation by
  memory (ΔM), FLOPs or a latency table, selection with `round_to`, NTIRE complexity of the masked
  state, and `export()` to a sliced module + `PrunedConfig`.
* `fisher_prune` — the schedule (train at low lr, prune every d steps, stop at the target, slice,
  fine-tune), with progress bars, checkpoints and resume; ``depth=True`` also removes whole residual
  blocks (`edgesr.prune.depth`: a Fisher gate per block, normalised by what the block's removal saves)
  and ``prunes_per_step=k`` takes up to k prunes (distinct groups) per decision.
* `fisher_agreement` (`edgesr.prune.stability`) — rank agreement of two independent Fisher estimates.
* A pruned folder continues training with ``edgesr train --init PRUNED_DIR``.

Design choices: channels feeding a split/chunk/slice with constant sizes (DRN's ``y[:, :d]``) are frozen,
because those sizes live in the module's code; a split whose sizes are its module's config
(`edgesr.models.widths.ConfigSplits`: IMDN's blocks, ``splits=`` in `create_model`) is pruned piece by
piece and the pruned sizes are written into the config; cat offsets (RFDN) are handled. A conv module called more than once is pruned identically in every call.
"""
from edgesr.prune.data import crop_batches
from edgesr.prune.importance import GroupFisher, Importance, MagnitudeImportance
from edgesr.prune.pruner import METRICS, NORMALIZATIONS, PruneEvent, Pruner
from edgesr.prune.schedule import CHECKPOINT_NAME, PruneResult, Target, fisher_prune, fisher_step
from edgesr.prune.slicing import (
    PrunedConfig,
    load_pruned,
    read_pruned_config,
    rebuild,
    resolve_base_config,
    save_pruned,
    slice_model,
)
from edgesr.prune.trace import (
    ChannelGraph,
    ChannelGroup,
    GroupMember,
    UnsupportedOpError,
    find_groups,
    format_groups,
    trace_channels,
)

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS",
    "NORMALIZATIONS",
    "ChannelGraph",
    "ChannelGroup",
    "GroupFisher",
    "GroupMember",
    "Importance",
    "MagnitudeImportance",
    "PruneEvent",
    "PruneResult",
    "PrunedConfig",
    "Pruner",
    "Target",
    "UnsupportedOpError",
    "crop_batches",
    "find_groups",
    "fisher_prune",
    "fisher_step",
    "format_groups",
    "load_pruned",
    "read_pruned_config",
    "rebuild",
    "resolve_base_config",
    "save_pruned",
    "slice_model",
    "trace_channels",
]
