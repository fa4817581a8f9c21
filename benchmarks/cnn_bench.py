"""CNN bench: digits CNNs trained with and without a group-L1 penalty, each compressed exactly by ``auto``.

    python benchmarks/cnn_bench.py --zoo out/bench_zoo_cnn --out benchmarks/results [--cap 120] [--only NAME ...]

The models (built on first use, cached in ``--zoo`` with ``cnn_bench_zoo.json``, deterministic by seed): digits
8x8 (64 inputs) and digits upsampled to 28x28 (784 inputs), conv 8 → conv 16 (3x3, padding 1) → dense 64 → 10,
trained like the MLP bench zoo (Adam, lr 1e-2 decaying to 0, batch 64, 20 epochs, the penalty ramping up over
the first half of the steps) with the ``group-l1`` penalty (``exactcompress.training.trainer``: filter norms per
conv output channel + L1 on Linear weights) at 0 and two strengths. Each is compressed with ``--method auto``
on [0, 1]^inputs under a time limit of ``--cap`` seconds; ``cnn.md`` / ``cnn.json`` in ``--out`` give, per
net: test accuracy, status, channels removed per conv layer (and channels active everywhere / mixed /
undecided), neurons and parameters before → after, and the seconds of every stage.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from exactcompress.engine.torch_threads import torch_threads
from exactcompress.pipeline import compress_model
from exactcompress.training.datasets import (
    N_CLASSES,
    UPSAMPLED,
    digits_data,
    upsample_digits,
)
from exactcompress.training.trainer import (
    Regularization,
    accuracy,
    cnn,
    save_state_dict,
    train_network,
)

MANIFEST_FILE = "cnn_bench_zoo.json"
EPOCHS = 20
WARMUP = 0.5
BATCH_SIZE = 64
LEARNING_RATE = 1e-2
DEFAULT_CAP_S = 120.0
#: report stages that are not proofs (the rest — MILPs, branch and bound — add up to the "proofs" column)
NOT_PROOFS = {"load", "domain", "bounds", "witnesses", "compress", "verify", "write", "total"}


@dataclass(frozen=True)
class CnnBenchModel:
    """One CNN: ``input_shape`` (C, H, W), a 3x3 conv per entry of ``channels`` (with ``strides``), ``dense``."""

    input_shape: tuple[int, int, int]
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    dense: tuple[int, ...]
    group_l1: float

    @property
    def name(self) -> str:
        convs = "-".join(f"{c}s{s}" for c, s in zip(self.channels, self.strides))
        strength = "0" if self.group_l1 == 0 else f"{self.group_l1:.0e}".replace("e-0", "e-")
        inputs = int(np.prod(self.input_shape))
        return f"c{inputs}-{convs}-d{'x'.join(map(str, self.dense))}-gl1_{strength}"

    @property
    def file(self) -> str:
        return f"{self.name}.pt"

    def recipe(self, seed: int) -> dict:
        return {"input_shape": list(self.input_shape), "channels": list(self.channels), "strides": list(self.strides),
                "dense": list(self.dense), "group_l1": self.group_l1, "seed": seed, "epochs": EPOCHS}


CNN_BENCH_ZOO: tuple[CnnBenchModel, ...] = (
    *(CnnBenchModel((1, 8, 8), (8, 16), (1, 2), (64,), strength) for strength in (0.0, 1e-4, 1e-3)),
    *(CnnBenchModel((1, 28, 28), (8, 16), (2, 2), (64,), strength) for strength in (0.0, 1e-4, 1e-3)),
)


def dataset(input_shape: tuple[int, int, int], split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: X float64 (n, C, H, W) in [0, 1] (8x8 digits, or upsampled to 28x28), y int64 (n,)."""
    X, y = digits_data(split)
    inputs = int(np.prod(input_shape))
    if inputs != 64:
        X = upsample_digits(X, *UPSAMPLED[f"digits-{inputs}"])
    return X.reshape(-1, *input_shape), y


def build(zoo: Path, specs: Sequence[CnnBenchModel], seed: int = 0, say=lambda message: None) -> dict[str, dict]:
    """Train every spec not yet in ``zoo`` with this recipe; returns the manifest entries by name."""
    zoo.mkdir(parents=True, exist_ok=True)
    path = zoo / MANIFEST_FILE
    entries = {entry["name"]: entry for entry in json.loads(path.read_text())["models"]} if path.is_file() else {}
    with torch_threads(1):
        for spec in specs:
            entry = entries.get(spec.name)
            if entry is not None and entry["recipe"] == spec.recipe(seed) and (zoo / spec.file).is_file():
                continue
            say(f"training {spec.name}")
            X_train, y_train = dataset(spec.input_shape, "train")
            X_test, y_test = dataset(spec.input_shape, "test")
            model, _ = train_network(
                lambda: cnn(spec.input_shape, spec.channels, spec.strides, spec.dense, N_CLASSES), X_train, y_train,
                regularization=Regularization("group-l1", spec.group_l1, warmup=WARMUP), seed=seed, epochs=EPOCHS,
                batch_size=BATCH_SIZE, lr=LEARNING_RATE)
            save_state_dict(model, zoo / spec.file, input_shape=spec.input_shape)
            entries[spec.name] = {"name": spec.name, "file": spec.file, "recipe": spec.recipe(seed),
                                  "test_accuracy": round(accuracy(model, X_test, y_test), 4)}
            path.write_text(json.dumps({"models": list(entries.values())}, indent=2) + "\n")
    return entries


