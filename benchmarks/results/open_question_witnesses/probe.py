"""Are the questions `auto` leaves open on an unpenalised net stable, or unstable with a witness nobody found?

    python benchmarks/results/open_question_witnesses/probe.py MODEL --layers 1 2 3 4 [--starts 512 --steps 1000]
        [--milp-seconds 10] [--limit-questions N]

For every question open after the engine's bounds and witness stage (as ``auto`` finds them:
``bab_questions.open_questions``), per layer: (1) a heavy projected-gradient search on that question alone
(``bab._attack`` from ``--starts`` random starts for ``--steps`` steps, on the network below the question) and (2)
for the questions it leaves open, a per-neuron sign solve in SCIP capped at ``--milp-seconds`` (its solutions
are candidates). Every witness is the float64 forward pass of the original network at a box point. Prints one
line per question and the counts per layer. No proof comes from here: "open" means neither found a point.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bab_questions import open_questions  # noqa: E402

from exactcompress.engine.prove import bab  # noqa: E402
from exactcompress.engine.prove.bab_bounds import Net  # noqa: E402
from exactcompress.engine.prove.per_neuron import solve_layer  # noqa: E402
from exactcompress.io import load_network  # noqa: E402
from exactcompress.io.domain_files import scalar_box  # noqa: E402
from exactcompress.tolerances import WITNESS_MARGIN  # noqa: E402


def sign_values(network, layer: int, neuron: int, sign: int, X: np.ndarray) -> np.ndarray:
    """sign * g^layer_neuron at each row of X, the float64 forward pass of the original network."""
    return sign * network.preactivations(np.atleast_2d(X))[layer][:, neuron]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("--layers", type=int, nargs="+", required=True)
    parser.add_argument("--starts", type=int, default=512)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--milp-seconds", type=float, default=10.0)
    parser.add_argument("--limit-questions", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, _ = load_network(args.model)
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    rng = np.random.default_rng(0)
    for layer in args.layers:
        rows = []
        for sign in (1, -1):
            neurons, bounds = open_questions(network, box, layer, sign)
            rows += [(neuron, sign) for neuron in neurons]
        rows = rows[: args.limit_questions]
        found = {"attack": 0, "milp": 0, "open": 0}
        print(f"layer {layer}: {len(rows)} open questions", flush=True)
        for neuron, sign in rows:
            started = time.monotonic()
            weights = [hidden.weight for hidden in network.hidden[: layer + 1]]
            biases = [hidden.bias for hidden in network.hidden[: layer + 1]]
            target = Net(weights[:layer], biases[:layer], sign * weights[layer][neuron], sign * biases[layer][neuron],
                         box.lower, box.upper, torch.float64, torch.device("cpu"))
            starts = box.lower + (box.upper - box.lower) * rng.random((args.starts, network.input_dim))
            points = bab._attack(target, starts, args.steps, 0.05, None, WITNESS_MARGIN)
            values = sign_values(network, layer, neuron, sign, points)
            how, best = "attack", float(values.max())
            if best <= WITNESS_MARGIN:
                ask = np.zeros(network.hidden_widths[layer], bool)
                ask[neuron] = True
                none = np.zeros_like(ask)
                solved = solve_layer(network, box, bounds[:layer], layer,
                                     ask_max=ask if sign > 0 else none, ask_min=none if sign > 0 else ask,
                                     mode="sign", solve_limit=args.milp_seconds)
                proved = solved.proved_inactive[neuron] if sign > 0 else solved.proved_active[neuron]
                if len(solved.candidates):
                    milp_best = float(sign_values(network, layer, neuron, sign, box.clip(solved.candidates)).max())
                    best = max(best, milp_best)
                how = "milp" if best > WITNESS_MARGIN else ("proved by milp" if proved else "open")
            key = how if how in found else "open"
            found[key] += 1
            seconds = time.monotonic() - started
            print(f"  neuron {neuron:4d} sign {sign:+d}: {how:15s} best {best:+.4f}  {seconds:6.1f} s", flush=True)
        print(f"layer {layer}: {found}", flush=True)


if __name__ == "__main__":
    main()
