"""The one trainer: ReLU MLPs and CNNs by mini-batch Adam on cross-entropy plus a weight penalty, deterministic
by seed.

Used by the bundled zoo (``digits_zoo.py``), the bench zoo (``benchmarks/build_bench_zoo.py``) and
hyperparameter studies (``study.py``). Penalties act on the weight matrices only, never on biases:

    none   0
    l1     Σ |w|
    lp     Σ (|w| + smoothing)^p, 0 < p < 1 (the smoothing keeps the gradient finite at w = 0)
    tl1    Σ (a + 1)|w| / (a + |w|)   (transformed L1)
    group-l1  Σ over conv output channels c of ‖W_c‖₂ (the whole filter of c), plus Σ |w| on Linear weights:
              it drives whole filters to zero, and a zero filter with a negative bias is a channel stably
              inactive at every position, which compression deletes

each times ``strength``. Same data, settings, seed and thread count → bit-identical weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from ..engine.torch_threads import torch_threads

PenaltyKind = Literal["none", "l1", "lp", "tl1", "group-l1"]


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
    if kind == "group-l1":  # 4-D conv kernels (out, in, kh, kw) by output channel; other weights elementwise
        return strength * sum(w.flatten(1).norm(dim=1).sum() if w.dim() == 4 else w.abs().sum() for w in weights)
    raise ValueError(f"unknown penalty {kind!r}")


def mlp(input_dim: int, hidden: Sequence[int], n_classes: int) -> nn.Sequential:
    """``Linear, ReLU, ..., Linear`` from ``input_dim`` through ``hidden`` to ``n_classes`` logits."""
    widths = [input_dim, *hidden]
    modules: list[nn.Module] = []
    for fan_in, fan_out in zip(widths, widths[1:]):
        modules += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    modules.append(nn.Linear(widths[-1], n_classes))
    return nn.Sequential(*modules)


def cnn(input_shape: Sequence[int], channels: Sequence[int], strides: Sequence[int], dense: Sequence[int],
        n_classes: int, kernel_size: int = 3) -> nn.Sequential:
    """``Conv2d, ReLU, ..., Flatten, Linear, ReLU, ..., Linear``: a ``kernel_size`` convolution (padding
    ``kernel_size // 2``) per entry of ``channels`` with the matching stride, then dense layers of widths
    ``dense``, then ``n_classes`` logits. ``input_shape`` is (C, H, W)."""
    in_channels, height, width = input_shape
    modules: list[nn.Module] = []
    for out_channels, stride in zip(channels, strides, strict=True):
        modules += [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
                    nn.ReLU()]
        height = (height + 2 * (kernel_size // 2) - kernel_size) // stride + 1
        width = (width + 2 * (kernel_size // 2) - kernel_size) // stride + 1
        in_channels = out_channels
    modules.append(nn.Flatten())
    widths = [in_channels * height * width, *dense]
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
    y = torch.as_tensor(y_train).long()
    classes = int(y.max()) + 1 if n_classes is None else n_classes
    return train_network(lambda: mlp(np.shape(X_train)[1], hidden, classes), X_train, y, regularization=regularization,
                         seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, n_threads=n_threads)


def train_network(
    build: Callable[[], nn.Module],
    X_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    *,
    regularization: Regularization = Regularization(),
    seed: int,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-2,
    n_threads: int = 1,
) -> tuple[nn.Module, list[float]]:
    """Train the module ``build()`` returns (built after seeding, so its initial weights follow ``seed``) on
    ``X_train`` (n, ...) floats in the module's input shape and labels ``y_train`` (n,); the recipe and the
    return value of ``train_mlp``. The penalty acts on every Linear and Conv2d weight."""
    X = torch.as_tensor(X_train).float()
    y = torch.as_tensor(y_train).long()
    with torch_threads(n_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
        shuffle = torch.Generator().manual_seed(seed)
        weights = [module.weight for module in model.modules() if isinstance(module, (nn.Linear, nn.Conv2d))]
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


def save_state_dict(model: nn.Module, path: Path, input_shape: Sequence[int] | None = None) -> None:
    """Save ``model``'s state_dict as contiguous float32 copies (read back with ``torch.load(weights_only=True)``);
    with ``input_shape`` (C, H, W) also its architecture file ``NAME.arch.json`` beside ``path`` (a CNN's
    strides and paddings are not in its tensors)."""
    from ..io.architecture import arch_json, arch_of, arch_path

    state = {key: value.detach().to(torch.float32).contiguous().clone() for key, value in model.state_dict().items()}
    torch.save(state, path)
    if input_shape is not None:
        arch_path(Path(path)).write_text(arch_json(arch_of(model, tuple(input_shape))))
