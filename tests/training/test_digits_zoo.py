import json

import numpy as np
import pytest
import torch

from exactcompress.training.datasets import digits_data, upsample_digits
from exactcompress.training.digits_zoo import DIGITS_ZOO, build_digits_zoo


@pytest.fixture
def zoo_dir(digits_zoo):
    return digits_zoo


def test_zoo_files_and_manifest(zoo_dir):
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    entries = manifest["models"]
    assert [entry["name"] for entry in entries] == [spec.name for spec in DIGITS_ZOO]
    assert 5 <= len(entries) <= 6
    for entry in entries:
        assert (zoo_dir / entry["file"]).is_file()
        assert entry["seed"] == 0 and entry["epochs"] > 0
        assert entry["test_accuracy"] > 0.8, entry
    assert any(entry["l1"] == 0.0 for entry in entries)
    X_test = np.load(zoo_dir / manifest["test_inputs"])
    assert X_test.dtype == np.float64 and X_test.shape == (450, 64)
    np.testing.assert_array_equal(X_test, digits_data("test")[0])


def test_models_load_as_sequential_state_dicts(zoo_dir):
    for spec in DIGITS_ZOO:
        state = torch.load(zoo_dir / spec.file, weights_only=True)
        n_linear = len(spec.hidden) + 1
        assert list(state) == [f"{2 * i}.{kind}" for i in range(n_linear) for kind in ("weight", "bias")]
        assert all(tensor.dtype == torch.float32 for tensor in state.values())
        assert [state[f"{2 * i}.weight"].shape[0] for i in range(len(spec.hidden))] == list(spec.hidden)
        assert state["0.weight"].shape[1] == 64 and state[f"{2 * len(spec.hidden)}.weight"].shape[0] == 10


def test_strong_l1_makes_first_layer_neurons_stably_inactive(zoo_dir):
    """On [0, 1]^64 the first layer's exact maximum is b + sum(max(W, 0))."""

    def inactive_fraction(name):
        state = torch.load(zoo_dir / f"{name}.pt", weights_only=True)
        weight, bias = state["0.weight"].double().numpy(), state["0.bias"].double().numpy()
        return float(np.mean(bias + np.maximum(weight, 0).sum(axis=1) < 0))

    assert inactive_fraction("digits-32x32") == 0.0
    assert inactive_fraction("digits-64x64-l1_2e-3") > 0.3


def test_same_seed_same_bytes_other_seed_differs(zoo_dir, tmp_path):
    name = DIGITS_ZOO[2].name
    again = build_digits_zoo(tmp_path / "again", seed=0, names=[name])
    other = build_digits_zoo(tmp_path / "other", seed=1, names=[name])
    assert [path.name for path in again] == [f"{name}.pt"]
    assert again[0].read_bytes() == (zoo_dir / f"{name}.pt").read_bytes()
    assert other[0].read_bytes() != again[0].read_bytes()
    assert [entry["name"] for entry in json.loads((tmp_path / "again" / "zoo.json").read_text())["models"]] == [name]


def test_build_restores_torch_threads_and_rng(tmp_path):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_digits_zoo(tmp_path, seed=0, names=[DIGITS_ZOO[0].name], n_threads=1 if threads > 1 else 2)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)


def test_unknown_model_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        build_digits_zoo(tmp_path, names=["nope"])


def test_digits_split_is_scaled_and_disjoint():
    X_train, y_train = digits_data("train")
    X_test, y_test = digits_data("test")
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert X_train.min() >= 0.0 and X_train.max() <= 1.0 and X_train.max() == 1.0
    assert set(np.unique(y_test)) == set(range(10)) and len(y_train) == len(X_train)
    np.testing.assert_array_equal(digits_data("test")[0], X_test)
    with pytest.raises(ValueError):
        digits_data("validation")


def test_upsample_digits_to_mnist_and_cifar_shapes():
    X_test, _ = digits_data("test")
    big = upsample_digits(X_test[:5], 28)
    assert big.shape == (5, 784) and big.dtype == np.float64
    assert big.min() >= 0.0 and big.max() <= 1.0
    np.testing.assert_allclose(big.reshape(5, 28, 28).mean(axis=(1, 2)), X_test[:5].mean(axis=1), atol=0.05)
    np.testing.assert_allclose(upsample_digits(np.ones((1, 64)), 28), np.ones((1, 784)), rtol=0, atol=1e-12)
    colour = upsample_digits(X_test[:5], 32, channels=3).reshape(5, 3, 32, 32)
    assert (colour[:, 0] == colour[:, 1]).all() and (colour[:, 1] == colour[:, 2]).all()
    np.testing.assert_allclose(colour[:, 0].mean(axis=(1, 2)), X_test[:5].mean(axis=1), atol=0.05)
    with pytest.raises(ValueError):
        upsample_digits(X_test[:, :63], 28)
    with pytest.raises(ValueError):
        upsample_digits(X_test * 16, 28)
