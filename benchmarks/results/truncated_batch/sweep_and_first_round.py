"""Branch and bound alone as `auto` runs it first: the 2 s sweep over every open question, then the first round
(20 s more for each question the sweep stopped), one thread, from the witness stage's bounds; prints the
questions open after each and their seconds.  Run from a source tree (cwd) to measure that tree's engine.

    python benchmarks/results/truncated_batch/sweep_and_first_round.py MODEL.pt
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as auto
from exactcompress.engine.progress import ignore
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box


def main() -> None:
    tune_allocator()
    torch.set_num_threads(1)
    network, _ = load_network(sys.argv[1])
    box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
    state = auto._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    row = {"model": sys.argv[1].rsplit("/", 1)[-1], "after_witnesses": auto._count_open(state)}
    fanout = auto.Fanout(device="cpu")
    for name, limit in (("sweep", auto.BAB_SWEEP_LIMIT), ("first_round", auto.BAB_FIRST_ROUND_LIMIT)):
        start = time.monotonic()
        auto._bab(network, box, state, None, fanout, ignore, limit)
        row[f"after_{name}"] = auto._count_open(state)
        row[f"{name}_s"] = round(time.monotonic() - start, 1)
    row["domains"] = state.bab.domains
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
