"""Data files for --data and --domain-from-data: .npy, a .npz with one array, or FILE.npz:NAME."""

from __future__ import annotations

import numpy as np
import pytest

from exactcompress.errors import InputError
from exactcompress.io.domain_files import from_data, from_file, load_data, scalar_box


def test_npy_npz_and_named_npz_arrays_load_alike(tmp_path):
    points = np.random.default_rng(0).random((5, 3))
    np.save(tmp_path / "x.npy", points)
    np.savez(tmp_path / "one.npz", anything=points)
    np.savez(tmp_path / "many.npz", points=points, labels=np.arange(5))
    for source in ("x.npy", "one.npz", "many.npz:points"):
        np.testing.assert_array_equal(load_data(tmp_path / source, 3), points)
    box = from_data(str(tmp_path / "many.npz:points"), margin=0.5).boxes[0]
    np.testing.assert_allclose(box.lower, points.min(axis=0) - 0.5)


@pytest.mark.parametrize("source, message", [
    ("many.npz", r"holds 2 arrays \['points', 'labels'\]; name one as .*many.npz:NAME"),
    ("many.npz:point", r"has no array 'point'; it holds \['points', 'labels'\]"),
    ("missing.npz", "no such file"),
    ("text.npy", "cannot read as a .npy or .npz array"),
])
def test_bad_data_files_get_one_line_naming_the_file(tmp_path, source, message):
    np.savez(tmp_path / "many.npz", points=np.zeros((2, 3)), labels=np.arange(2))
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(InputError, match=message) as caught:
        load_data(tmp_path / source)
    assert "\n" not in str(caught.value) and str(tmp_path / source.partition(":")[0]) in str(caught.value)


def test_a_balls_domain_whose_points_file_is_missing_names_the_domain_file_and_its_field(tmp_path):

    domain = tmp_path / "balls.json"
    domain.write_text('{"points": "missing.npy", "epsilon": 0.1}')
    with pytest.raises(InputError, match=r"balls\.json: field 'points': .*missing\.npy: no such file"):
        from_file(domain)


def test_one_feature_data_and_ball_domains_are_not_spread_over_the_inputs(tmp_path):

    np.save(tmp_path / "one_column.npy", np.array([[0.1], [0.4], [0.2]]))
    (tmp_path / "balls.json").write_text('{"points": [[0.3]], "epsilon": 0.1}')
    for domain in (from_data(tmp_path / "one_column.npy"), from_file(tmp_path / "balls.json")):
        with pytest.raises(InputError) as caught:
            domain.broadcast(4)
        assert str(caught.value) == f"{domain.source}: has 1 features but the network takes 4 inputs"
    assert scalar_box(0.0, 1.0).broadcast(4).dim == 4


def test_a_domain_file_mixing_box_and_ball_fields_is_refused_naming_the_fields(tmp_path):

    domain = tmp_path / "mixed.json"
    domain.write_text('{"points": [[0.3, 0.5]], "epsilon": 0.1, "lower": 0, "upper": 1}')
    with pytest.raises(InputError) as caught:
        from_file(domain)
    assert str(caught.value).startswith(f"{domain}: mixes box field(s) ['lower', 'upper'] with L∞-ball field(s) "
                                        "['epsilon', 'points']") and "\n" not in str(caught.value)


@pytest.mark.parametrize("points", ["[]", "[[]]"])
def test_a_balls_domain_without_points_says_it_holds_none(tmp_path, points):

    domain = tmp_path / "balls.json"
    domain.write_text(f'{{"points": {points}, "epsilon": 0.1}}')
    with pytest.raises(InputError, match=r"balls\.json: field 'points' holds no points$"):
        from_file(domain)


def test_huge_finite_bounds_are_refused_naming_the_flag_or_file_and_field(tmp_path):

    with pytest.raises(InputError, match=r"^--lower/--upper: 'lower' bound -1e\+308 at feature 0 exceeds 1e\+15"):
        scalar_box(-1e308, 1e308)
    (tmp_path / "box.json").write_text('{"lower": 0, "upper": [1, 1e200]}')
    with pytest.raises(InputError, match=r"box\.json: 'upper' bound 1e\+200 at feature 1 exceeds 1e\+15"):
        from_file(tmp_path / "box.json")
    (tmp_path / "balls.json").write_text('{"points": [[0.5]], "epsilon": 1e300}')
    with pytest.raises(InputError, match=r"balls\.json: 'lower' bound -1e\+300 at feature 0 exceeds 1e\+15"):
        from_file(tmp_path / "balls.json")
    np.save(tmp_path / "x.npy", np.array([[0.0], [1.0]]))
    with pytest.raises(InputError, match=r"x\.npy: 'lower' bound -1e\+20 at feature 0 exceeds 1e\+15"):
        from_data(tmp_path / "x.npy", margin=1e20)


def test_channels_last_points_are_refused_for_a_network_taking_channels_first(tmp_path):
    """(n, H, W, C) images were flattened as given, so a CNN's domain from them described other inputs (a neuron
    was called stable that is not on the user's images, and the compressed model differed there)."""
    images = np.random.default_rng(0).random((20, 2, 3, 3))  # (n, C, H, W) as torch takes them
    np.save(tmp_path / "first.npy", images)
    np.save(tmp_path / "last.npy", images.transpose(0, 2, 3, 1))
    np.save(tmp_path / "flat.npy", images.reshape(20, -1))
    (tmp_path / "balls.json").write_text('{"points": "last.npy", "epsilon": 0.1}')
    for domain in (from_data(tmp_path / "first.npy"), from_data(tmp_path / "flat.npy")):
        domain.check_dim(18, (2, 3, 3))
    from_data(tmp_path / "last.npy").check_dim(18, (18,))  # an MLP takes the points flattened as given
    for domain in (from_data(tmp_path / "last.npy"), from_file(tmp_path / "balls.json")):
        with pytest.raises(InputError, match=r"holds points of shape \(3, 3, 2\) but the network takes inputs of "
                                             r"shape \(2, 3, 3\) \(channels first, as torch\)"):
            domain.broadcast(18, (2, 3, 3))
    np.testing.assert_array_equal(load_data(tmp_path / "first.npy", 18, (2, 3, 3)), images.reshape(20, -1))
    with pytest.raises(InputError, match="last.npy: holds points of shape"):
        load_data(tmp_path / "last.npy", 18, (2, 3, 3))
