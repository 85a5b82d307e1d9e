"""Plain JSON values from what reports and sidecars hold (paths, tuples, numpy scalars, inf)."""
from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """A copy of `value` that ``json.dumps(..., allow_nan=False)`` writes.

    Non-finite floats become None (strict JSON has no NaN or Infinity; readers take null PSNR as
    "identical"), mapping keys become strings, tuples lists, paths text, and numpy scalars and arrays
    their Python values. Anything else is returned as it is, so json still refuses what it cannot write.
    """
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value
