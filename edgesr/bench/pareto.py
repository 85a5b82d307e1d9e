"""The Pareto front of latency (lower is better) against quality (higher is better).

One owner for the definition, shared by the benchmark plots and `edgesr optimize`: a point is on the front
when no other point is at least as fast and at least as good, and strictly better in one of the two.
"""
from __future__ import annotations

from typing import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (latency, quality) points, fastest first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
