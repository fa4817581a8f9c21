"""Progress messages: long work reports what it is doing as short strings (a stage, a count left)."""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str], None]
"""Called with one short line per step, e.g. ``"witness search"`` or ``"MILPs for layer 1: 4 sign questions"``."""


def ignore(message: str) -> None:
    """The ``Progress`` that discards every message."""
