"""Shared fixtures: the bundled digits zoo is built once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits_zoo(tmp_path_factory):
    """Directory holding the bundled zoo (models, zoo.json, digits_test_X.npy), trained once."""
    from exactcompress.zoo import build_digits_zoo

    directory = tmp_path_factory.mktemp("zoo")
    build_digits_zoo(directory, seed=0)
    return directory
