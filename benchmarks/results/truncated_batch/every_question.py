"""Every question open after the witness stage, from that stage's bounds, one thread: a search stopped after
STOP seconds (as the 2 s sweep stops it) and resumed for up to LIMIT seconds; with ``--no-stop`` also one search
without a stop.  Run from a source tree (cwd) to measure that tree's engine.

    python benchmarks/results/truncated_batch/every_question.py MODEL.pt STOP LIMIT [--no-stop]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as auto
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove import bab
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN


def main() -> None:
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(sys.argv[1])
    stop_after, limit, no_stop = float(sys.argv[2]), float(sys.argv[3]), "--no-stop" in sys.argv
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    for layer in range(len(network.hidden)):
        ask_max, ask_min = auto._open_questions(state, layer)
        weights = [hidden.weight for hidden in network.hidden[: layer + 1]]
        biases = [hidden.bias for hidden in network.hidden[: layer + 1]]
        below = [(b.lower, b.upper) for b in state.bounds[:layer]]
        for sign, asked in ((1, ask_max), (-1, ask_min)):
            for neuron in np.nonzero(asked)[0]:
                def ask(seconds):
                    return bab.prove_sign(weights, biases, box.lower, box.upper, below, layer, int(neuron), sign,
                                          margin=BOUND_MARGIN, witness_margin=WITNESS_MARGIN,
                                          deadline=time.monotonic() + seconds, seed=int(neuron))
                line = f"layer {layer + 1} neuron {neuron:4d} sign {sign:+d}:"
                if no_stop:
                    alone = ask(limit)
                    line += f" no stop {alone.status} {alone.domains} domains {alone.seconds:.1f} s |"
                first = ask(stop_after)
                line += f" stopped at {stop_after:g} s {first.status} after {first.domains} domains"
                if first.suspended is not None:
                    resumed = bab.resume_sign(first.suspended, deadline=time.monotonic() + limit)
                    line += f", resumed {resumed.status} {resumed.domains} domains {resumed.seconds:.1f} s"
                print(line, flush=True)


if __name__ == "__main__":
    main()
