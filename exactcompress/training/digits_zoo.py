"""The bundled digits zoo: small ReLU MLPs trained on scikit-learn's 8x8 digits, deterministic by seed.

``build_digits_zoo`` writes one torch ``state_dict`` per model (float32, ``nn.Sequential`` keys
``0.weight``, ``0.bias``, ``2.weight``, ...), the float64 test inputs ``digits_test_X.npy`` and a
``zoo.json`` manifest. L1 on the weights makes neurons stably inactive on ``[0, 1]^64``, so most
models compress well; ``digits-32x32`` is unregularised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..engine.torch_threads import torch_threads
from .datasets import N_CLASSES, digits_data
from .trainer import Regularization, accuracy, save_state_dict, train_mlp

#: file holding the float64 test inputs, shape (n_test, 64), pixels in [0, 1]
TEST_INPUTS_FILE = "digits_test_X.npy"
MANIFEST_FILE = "zoo.json"


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: hidden widths and the L1 strength on every weight matrix (not biases)."""

    name: str
    hidden: tuple[int, ...]
    l1: float
    epochs: int = 30

    @property
    def file(self) -> str:
        return f"{self.name}.pt"


DIGITS_ZOO: tuple[ZooModel, ...] = (
    ZooModel("digits-32x32", (32, 32), 0.0),
    ZooModel("digits-32x32-l1_1e-4", (32, 32), 1e-4),
    ZooModel("digits-32x32-l1_1e-3", (32, 32), 1e-3),
    ZooModel("digits-64x32-l1_1e-3", (64, 32), 1e-3),
    ZooModel("digits-32x32x32-l1_1e-3", (32, 32, 32), 1e-3),
    ZooModel("digits-64x64-l1_2e-3", (64, 64), 2e-3),
)


def build_digits_zoo(
    out_dir: Path, *, seed: int = 0, names: Sequence[str] | None = None, n_threads: int = 1
) -> list[Path]:
    """Train the zoo (or only the models in ``names``) into ``out_dir``; returns the ``.pt`` paths in zoo order.

    Same ``seed`` (and ``n_threads``) → byte-identical files. Also writes ``digits_test_X.npy`` and
    ``zoo.json`` (``{"dataset", "test_inputs", "models": [{name, file, hidden, l1, seed, epochs,
    test_accuracy}]}``, listing the models built). The global torch RNG state and thread count are
    restored afterwards.
    """
    specs = [spec for spec in DIGITS_ZOO if names is None or spec.name in names]
    unknown = set(names or ()) - {spec.name for spec in DIGITS_ZOO}
    if unknown:
        raise ValueError(f"unknown zoo models: {sorted(unknown)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X_train, y_train = digits_data("train")
    X_test, y_test = digits_data("test")
    np.save(out_dir / TEST_INPUTS_FILE, X_test)
    entries, paths = [], []
    with torch_threads(n_threads):
        for spec in specs:
            model, _ = train_mlp(X_train, y_train, spec.hidden, regularization=Regularization("l1", spec.l1),
                                 seed=seed, epochs=spec.epochs, n_classes=N_CLASSES, n_threads=n_threads)
            path = out_dir / spec.file
            save_state_dict(model, path)
            paths.append(path)
            entries.append(
                {
                    "name": spec.name,
                    "file": spec.file,
                    "hidden": list(spec.hidden),
                    "l1": spec.l1,
                    "seed": seed,
                    "epochs": spec.epochs,
                    "test_accuracy": round(accuracy(model, X_test, y_test), 4),
                }
            )
    manifest = {"dataset": "sklearn digits 8x8, pixels / 16", "test_inputs": TEST_INPUTS_FILE, "models": entries}
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return paths
