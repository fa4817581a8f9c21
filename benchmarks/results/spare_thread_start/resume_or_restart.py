"""After auto's 2 s branch-and-bound sweep, each question it left open answered twice under the same limit: its
sweep search resumed (what auto's first round does) and a fresh search from the same bounds (those after the
sweep). One thread; verdict, domains and seconds of each.

    python benchmarks/results/spare_thread_start/resume_or_restart.py MODEL [LIMIT]
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
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    auto._bab(network, box, state, None, auto.Fanout(device="cpu"), ignore, auto.BAB_SWEEP_LIMIT)
    settled = auto._settled_bounds(state)
    print(f"{sys.argv[1]}: {auto._count_open(state)} questions open after the sweep; {limit:g} s each", flush=True)
    for (layer, neuron, sign), suspended in sorted(state.suspended.items()):
        if not auto._open_questions(state, layer)[0 if sign > 0 else 1][neuron]:
            continue
        resumed = bab.resume_sign(suspended, deadline=time.monotonic() + limit)
        weights = [hidden.weight for hidden in network.hidden[: layer + 1]]
        biases = [hidden.bias for hidden in network.hidden[: layer + 1]]
        below = [(b.lower, b.upper) for b in settled[:layer]]
        fresh = bab.prove_sign(weights, biases, box.lower, box.upper, below, layer, neuron, sign, margin=BOUND_MARGIN,
                               witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + limit, seed=neuron)
        print(f"  layer {layer + 1} neuron {neuron:4d} sign {sign:+d}: resumed {resumed.status} {resumed.domains} domains "
              f"{resumed.seconds:.1f} s (bound {resumed.best_bound:.4f}) | fresh {fresh.status} {fresh.domains} domains "
              f"{fresh.seconds:.1f} s (bound {fresh.best_bound:.4f})", flush=True)


if __name__ == "__main__":
    main()