def run(zoo: Path, spec: CnnBenchModel, cap_s: float, threads: int = 1) -> dict:
    """Compress one bench CNN with ``auto`` under ``cap_s`` and ``threads`` (``compress_model``); its row."""
    with tempfile.TemporaryDirectory(prefix="cnn-bench-") as out:
        report = compress_model(zoo / spec.file, out, method="auto", time_limit=cap_s, threads=threads)
    if report.status == "failed":
        return {"name": spec.name, "status": "failed", "error": report.error}
    convs = [layer.conv for layer in report.layers if layer.conv is not None]
    counts = report.counts()
    return {
        "name": spec.name, "status": report.status,
        "channels": [len(conv.channels) for conv in convs],
        "channels_removed": [len(conv.channels_removed) for conv in convs],
        "channels_active_everywhere": [sum(c.state == "active_everywhere" for c in conv.channels) for conv in convs],
        "channels_mixed": [sum(c.state == "mixed" for c in conv.channels) for conv in convs],
        "channels_undecided": [sum(c.state == "undecided" for c in conv.channels) for conv in convs],
        "neurons_before": report.neurons_before, "neurons_after": report.neurons_after,
        "parameters_before": report.parameters_before, "parameters_after": report.parameters_after,
        "stably_inactive": counts["stably_inactive"], "stably_active": counts["stably_active"],
        "undecided": counts["undecided"], "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "policy": report.policy,
    }


def markdown(rows: list[dict], entries: dict[str, dict], cap_s: float) -> str:
    lines = [f"# CNN bench: `auto`, {cap_s:g} s cap, 2 cores", "",
             "| net | test acc. | status | channels removed (per conv) | active / mixed / undecided channels | "
             "neurons | parameters | seconds: bounds · witnesses · proofs · verify · total |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        accuracy_text = f"{100 * entries[row['name']]['test_accuracy']:.1f}%"
        if row["status"] == "failed":
            lines.append(f"| {row['name']} | {accuracy_text} | failed: {row['error']} | | | | | |")
            continue
        removed = ", ".join(f"{r}/{c}" for r, c in zip(row["channels_removed"], row["channels"]))
        states = ", ".join(f"{a}/{m}/{u}" for a, m, u in zip(row["channels_active_everywhere"], row["channels_mixed"],
                                                             row["channels_undecided"]))
        seconds = row["seconds"]
        proofs = sum(value for name, value in seconds.items() if name not in NOT_PROOFS)
        stage = " · ".join(f"{value:.1f}" for value in (seconds.get("bounds", 0.0), seconds.get("witnesses", 0.0),
                                                         proofs, seconds.get("verify", 0.0), seconds["total"]))
        lines.append(f"| {row['name']} | {accuracy_text} | {row['status']} | {removed} | {states} | "
                     f"{row['neurons_before']} → {row['neurons_after']} | {row['parameters_before']} → "
                     f"{row['parameters_after']} | {stage} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, required=True, help="directory of the CNN bench models (built if missing)")
    parser.add_argument("--out", type=Path, required=True, help="directory for cnn.md and cnn.json")
    parser.add_argument("--cap", type=float, default=DEFAULT_CAP_S, help="time limit per net, seconds")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these nets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="compress's --threads (branch-and-bound questions and verification passes at once)")
    args = parser.parse_args(argv)
    specs = [spec for spec in CNN_BENCH_ZOO if not args.only or spec.name in args.only]
    if args.only and len(specs) != len(set(args.only)):
        parser.error(f"unknown nets; known: {[spec.name for spec in CNN_BENCH_ZOO]}")
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    entries = build(args.zoo, specs, args.seed, say)
    rows = []
    for spec in specs:
        say(f"compressing {spec.name}")
        rows.append(run(args.zoo, spec, args.cap, args.threads))
        say(f"  {rows[-1]['status']} {rows[-1].get('seconds', {}).get('total', '')}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cnn.json").write_text(json.dumps({"cap_s": args.cap, "models": entries, "rows": rows}, indent=2) + "\n")
    (args.out / "cnn.md").write_text(markdown(rows, entries, args.cap))
    print(args.out / "cnn.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
