"""How many of the questions open after the engine's witness stage a per-question gradient attack answers, by its
number of random starts and steps (``bab._attack``, the search each branch-and-bound question starts with).

    python benchmarks/results/open_question_witnesses/attack_sizes.py MODEL --layers 2 3 4 \
        --sizes 64x214 512x50 512x1000 2048x50

For every question open after bounds and the witness stage (``bab_questions.open_questions``) and every size
``STARTSxSTEPS``: the attack from that many uniform random starts (seeded per question and size), stopped at the
first point with ``sign * g > WITNESS_MARGIN``; a point counts only by the float64 forward pass of the original
network. Prints per layer and size the questions answered and the seconds the attacks took in all.
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
from exactcompress.io import load_network  # noqa: E402
from exactcompress.io.domain_files import scalar_box  # noqa: E402
from exactcompress.tolerances import WITNESS_MARGIN  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("--layers", type=int, nargs="+", required=True)
    parser.add_argument("--sizes", nargs="+", default=["64x214", "512x50", "512x1000", "2048x50"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, _ = load_network(args.model)
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    sizes = [tuple(int(part) for part in size.split("x")) for size in args.sizes]
    for layer in args.layers:
        questions = []
        for sign in (1, -1):
            neurons, _ = open_questions(network, box, layer, sign)
            questions += [(neuron, sign) for neuron in neurons]
        weights = [hidden.weight for hidden in network.hidden[: layer + 1]]
        biases = [hidden.bias for hidden in network.hidden[: layer + 1]]
        answered = {size: [] for size in sizes}
        seconds = dict.fromkeys(sizes, 0.0)
        for neuron, sign in questions:
            target = Net(weights[:layer], biases[:layer], sign * weights[layer][neuron], sign * biases[layer][neuron],
                         box.lower, box.upper, torch.float64, torch.device("cpu"))
            for starts, steps in sizes:
                rng = np.random.default_rng([neuron, sign + 1, starts, steps])
                began = time.monotonic()
                points = bab._attack(target, box.lower + (box.upper - box.lower) * rng.random((starts, len(box.lower))),
                                     steps, 0.05, None, WITNESS_MARGIN)
                seconds[(starts, steps)] += time.monotonic() - began
                values = sign * network.preactivations(points)[layer][:, neuron]
                if values.max() > WITNESS_MARGIN:
                    answered[(starts, steps)].append(f"{neuron}{'+' if sign > 0 else '-'}")
        print(f"layer {layer}: {len(questions)} open questions", flush=True)
        for size in sizes:
            print(f"  {size[0]} starts x {size[1]} steps: {len(answered[size])} answered in {seconds[size]:.1f} s "
                  f"({' '.join(answered[size])})", flush=True)


if __name__ == "__main__":
    main()
