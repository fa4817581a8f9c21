"""A first CNN measurement (issue 15): train conv 8 → conv 16 → dense 64 → 10 on the 8×8 digits, then time
``compress_model`` (method auto, the [0, 1] box, the test rows as witness candidates) and print one JSON line:
accuracy, status, seconds per stage, neuron states, parameters and the channels removed per conv layer.

    .venv/bin/python benchmarks/cnn_digits.py --stride 2 --group-l1 0 --time-limit 300
    .venv/bin/python benchmarks/cnn_digits.py --side 28 --stride 2     # digits upsampled to 28×28 (digits-784)

``--group-l1`` adds λ·Σ_channels ‖(filter, bias)‖₂ to the training loss (a first try at the penalty that makes
whole channels stably inactive; the study kind ``cnn`` and its tuned regulariser are later work).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from exactcompress.pipeline import compress_model
from exactcompress.training.datasets import digits_data, upsample_digits


def train(side: int, stride: int, group_l1: float, epochs: int, seed: int
          ) -> tuple[nn.Sequential, float, torch.Tensor]:
    torch.manual_seed(seed)
    (x, y), (x_test, y_test) = digits_data("train"), digits_data("test")
    if side != 8:
        x, x_test = upsample_digits(x, side), upsample_digits(x_test, side)
    x = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, side, side)
    x_test = torch.tensor(x_test, dtype=torch.float32).reshape(-1, 1, side, side)
    y, y_test = torch.tensor(y), torch.tensor(y_test)
    for _ in range(2):  # 3×3 kernels, padding 1: each conv gives ceil(side / stride)
        side = -(-side // stride)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=stride, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 16, 3, stride=stride, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(16 * side * side, 64), nn.ReLU(), nn.Linear(64, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            rows = order[start:start + 64]
            loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
            for conv in (model[0], model[2]):
                norms = torch.sqrt((conv.weight ** 2).sum(dim=(1, 2, 3)) + conv.bias ** 2 + 1e-12)
                loss = loss + group_l1 * norms.sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    return model, accuracy, x_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, choices=(8, 28), default=8)
    parser.add_argument("--stride", type=int, choices=(1, 2), default=2)
    parser.add_argument("--group-l1", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="cnn-digits-out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, accuracy, x_test = train(args.side, args.stride, args.group_l1, args.epochs, args.seed)
    started = time.monotonic()
    report = compress_model(model, args.out, input_shape=(1, args.side, args.side), time_limit=args.time_limit,
                            formats=("torch", "onnx"), data=x_test.reshape(len(x_test), -1).double().numpy())
    print(json.dumps({
        "side": args.side, "stride": args.stride, "group_l1": args.group_l1, "accuracy": round(accuracy, 4), "status": report.status,
        "wall_s": round(time.monotonic() - started, 2), "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "states": report.counts(), "neurons": [report.neurons_before, report.neurons_after],
        "parameters": [report.parameters_before, report.parameters_after],
        "channels_removed": [layer.conv.channels_removed for layer in report.layers if layer.conv],
        "channel_states": [[channel.state for channel in layer.conv.channels] for layer in report.layers if layer.conv],
        "policy": report.policy, "error": report.error,
    }))


if __name__ == "__main__":
    main()
