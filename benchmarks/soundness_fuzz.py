"""Soundness fuzz of the whole analysis: random tiny ReLU nets built to sit on the edges of what the engine
decides, every method run on each, every verdict checked against exact truth.

Truth, per hidden neuron and box: the exact max and min of its pre-activation over the box, by activation-pattern
enumeration with one LP per region when the layers below have at most ``--enumerate-below`` neurons, else by a
big-M MILP (HiGHS, zero gap, objective scaled); the helpers of ``tests/engine/test_bab.py``. The checks:

- a neuron called stably inactive (active) has a true max <= slack (a true min >= -slack) on every box;
- a neuron called unstable has two witness points in the domain whose float64 pre-activations show both signs;
- a neuron whose true range is clear of 0 by more than ``--decide-gap`` on every box is not left undecided
  (reported, not a soundness failure: the time limit may have cut it);
- the compressed network (``compress`` with the verdicts) equals the original within the verification tolerance
  at random points, the boxes' corners and the points where each neuron's truth was attained.

    .venv/bin/python benchmarks/soundness_fuzz.py --nets 200 --seed 0 --out benchmarks/results/soundness_fuzz

The analyses run in one thread unless ``--threads N`` asks for more, as ``compress --threads`` (whose default is the
usable CPUs): then ``auto`` also answers questions in threads and runs its spare thread's sign solves, and each
record's ``policy`` names the steps ``auto`` took.

The nets (``family`` in the log): Gaussian layers; biases shifted so that chosen neurons' true max or min is
+-1e-5, +-1e-8 or exactly 0 on the box; duplicated and zero rows; a layer scaled by 1e3 or 1e-3; boxes with
zero-width coordinates; domains of two boxes; float32 networks; with ``--families conv``, CNNs (``conv-pool``: with an
average pool). Exit status 1
when any soundness check failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))

from test_bab import exact_max, milp_max  # noqa: E402

from exactcompress.engine.analyze import analyze  # noqa: E402
from exactcompress.engine.compression import compress  # noqa: E402
from exactcompress.engine.domain import Box, Domain  # noqa: E402
from exactcompress.engine.network import Network  # noqa: E402
from exactcompress.tolerances import VERIFY_TOLERANCE  # noqa: E402

METHODS = ("auto", "bab", "milp", "per-neuron")
SLACK = 1e-9  # how far past 0 a stable neuron's true extreme may be (relative to 1 + the layer's scale)
FAMILIES = ("gaussian", "edge", "duplicates", "scaled", "flat-box", "two-boxes", "float32")  # net i: i mod 7
CONV = "conv"  # asked for with --families (the default seven keep the nets of a seed as they were)
CONV_POOL = "conv-pool"  # CNNs with an AvgPool2d before the Flatten (kept in its pooled form through compression)


def random_conv_net(rng: np.random.Generator, pool: bool = False):
    """A CNN on a 1×3×3 or 1×4×4 input: one or two Conv2d layers (kernel 2, stride 1 or 2, padding 0 or 1) with
    ReLUs, with ``pool`` an AvgPool2d (kernel 1 or 2, stride 1 or 2, padding 0 or 1 where the kernel allows,
    count_include_pad either way), Flatten, one dense hidden layer, an output layer; its IR (convolutions as
    their dense unrolled matrices, the pool composed into the Linear after it) and a box. A channel's bias
    shifted so that one position's true max or min is at an edge."""
    import torch
    from torch import nn

    from exactcompress.io import from_sequential

    side, channels = int(rng.choice([3, 4])), [int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 3)))]
    layers, in_channels, size = [], 1, side
    for out_channels in channels:
        stride, padding = int(rng.choice([1, 2])), int(rng.choice([0, 1]))
        if size + 2 * padding < 2:  # the kernel would not fit
            break
        layers += [nn.Conv2d(in_channels, out_channels, 2, stride=stride, padding=padding), nn.ReLU()]
        in_channels, size = out_channels, (size + 2 * padding - 2) // stride + 1
    if pool:
        kernel, stride = int(rng.choice([1, 2])), int(rng.choice([1, 2]))
        padding = int(rng.choice([0, 1])) if kernel == 2 else 0
        if size + 2 * padding >= kernel:
            layers.append(nn.AvgPool2d(kernel, stride, padding, count_include_pad=bool(rng.random() < 0.5)))
            size = (size + 2 * padding - kernel) // stride + 1
    width = int(rng.integers(2, 6))
    layers += [nn.Flatten(), nn.Linear(in_channels * size * size, width), nn.ReLU(), nn.Linear(width, 2)]
    module = nn.Sequential(*layers).double().eval()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.from_numpy(rng.normal(size=tuple(parameter.shape)) * 0.7))
    network, _ = from_sequential(module, input_shape=(1, side, side))
    lo = rng.uniform(-1, 0.5, size=side * side)
    hi = lo + rng.uniform(0.1, 2.0, size=side * side)
    Ws, bs = arrays(network)
    conv = network.layers[0].conv
    neuron, sign = int(rng.integers(0, Ws[0].shape[0])), int(rng.choice([1, -1]))
    top = truth_max(Ws, bs, [(lo, hi)], 0, neuron, sign, enumerate_below=12)
    channel = neuron // (conv.out_features // conv.out_channels)
    with torch.no_grad():  # the channel's bias moves every position of it; this one's extreme goes to the edge
        module[0].bias[channel] -= sign * (top - float(rng.choice([1e-5, -1e-5, 1e-8, 0.0])))
    network, _ = from_sequential(module, input_shape=(1, side, side))
    return network, [(lo, hi)]


