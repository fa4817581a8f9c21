"""Data sets for training: scikit-learn's 8x8 digits (pixels in [0, 1]), the same upsampled to 28x28 or to
32x32x3, or a user's ``.npz`` (X_train, y_train, X_test, y_test), checked array by array."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..schema import NpzDataset
from ..storage import open_storage

TEST_FRACTION = 0.25


SPLIT_SEED = 0


INPUT_DIM = 64


N_CLASSES = 10


def digits_data(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Scaled digits ``(X, y)`` for ``split`` in {"train", "test"}: X float64 (n, 64) in [0, 1], y int64 (n,).

    The split is stratified and fixed (25% test, ``random_state=0``).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    digits = load_digits()
    X = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    return (X_train, y_train) if split == "train" else (X_test, y_test)


def upsample_digits(X: np.ndarray, side: int, channels: int = 1) -> np.ndarray:
    """Upsample 8x8 digits ``X`` (n, 64), pixels in [0, 1], bilinearly to ``side`` x ``side`` and repeat the
    image over ``channels`` (channel-major, as a CIFAR tensor flattens); float64 (n, channels·side²) in [0, 1].
    ``side=28`` gives the MNIST-shaped "digits-784", ``side=32, channels=3`` the CIFAR-shaped "digits-3072"."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != INPUT_DIM:
        raise ValueError(f"expected digits of shape (n, 64), got {X.shape}")
    if X.size and (X.min() < 0.0 or X.max() > 1.0):
        raise ValueError("digit pixels must lie in [0, 1] (divide raw digits by 16)")
    images = torch.from_numpy(X).reshape(-1, 1, 8, 8)
    large = nn.functional.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
    return np.clip(large.expand(-1, channels, side, side).reshape(-1, channels * side * side).numpy(), 0.0, 1.0)


#: the upsampled digits data sets: name → (side, channels)
UPSAMPLED = {"digits-784": (28, 1), "digits-3072": (32, 3)}


NPZ_ARRAYS = ("X_train", "y_train", "X_test", "y_test")


#: most classes an .npz may have (labels 0 .. MAX_CLASSES - 1): the network has one output per label up to the
#: largest, so a stray huge label would allocate gigabytes; 1000 is ImageNet's count
MAX_CLASSES = 1000


Dataset = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_dataset(dataset: str | NpzDataset, scratch: Path) -> Dataset:
    """``(X_train, y_train, X_test, y_test)``: X float64 (n, d), y int64 (n,).

    ``dataset``: ``"digits"`` (8x8, d = 64), ``"digits-784"`` (upsampled to 28x28, d = 784) or
    ``"digits-3072"`` (upsampled to 32x32, three equal channels, d = 3072), all in [0, 1]; or an ``NpzDataset`` whose .npz is downloaded into ``scratch`` and checked (InputError naming
    the file and the array otherwise).
    """
    if isinstance(dataset, str) and (dataset == "digits" or dataset in UPSAMPLED):
        (X_train, y_train), (X_test, y_test) = digits_data("train"), digits_data("test")
        if dataset in UPSAMPLED:
            X_train, X_test = (upsample_digits(X, *UPSAMPLED[dataset]) for X in (X_train, X_test))
        return X_train, y_train, X_test, y_test
    if not isinstance(dataset, NpzDataset):
        raise InputError("dataset", f"unknown data set {dataset!r}: digits, digits-784, digits-3072 or {{npz: URL}}")
    parent, _, name = dataset.npz.rstrip("/").rpartition("/")
    local = Path(scratch) / "dataset.npz"
    open_storage(parent or ".").download(name, local)
    return _checked_arrays(dataset.npz, local)


def _checked_arrays(source: str, path: Path) -> Dataset:
    if not zipfile.is_zipfile(path):
        raise InputError(source, "not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in NPZ_ARRAYS if name in archive.files}
    except (OSError, ValueError) as error:
        raise InputError(source, f"not a readable .npz without pickled objects ({error})") from None
    missing = [name for name in NPZ_ARRAYS if name not in arrays]
    if missing:
        raise InputError(source, f"missing arrays {missing}; a data set needs {list(NPZ_ARRAYS)}")
    for split in ("train", "test"):
        X, y = arrays[f"X_{split}"], arrays[f"y_{split}"]
        real = np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0 or not real:
            raise InputError(source, f"X_{split} must be a real (float or integer) array (n, d) with n, d >= 1, "
                             f"not {X.dtype} {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InputError(source, f"X_{split} contains NaN or Inf")
        if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise InputError(source, f"y_{split} must hold one integer label >= 0 per row of X_{split}, "
                             f"not {y.dtype} {y.shape}")
    if arrays["y_train"].max() >= MAX_CLASSES:
        raise InputError(source, f"y_train has label {arrays['y_train'].max()}: at most {MAX_CLASSES} classes "
                         f"(labels 0 to {MAX_CLASSES - 1}), one network output each")
    unseen = np.setdiff1d(arrays["y_test"], arrays["y_train"])
    if unseen.size:
        raise InputError(source, f"y_test has labels y_train lacks: {unseen[:5].tolist()}"
                         + (f" and {unseen.size - 5} more" if unseen.size > 5 else ""))
    if arrays["X_train"].shape[1] != arrays["X_test"].shape[1]:
        raise InputError(source, f"X_train has {arrays['X_train'].shape[1]} features but X_test has "
                         f"{arrays['X_test'].shape[1]}")
    return tuple(arrays[name].astype(np.float64) if name.startswith("X") else arrays[name].astype(np.int64)
                 for name in NPZ_ARRAYS)
