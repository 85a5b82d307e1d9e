"""Parsing of (height, width) sizes given by users: one rule everywhere."""
from __future__ import annotations

import re
from typing import Sequence

from edgesr.errors import UserInputError

_HW = re.compile(r"^\s*(\d+)\s*(?:[xX*,]\s*(\d+))?\s*$")


def parse_hw(value: str | int | Sequence[int], what: str = "size") -> tuple[int, int]:
    """'256x256', '360x640' (HxW), '256', 256 or (h, w) -> (h, w); positive integers only."""
    if isinstance(value, bool):
        raise UserInputError(f"{what} must be HEIGHTxWIDTH (e.g. 256x256), got {value!r}.")
    if isinstance(value, int):
        value = (value, value)
    if isinstance(value, str):
        m = _HW.match(value)
        if not m:
            raise UserInputError(f"{what} must be HEIGHTxWIDTH (e.g. 256x256 or 360x640), got {value!r}.")
        h, w = int(m.group(1)), int(m.group(2) or m.group(1))
    else:
        try:
            h, w = (int(v) for v in value)
        except (TypeError, ValueError):
            raise UserInputError(f"{what} must be (height, width), got {value!r}.") from None
    if h < 1 or w < 1:
        raise UserInputError(f"{what} must be positive, got {h}x{w}.")
    return h, w
