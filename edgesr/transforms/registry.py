"""Fold-pass registry: every pass has a name users can list, select or skip.

A pass is a `FoldPass` subclass registered with `@register_pass("name", order=...)`; `reparameterize`
runs the registered passes in `order` unless told otherwise. A configured instance (e.g.
``ConvChainPass(max_mac_increase=0.1)``) can be given to `reparameterize(passes=[...])` in place of a name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from edgesr.analysis.complexity import Complexity, profile_complexity
from edgesr.errors import UserInputError, suggest


@dataclass
class FoldContext:
    """What a pass may need besides the model: the profiling input and the current complexity."""

    input_size: tuple[int, int]
    in_channels: int = 3
    _profile: Complexity | None = None

    def profile(self, model: nn.Module, refresh: bool = False) -> Complexity:
        if refresh or self._profile is None:
            self._profile = profile_complexity(model, self.input_size, self.in_channels)
        return self._profile

    def invalidate(self) -> None:
        """Call after changing the model."""
        self._profile = None

    def reuse(self, profile: Complexity) -> Complexity:
        """Declare `profile` current again (the model did not change)."""
        self._profile = profile
        return profile


@dataclass
class PassOutcome:
    """What a pass did: `changes` rewrites, of which the conv calls they remove, and notes."""

    changes: int = 0
    convs_removed: int = 0
    notes: list[str] = field(default_factory=list)


class FoldPass:
    """Base class. `apply` edits the model in place and must change nothing on a second run."""

    name: str = ""
    description: str = ""

    def apply(self, model: nn.Module, ctx: FoldContext) -> PassOutcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_PASSES: dict[str, tuple[int, type[FoldPass]]] = {}


def register_pass(name: str, order: int) -> Callable[[type[FoldPass]], type[FoldPass]]:
    """Class decorator registering a `FoldPass` under `name`; `order` sorts the default pipeline."""

    def wrap(cls: type[FoldPass]) -> type[FoldPass]:
        if name in _PASSES:
            raise ValueError(f"fold pass {name!r} registered twice")
        cls.name = name
        _PASSES[name] = (order, cls)
        return cls

    return wrap


def list_passes() -> list[str]:
    """Registered pass names in their default order."""
    _load()
    return [name for name, _ in sorted(_PASSES.items(), key=lambda kv: kv[1][0])]


def get_pass(name: str) -> FoldPass:
    """A default-configured instance of the pass called `name`."""
    _load()
    if name not in _PASSES:
        raise UserInputError(f"unknown fold pass {name!r}.{suggest(name, list(_PASSES))} "
                             f"Valid passes: {', '.join(list_passes())}.")
    return _PASSES[name][1]()


def _load() -> None:
    import edgesr.transforms.passes  # noqa: F401 - registers the built-in passes
