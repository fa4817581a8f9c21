"""Uniform points of a box, drawn into a caller's buffer."""

from __future__ import annotations

import numpy as np
import pytest

from exactcompress.engine.domain import Box

BOXES = {
    "unit": (np.zeros(7), np.ones(7)),
    "narrow and shifted": (np.full(7, 5.0), np.full(7, 5.1)),
    "narrow at 0": (np.zeros(7), np.full(7, 0.25)),
    "width 1 shifted": (np.full(7, -1.0), np.zeros(7)),
    "per feature": (np.linspace(-2.0, 1.0, 7), np.linspace(-1.0, 4.0, 7)),
}


@pytest.mark.parametrize("name", BOXES)
def test_points_drawn_in_place_are_the_textbook_draws_and_lie_in_the_box(name):
    lower, upper = BOXES[name]
    box = Box(lower, upper)
    buffer = np.full((30, 7), np.nan)
    drawn = box.sample_into(buffer[:25], np.random.default_rng(4))
    assert np.shares_memory(drawn, buffer) and np.isnan(buffer[25:]).all()  # in place, and only the rows asked
    textbook = lower + np.random.default_rng(4).random((25, 7)) * (upper - lower)
    np.testing.assert_array_equal(drawn, textbook)  # the same values, bit for bit, as drawing afresh
    np.testing.assert_array_equal(box.sample(25, np.random.default_rng(4)), textbook)
    assert box.contains(drawn).all()
