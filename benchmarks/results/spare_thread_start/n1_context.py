"""Branch and bound on one question of d3072-5x100-l1_1e-4 (fourth hidden layer, neuron 1, "can it be active?")
from the bounds auto has at two moments: after the witness stage (as ``benchmarks/bab_questions.py``) and after
branch and bound's 2 s sweep over every open question (proofs applied, the bounds reached on open questions
intersected in); the second also resumed from the sweep's own suspended search. One thread, 60 s each.

    python benchmarks/results/spare_thread_start/n1_context.py out/bench_zoo/d3072-5x100-l1_1e-4.pt
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

LAYER, NEURON, SIGN, LIMIT = 3, 1, 1, 60.0


def fresh(network, box, bounds, label: str) -> None:
    weights = [hidden.weight for hidden in network.hidden[: LAYER + 1]]
    biases = [hidden.bias for hidden in network.hidden[: LAYER + 1]]
    below = [(b.lower, b.upper) for b in bounds[:LAYER]]
    widths = " / ".join(f"{float(np.mean(u - l)):.2f}" for l, u in below)
    result = bab.prove_sign(weights, biases, box.lower, box.upper, below, LAYER, NEURON, SIGN, margin=BOUND_MARGIN,
                            witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + LIMIT, seed=NEURON)
    print(f"{label}: mean widths below {widths}: {result.status}, {result.domains} domains, {result.seconds:.1f} s, "
          f"bound {result.best_bound:.4f}", flush=True)


def main() -> None:
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(sys.argv[1])
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    assert auto._open_questions(state, LAYER)[0][NEURON]
    fresh(network, box, state.bounds, "witness-stage bounds")
    auto._bab(network, box, state, None, auto.Fanout(device="cpu"), ignore, auto.BAB_SWEEP_LIMIT)
    print(f"after the sweep: {auto._count_open(state)} questions open; this one open: "
          f"{bool(auto._open_questions(state, LAYER)[0][NEURON])}", flush=True)
    fresh(network, box, auto._settled_bounds(state), "bounds after the sweep")
    suspended = state.suspended.get((LAYER, NEURON, SIGN))
    if suspended is not None:
        result = bab.resume_sign(suspended, deadline=time.monotonic() + LIMIT)
        print(f"the sweep's search resumed: {result.status}, {result.domains} domains, {result.seconds:.1f} s, "
              f"bound {result.best_bound:.4f}", flush=True)


if __name__ == "__main__":
    main()
