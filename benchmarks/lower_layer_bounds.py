"""What tighter bounds on the layers below would buy the open questions of a deep layer.

    python benchmarks/lower_layer_bounds.py out/bench_zoo/d64-3x100-l1_0.pt --layer 2 --below engine --limit 8
        [--below reached | bab [--bab-seconds 0.3 --bab-slack 0.1]] [--json out.json]

Branch and bound on the open questions of ``--layer`` (as ``bab_questions.py``: every "can neuron j be
positive?", ``--sign -1``: "... negative?", that bounds and the witness stage leave open), given one of three
kinds of bounds on the layers below it:

- ``engine``: the bounds ``auto`` hands to branch and bound (interval and symbolic propagation);
- ``reached``: the engine's bounds cut down to the extreme pre-activations a gradient search reaches (32 starts
  of 300 Adam steps per neuron and side). These are inner estimates, **not valid bounds**: a what-if for
  bounds as tight as they can be, never a proof;
- ``bab``: valid bounds from branch and bound, layer by layer from the second: for each neuron unstable under
  the bounds so far and each side, "is ``g <= t``?" (or ``g >= t``) with ``t`` the reached extreme plus
  ``--bab-slack`` of the distance to the current bound, ``--bab-seconds`` each; proved gives ``t``, open gives
  the search's best bound.

The domain is the box [0, 1] of the bench zoo's inputs. Prints the mean width of each layer's bounds (engine,
reached, used), the seconds the ``reached`` search and the ``bab`` tightening took, then each question's
verdict. One process, one thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from bab_questions import ask, open_questions, summarise

from exactcompress.allocator import tune_allocator
from exactcompress.engine.bounds import LayerBounds, propagate
from exactcompress.engine.prove import bab
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.tolerances import ROUNDING_WIDENING, WITNESS_MARGIN


def reached(network, box, layer: int, side: int, starts: int = 32, steps: int = 300) -> np.ndarray:
    """The largest ``side * g`` (times ``side``) that projected Adam reaches for every neuron of hidden layer
    ``layer`` from ``starts`` random points of the box: (width,) inner estimates of the extremes."""
    generator = torch.Generator().manual_seed(layer * 2 + (side > 0))
    weights = [torch.tensor(hidden.weight) for hidden in network.hidden[: layer + 1]]
    biases = [torch.tensor(hidden.bias) for hidden in network.hidden[: layer + 1]]
    lower, upper = torch.tensor(box.lower), torch.tensor(box.upper)
    width = weights[layer].shape[0]
    x = lower + (upper - lower) * torch.rand(width * starts, network.input_dim, generator=generator,
                                             dtype=torch.float64)
    x.requires_grad_(True)
    rows, neurons = torch.arange(width * starts), torch.arange(width).repeat(starts)
    best = torch.full((width,), -np.inf, dtype=torch.float64)
    optimiser = torch.optim.Adam([x], lr=0.05 * float((upper - lower).max()))
    for _ in range(steps):
        h = x
        for k in range(layer):
            h = torch.relu(h @ weights[k].T + biases[k])
        value = side * (h @ weights[layer].T + biases[layer])[rows, neurons]
        best = torch.maximum(best, value.detach().view(starts, width).max(0).values)
        optimiser.zero_grad()
        (-value.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, upper), lower))
    return side * best.numpy()


def bab_tightened(network, box, bounds, inner, layer: int, seconds: float, slack: float) -> list[LayerBounds]:
    """Valid bounds for the layers below ``layer``: from the second hidden layer up, each neuron unstable under
    the bounds so far gets a value question per side (see the module docstring); ``inner``: the reached
    extremes per layer."""
    bounds = list(bounds)
    weights = [hidden.weight for hidden in network.hidden]
    biases = [hidden.bias for hidden in network.hidden]
    for k in range(1, layer):
        current = bounds[k].intersect(propagate(network, box, bounds[:k])[k])
        lower, upper = current.lower.copy(), current.upper.copy()
        below = [(b.lower, b.upper) for b in bounds[:k]]
        for side, extreme, outer in ((1, inner[k].upper, upper), (-1, inner[k].lower, lower)):
            for neuron in np.flatnonzero((lower < 0) & (upper > 0)):
                t = extreme[neuron] + slack * (outer[neuron] - extreme[neuron])
                shifted = [b.copy() for b in biases[: k + 1]]
                shifted[k][neuron] -= t
                result = bab.prove_sign(weights[: k + 1], shifted, box.lower, box.upper, below, k, int(neuron), side,
                                        margin=0.0, witness_margin=WITNESS_MARGIN,
                                        deadline=time.monotonic() + seconds, seed=int(neuron))
                if result.status == "proved":
                    value = t
                elif result.status == "undecided" and np.isfinite(result.best_bound):
                    value = t + side * result.best_bound
                else:
                    continue
                value += side * ROUNDING_WIDENING * (1.0 + abs(value) + abs(biases[k][neuron]))  # the shift's rounding
                if side > 0:
                    upper[neuron] = min(upper[neuron], value)
                else:
                    lower[neuron] = max(lower[neuron], value)
        bounds[k] = LayerBounds(lower, upper)
    return bounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a model file exactcompress reads (.pt state dict, .onnx, ...)")
    parser.add_argument("--layer", type=int, required=True, help="hidden layer of the questions (>= 2)")
    parser.add_argument("--below", choices=("engine", "reached", "bab"), default="engine",
                        help="bounds of the layers below (reached: not valid bounds, a what-if)")
    parser.add_argument("--sign", type=int, choices=(1, -1), default=1, help="1: can it be positive? -1: negative?")
    parser.add_argument("--limit", type=float, default=8.0, help="seconds per question")
    parser.add_argument("--bab-seconds", type=float, default=0.3, help="--below bab: seconds per value question")
    parser.add_argument("--bab-slack", type=float, default=0.1, help="--below bab: share of the gap to aim above")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(args.model)
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    questions, engine = open_questions(network, box, args.layer, args.sign)
    start = time.monotonic()
    inner = [LayerBounds(reached(network, box, k, -1), reached(network, box, k, 1)) for k in range(args.layer)]
    if args.below == "reached":
        used = [b.intersect(r) for b, r in zip(engine, inner)]
    elif args.below == "bab":
        used = bab_tightened(network, box, engine, inner, args.layer, args.bab_seconds, args.bab_slack)
    else:
        used = list(engine)
    tightening_s = time.monotonic() - start

    def widths(bounds):
        return [round(float(np.mean(b.upper - b.lower)), 2) for b in bounds[: args.layer]]

    print(f"{args.model.name}: layer {args.layer}, sign {args.sign:+d}, below: {args.below}; mean widths of the "
          f"layers below: engine {widths(engine)}, reached {widths(inner)}, used {widths(used)} ({tightening_s:.1f} s)")
    rows = ask(network, box, [(b.lower, b.upper) for b in used[: args.layer]], args.layer, questions, args.sign,
               args.limit)
    summarise(rows)
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(args.model), "layer": args.layer, "sign": args.sign, "below": args.below,
            "limit_s": args.limit, "bab_seconds": args.bab_seconds, "bab_slack": args.bab_slack,
            "widths_engine": widths(engine), "widths_reached": widths(inner), "widths_used": widths(used),
            "tightening_s": round(tightening_s, 1), "questions": rows}, indent=1))


if __name__ == "__main__":
    main()
