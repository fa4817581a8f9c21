"""Data files for --data and --domain-from-data: .npy, a .npz with one array, or FILE.npz:NAME."""

from __future__ import annotations

import numpy as np
import pytest

from exactcompress.errors import InputError
from exactcompress.io.domain_files import from_data, load_data


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
    from exactcompress.io.domain_files import from_file

    domain = tmp_path / "balls.json"
    domain.write_text('{"points": "missing.npy", "epsilon": 0.1}')
    with pytest.raises(InputError, match=r"balls\.json: field 'points': .*missing\.npy: no such file"):
        from_file(domain)
