"""Boxes and domains: uniform points drawn into a caller's buffer, bound limits, spreading over the inputs."""

from __future__ import annotations

import numpy as np
import pytest

from exactcompress.engine.domain import MAX_BOUND, Box, Domain
from exactcompress.errors import InputError

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


def test_only_a_scalar_box_is_spread_over_the_inputs():
    one_feature = (Box(np.array([0.1]), np.array([0.4])),)
    spread = Domain("box", one_feature, source="--lower 0.1 --upper 0.4").broadcast(4)
    np.testing.assert_array_equal(spread.boxes[0].lower, np.full(4, 0.1))
    for kind in ("data", "linf-balls"):
        with pytest.raises(InputError, match=r"^x\.npy: has 1 features but the network takes 4 inputs$"):
            Domain(kind, one_feature, source="x.npy").broadcast(4)
        assert Domain(kind, one_feature, source="x.npy").broadcast(1).dim == 1


@pytest.mark.parametrize("lower, upper, message", [
    ([-1e308, 0.0], [1e308, 1.0], r"'lower' bound -1e\+308 at feature 0 exceeds 1e\+15"),
    ([0.0, 0.0], [1.0, 1e200], r"'upper' bound 1e\+200 at feature 1 exceeds 1e\+15"),
], ids=["1e308", "1e200"])
def test_bounds_beyond_the_limit_are_refused(lower, upper, message):
    with pytest.raises(ValueError, match=message):
        Box(np.array(lower), np.array(upper))
    assert Box(np.full(2, -MAX_BOUND), np.full(2, MAX_BOUND)).dim == 2


def test_points_fit_a_network_whose_shape_differs_only_by_axes_of_size_one():
    from exactcompress.engine.domain import point_shape_fits

    for fitting in ((28, 28), (28, 28, 1), (1, 28, 28), None):
        assert point_shape_fits(fitting, (1, 28, 28)), fitting
    assert point_shape_fits((8, 8, 3), (64 * 3,))  # an MLP takes any points flattened as given
    assert not point_shape_fits((8, 8, 3), (3, 8, 8)) and not point_shape_fits((2, 8), (1, 4, 4))


@pytest.mark.parametrize("round_trip", ["pickle", "deepcopy"])
def test_an_unpickled_box_is_read_only(round_trip):
    """Unpickled copies of a box's frozen bounds were writeable."""
    import copy
    import pickle

    box = Box(np.zeros(3), np.ones(3))
    again = pickle.loads(pickle.dumps(box)) if round_trip == "pickle" else copy.deepcopy(box)
    np.testing.assert_array_equal(again.upper, box.upper)
    assert not again.lower.flags.writeable and not again.upper.flags.writeable
