"""The one trainer: ReLU MLPs by mini-batch Adam on cross-entropy plus a weight penalty, deterministic by seed.

Used by the bundled zoo (``zoo.py``), the bench zoo (``benchmarks/build_bench_zoo.py``) and hyperparameter
studies (``study.py``). Penalties act on the weight matrices only, never on biases:

    none   0
    l1     Σ |w|
    lp     Σ (|w| + smoothing)^p, 0 < p < 1 (the smoothing keeps the gradient finite at w = 0)
    tl1    Σ (a + 1)|w| / (a + |w|)   (transformed L1)

each times ``strength``. Same data, settings, seed and thread count → bit-identical weights.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
from torch import nn

from .errors import InputError
from .schema import NpzDataset
from .storage import open_storage

PenaltyKind = Literal["none", "l1", "lp", "tl1"]
NPZ_ARRAYS = ("X_train", "y_train", "X_test", "y_test")
Dataset = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Regularization:
    """The weight penalty of a training run. ``warmup``: fraction of the steps over which the strength ramps
    up linearly from 0 (0: full strength from the first step). ``p``/``smoothing`` are for lp, ``a`` for tl1."""

    kind: PenaltyKind = "none"
    strength: float = 0.0
    p: float | None = None
    smoothing: float | None = None
    a: float | None = None
    warmup: float = 0.0


def penalty(
    kind: PenaltyKind,
    weights: Sequence[torch.Tensor],
    strength: float,
    p: float | None = None,
    smoothing: float | None = None,
    a: float | None = None,
) -> torch.Tensor:
    """``strength`` times the ``kind`` penalty summed over ``weights`` (see the module docstring); a scalar
    tensor that carries gradients. lp needs ``p`` and ``smoothing``, tl1 needs ``a`` (ValueError otherwise)."""
    if kind == "none":
        return torch.zeros(())
    if kind == "l1":
        return strength * sum(w.abs().sum() for w in weights)
    if kind == "lp":
        if p is None or smoothing is None:
            raise ValueError("the lp penalty needs p and smoothing")
        return strength * sum(((w.abs() + smoothing) ** p).sum() for w in weights)
    if kind == "tl1":
        if a is None:
            raise ValueError("the tl1 penalty needs a")
        return strength * sum(((a + 1) * w.abs() / (a + w.abs())).sum() for w in weights)
    raise ValueError(f"unknown penalty {kind!r}")


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def mlp(input_dim: int, hidden: Sequence[int], n_classes: int) -> nn.Sequential:
    """``Linear, ReLU, ..., Linear`` from ``input_dim`` through ``hidden`` to ``n_classes`` logits."""
    widths = [input_dim, *hidden]
    modules: list[nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        modules += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    modules.append(nn.Linear(widths[-1], n_classes))
    return nn.Sequential(*modules)


def train_mlp(
    X_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    hidden: Sequence[int],
    *,
    regularization: Regularization = Regularization(),
    seed: int,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-2,
    n_classes: int | None = None,
    n_threads: int = 1,
) -> tuple[nn.Sequential, list[float]]:
    """Train an MLP on ``X_train`` (n, d) floats (used as float32) and labels ``y_train`` (n,) in [0, n_classes).

    Adam at ``lr`` decaying linearly to 0 over all steps, batches of ``batch_size`` reshuffled every epoch.
    Returns the model (float32) and the mean loss (cross-entropy + penalty) per epoch. ``n_classes``
    defaults to ``max(y_train) + 1``. Runs on ``n_threads`` torch threads; the global torch RNG state and
    thread count are restored afterwards.
    """
    X = torch.as_tensor(X_train).float()
    y = torch.as_tensor(y_train).long()
    classes = int(y.max()) + 1 if n_classes is None else n_classes
    with torch_threads(n_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = mlp(X.shape[1], hidden, classes)
        shuffle = torch.Generator().manual_seed(seed)
        weights = [module.weight for module in model if isinstance(module, nn.Linear)]
        total_steps = epochs * -(-len(X) // batch_size)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total_steps)
        reg = regularization
        losses, step = [], 0
        for _ in range(epochs):
            epoch_loss = 0.0
            batches = torch.randperm(len(X), generator=shuffle).split(batch_size)
            for batch in batches:
                loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
                if reg.kind != "none" and reg.strength > 0:
                    ramp = min(1.0, step / (reg.warmup * total_steps)) if reg.warmup > 0 else 1.0
                    loss = loss + penalty(reg.kind, weights, reg.strength * ramp, reg.p, reg.smoothing, reg.a)
                step += 1
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                epoch_loss += float(loss.detach())
            losses.append(epoch_loss / len(batches))
    return model, losses


def accuracy(model: nn.Module, X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Fraction of rows of ``X`` (n, d) whose arg-max logit is the label in ``y`` (n,)."""
    with torch.no_grad():
        predicted = model(torch.as_tensor(X).float()).argmax(dim=1)
        return float((predicted == torch.as_tensor(y)).double().mean())


def save_state_dict(model: nn.Module, path: Path) -> None:
    """Save ``model``'s state_dict as contiguous float32 copies (read back with ``torch.load(weights_only=True)``)."""
    state = {key: value.detach().to(torch.float32).contiguous().clone() for key, value in model.state_dict().items()}
    torch.save(state, path)


def load_dataset(dataset: str | NpzDataset, scratch: Path) -> Dataset:
    """``(X_train, y_train, X_test, y_test)``: X float64 (n, d), y int64 (n,).

    ``dataset``: ``"digits"`` (8x8, d = 64), ``"digits-784"`` (upsampled to 28x28, d = 784), both in
    [0, 1]; or an ``NpzDataset`` whose .npz is downloaded into ``scratch`` and checked (InputError naming
    the file and the array otherwise).
    """
    if dataset in ("digits", "digits-784"):
        from .zoo import digits_data, upsample_digits_784  # zoo.py trains with this module

        (X_train, y_train), (X_test, y_test) = digits_data("train"), digits_data("test")
        if dataset == "digits-784":
            X_train, X_test = upsample_digits_784(X_train), upsample_digits_784(X_test)
        return X_train, y_train, X_test, y_test
    if not isinstance(dataset, NpzDataset):
        raise InputError("dataset", f"unknown data set {dataset!r}: digits, digits-784 or {{npz: URL}}")
    parent, _, name = dataset.npz.rstrip("/").rpartition("/")
    local = Path(scratch) / "dataset.npz"
    open_storage(parent or ".").download(name, local)
    return _checked_arrays(dataset.npz, local)


def _checked_arrays(source: str, path: Path) -> Dataset:
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
        if X.ndim != 2 or X.shape[0] == 0 or not np.issubdtype(X.dtype, np.number):
            raise InputError(source, f"X_{split} must be a non-empty numeric array (n, d), not {X.dtype} {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InputError(source, f"X_{split} contains NaN or Inf")
        if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise InputError(source, f"y_{split} must hold one integer label >= 0 per row of X_{split}, "
                             f"not {y.dtype} {y.shape}")
    if arrays["X_train"].shape[1] != arrays["X_test"].shape[1]:
        raise InputError(source, f"X_train has {arrays['X_train'].shape[1]} features but X_test has "
                         f"{arrays['X_test'].shape[1]}")
    return tuple(arrays[name].astype(np.float64) if name.startswith("X") else arrays[name].astype(np.int64)
                 for name in NPZ_ARRAYS)
