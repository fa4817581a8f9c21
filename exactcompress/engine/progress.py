"""Progress: long work reports what it is doing as a short line, and, where it counts questions, how many
of how many are done (the CLI draws a bar with elapsed time and ETA from these)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Called with one short line per step, e.g. ``"witness search"``, and for counted work with ``done`` of
    ``total`` (e.g. ``("per-neuron MILPs, layer 1", 3, 40)``: 3 of 40 sign questions answered)."""

    def __call__(self, message: str, done: int | None = None, total: int | None = None) -> None: ...


def ignore(message: str, done: int | None = None, total: int | None = None) -> None:
    """The ``Progress`` that discards every message."""