def arrays(network: Network) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weights and biases of every layer as the network holds them, float64 (what the truth uses)."""
    return ([np.array(layer.weight, dtype=np.float64) for layer in network.layers],
            [np.array(layer.bias, dtype=np.float64) for layer in network.layers])


def random_net(rng: np.random.Generator, family: str):
    if family in (CONV, CONV_POOL):
        network, boxes = random_conv_net(rng, pool=family == CONV_POOL)
        return network, *arrays(network), boxes
    depth = int(rng.integers(1, 5))
    d = int(rng.integers(1, 7))
    widths = [int(rng.integers(2, 11)) for _ in range(depth)]
    dims = [d, *widths, int(rng.integers(1, 3))]
    Ws = [rng.normal(size=(dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    bs = [rng.normal(size=dims[i + 1]) * rng.choice([0.0, 0.3, 1.0]) for i in range(len(dims) - 1)]
    lo = rng.uniform(-1, 0.5, size=d)
    hi = lo + rng.uniform(0.1, 2.0, size=d)
    boxes = [(lo, hi)]
    if family == "duplicates" and depth >= 1:
        layer = int(rng.integers(0, depth))
        n = Ws[layer].shape[0]
        i, j = rng.choice(n, size=2, replace=False)
        Ws[layer][j], bs[layer][j] = Ws[layer][i] * rng.choice([1.0, 2.0, -1.0]), bs[layer][i]
        k = int(rng.integers(0, n))
        Ws[layer][k] = 0.0
        bs[layer][k] = rng.choice([0.0, 1e-9, -1e-9, 0.5, -0.5])
    if family == "scaled":
        layer = int(rng.integers(0, depth + 1))
        factor = rng.choice([1e3, 1e-3])
        Ws[layer] = Ws[layer] * factor
        bs[layer] = bs[layer] * factor
    if family == "flat-box":
        flat = rng.random(d) < 0.5
        hi = np.where(flat, lo, hi)
        boxes = [(lo, hi)]
    if family == "two-boxes":
        lo2 = rng.uniform(-1, 0.5, size=d)
        boxes.append((lo2, lo2 + rng.uniform(0.0, 1.0, size=d)))
    if family == "edge" or rng.random() < 0.3:
        # chosen neurons' true extreme on the first box put at +-1e-5, +-1e-8 or exactly 0, lowest layer first
        for layer in sorted(int(k) for k in rng.integers(0, depth, size=int(rng.integers(1, 5)))):
            j = int(rng.integers(0, Ws[layer].shape[0]))
            sign = int(rng.choice([1, -1]))
            top = truth_max(Ws, bs, boxes[:1], layer, j, sign, enumerate_below=12)
            shift = float(rng.choice([1e-5, -1e-5, 1e-8, -1e-8, 0.0]))
            bs[layer][j] -= sign * (top - shift)  # now max sign * g_j = shift (up to the truth's accuracy)
    dtype = "float32" if family == "float32" else "float64"
    network = Network.from_arrays(Ws, bs, dtype=dtype)
    return network, *arrays(network), boxes


def truth_max(Ws, bs, boxes, layer, neuron, sign, *, enumerate_below, with_point=False):
    """max over the union of ``boxes`` of sign * g^layer_neuron (and a maximiser, clipped into its box)."""
    below = sum(W.shape[0] for W in Ws[:layer])
    solve = exact_max if below <= enumerate_below else milp_max
    best = (-np.inf, None)
    for lo, hi in boxes:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        value, point = solve(Ws, bs, lo, hi, layer, neuron, sign, with_point=True)
        if value > best[0]:
            best = (value, np.clip(point[: len(lo)], lo, hi))
    return best if with_point else best[0]


def shows(network: Network, point, layer: int, neuron: int, sign: int) -> bool:
    """Whether the float64 forward pass at ``point`` gives ``sign * g > 0`` (what disproves a stable claim)."""
    return point is not None and sign * float(network.preactivations(point[None])[layer][0, neuron]) > 0


def argmax_points(network: Network, boxes, rng, n=4000):
    """Points of the boxes where some hidden pre-activation is largest or smallest among ``n`` draws each."""
    points = []
    for lo, hi in boxes:
        X = lo + (hi - lo) * rng.random((n, len(lo)))
        for g in network.preactivations(X):
            points += [X[np.argmax(g, axis=0)], X[np.argmin(g, axis=0)]]
    return np.concatenate(points)


def check_net(index, rng, family, methods, time_limit, enumerate_below, decide_gap, threads=1):
    network, Ws, bs, boxes = random_net(rng, family)
    domain = Domain("box", tuple(Box(lo, hi) for lo, hi in boxes))
    depth = len(Ws) - 1
    extremes = {(k, j, sign): truth_max(Ws, bs, boxes, k, j, sign, enumerate_below=enumerate_below, with_point=True)
                for k in range(depth) for j in range(Ws[k].shape[0]) for sign in (1, -1)}
    truth = [(np.array([extremes[k, j, 1][0] for j in range(Ws[k].shape[0])]),
              np.array([-extremes[k, j, -1][0] for j in range(Ws[k].shape[0])])) for k in range(depth)]
    scale = [1.0 + float(np.max(np.abs(np.concatenate([hi_, lo_])))) for hi_, lo_ in truth]
    probes = np.concatenate([argmax_points(network, boxes, rng)]
                            + [lo + (hi - lo) * rng.random((2000, len(lo))) for lo, hi in boxes]
                            + [np.asarray(lo)[None] for lo, _ in boxes] + [np.asarray(hi)[None] for _, hi in boxes])
    record = {"net": index, "family": family, "dims": [Ws[0].shape[1], *[W.shape[0] for W in Ws]],
              "boxes": len(boxes), "dtype": network.dtype, "methods": {}}
    failures, unconfirmed = [], []  # unconfirmed: the truth's LP tolerance, not a point the network reaches
    for method in methods:
        started = time.monotonic()
        try:
            analysis = analyze(network, domain, method=method, time_limit=time_limit, seed=index, threads=threads)
        except Exception as error:  # a crash on a valid network is a failure too; the other methods go on
            failures.append(f"{method}: raised {type(error).__name__}: {error}")
            record["methods"][method] = {"crashed": True}
            continue
        seconds = time.monotonic() - started
        counts = {"inactive": 0, "active": 0, "unstable": 0, "undecided": 0, "clear_but_undecided": 0}
        for k in range(depth):
            top, bottom = truth[k]
            for j in range(Ws[k].shape[0]):
                where = f"{method}: layer {k} neuron {j}"
                claim = (1 if analysis.stably_inactive[k][j] else -1 if analysis.stably_active[k][j] else 0)
                if claim:
                    counts["inactive" if claim > 0 else "active"] += 1
                    extreme, point = extremes[k, j, claim]
                    if extreme > SLACK * scale[k]:  # a failure once a float64 pass at the maximiser confirms it
                        line = (f"{where} called stably {'inactive' if claim > 0 else 'active'}, true "
                                f"{'max' if claim > 0 else 'min'} {claim * extreme:.3e}")
                        (failures if shows(network, point, k, j, claim) else unconfirmed).append(line)
                elif analysis.unstable[k][j]:
                    counts["unstable"] += 1
                    w = analysis.witnesses
                    rows = w.positive[k][j], w.negative[k][j]
                    if min(rows) < 0:
                        failures.append(f"{where} called unstable without two witnesses")
                        continue
                    points = w.points[list(rows)]
                    if not np.all(domain.contains(points)):
                        failures.append(f"{where}: a witness lies outside the domain")
                    g = network.preactivations(points)[k][:, j]
                    if not (g[0] > 0 and g[1] < 0):
                        failures.append(f"{where}: witnesses give {g[0]:.3e}, {g[1]:.3e}")
                else:
                    counts["undecided"] += 1
                    if top[j] < -decide_gap * scale[k] or bottom[j] > decide_gap * scale[k]:
                        counts["clear_but_undecided"] += 1
        compressed, _ = compress(network, analysis.stably_active, analysis.stably_inactive)
        original_out, compressed_out = network.forward(probes), compressed.forward(probes)
        error = np.abs(original_out - compressed_out) / (1 + np.abs(original_out))
        if error.max() > VERIFY_TOLERANCE:
            failures.append(f"{method}: compressed differs by {error.max():.3e} (relative) at probes")
        record["methods"][method] = {**counts, "seconds": round(seconds, 2), "timed_out": analysis.timed_out,
                                     "max_relative_error": float(error.max()), "policy": analysis.policy}
    record["failures"], record["unconfirmed"] = failures, unconfirmed
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--time-limit", type=float, default=20.0, help="per analysis, seconds")
    parser.add_argument("--enumerate-below", type=int, default=12,
                        help="exact enumeration when the layers below a neuron have at most this many neurons")
    parser.add_argument("--decide-gap", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1,
                        help="questions answered at once in threads, as `compress --threads` (whose default is the "
                             "usable CPUs, at most 4): 2 or more also fuzzes the spare thread's sign solves and the "
                             "sign solves and branch-and-bound rounds run in threads")
    parser.add_argument("--only", type=int, nargs="+", help="only these nets (their index within --seed)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=[*FAMILIES, CONV, CONV_POOL],
                        help="net i is of family i mod (number given), in this order")
    parser.add_argument("--out", type=Path, required=True, help="folder for fuzz.jsonl and summary.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    totals = {"nets": 0, "failures": 0, "unconfirmed": 0, "clear_but_undecided": 0}
    started = time.monotonic()
    with open(args.out / "fuzz.jsonl", "a") as log:
        for index in args.only or range(args.nets):
            family = args.families[index % len(args.families)]
            rng = np.random.default_rng([args.seed, index])  # one stream a net: --only repeats a net alone
            record = check_net(args.seed * 100_000 + index, rng, family, args.methods, args.time_limit,
                               args.enumerate_below, args.decide_gap, args.threads)
            log.write(json.dumps(record) + "\n")
            log.flush()
            totals["nets"] += 1
            totals["failures"] += len(record["failures"])
            totals["unconfirmed"] += len(record["unconfirmed"])
            totals["clear_but_undecided"] += sum(m.get("clear_but_undecided", 0) for m in record["methods"].values())
            for failure in record["failures"]:
                print(f"net {record['net']} ({family}): FAIL {failure}", flush=True)
            for line in record["unconfirmed"]:
                print(f"net {record['net']} ({family}): unconfirmed (no float64 point shows it) {line}", flush=True)
            print(f"net {record['net']} ({family}, dims {record['dims']}): "
                  + ", ".join(f"{m} crashed" if v.get("crashed") else
                              f"{m} {v['inactive']}/{v['active']}/{v['unstable']}/{v['undecided']} {v['seconds']} s"
                              for m, v in record["methods"].items()), flush=True)
    totals["seconds"] = round(time.monotonic() - started, 1)
    totals.update(seed=args.seed, methods=args.methods, time_limit=args.time_limit, threads=args.threads)
    (args.out / f"summary_seed{args.seed}.json").write_text(json.dumps(totals, indent=2) + "\n")
    print(json.dumps(totals))
    return 1 if totals["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
