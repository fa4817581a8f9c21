"""Branch and bound's domains per batch, measured: the same questions with several batch sizes, one after the
other in one process, one thread.

    python batch_size.py MODEL LAYER --neurons 8 78 60 --sizes 16 32 64 0 [--limit 60] [--repeat 2]

Size 0 is the engine's default (``bab_batch.default_batch_size``). Prints, per size, each question's verdict,
domains and seconds, and the totals; the sizes are taken round-robin ``--repeat`` times so that a drift of the
machine's speed spreads over all of them.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bab_questions import hidden_layers, question_setup  # noqa: E402
from exactcompress.engine.prove import bab  # noqa: E402
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN  # noqa: E402

torch.set_num_threads(1)
parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("layer", type=int)
parser.add_argument("--neurons", type=int, nargs="+", required=True)
parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 0])
parser.add_argument("--limit", type=float, default=60)
parser.add_argument("--repeat", type=int, default=1)
args = parser.parse_args()
_, network, box, below = question_setup(Path(args.model), args.layer)
W, B = hidden_layers(network, args.layer)
totals = {size: [0, 0.0, 0] for size in args.sizes}
for _ in range(args.repeat):
    for size in args.sizes:
        line = []
        for neuron in args.neurons:
            result = bab.prove_sign(W, B, box.lower, box.upper, below, args.layer, neuron, 1, margin=BOUND_MARGIN,
                                    witness_margin=WITNESS_MARGIN, deadline=time.monotonic() + args.limit,
                                    seed=neuron, batch_size=size or None)
            totals[size][0] += result.domains
            totals[size][1] += result.seconds
            totals[size][2] += result.status == "proved"
            line.append(f"{neuron}: {result.status} {result.domains} {result.seconds:.1f} s")
        print(f"batch {size or 'default'}: " + "; ".join(line), flush=True)
for size, (domains, seconds, proved) in totals.items():
    print(f"batch {size or 'default'}: {proved} proved, {domains} domains, {seconds:.1f} s "
          f"({1000 * seconds / max(domains, 1):.2f} ms a domain)")
