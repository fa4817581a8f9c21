"""torch's profiler over branch and bound on the first N open questions of one layer (SECONDS each, one thread):
which operations take the time.

    python benchmarks/results/query_universe/torch_profile.py MODEL LAYER N SECONDS   (from the repository root)
"""

import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, "benchmarks")
from bab_questions import ask, open_questions  # noqa: E402

from exactcompress.allocator import tune_allocator  # noqa: E402
from exactcompress.io import load_network  # noqa: E402
from exactcompress.io.domain_files import scalar_box  # noqa: E402

tune_allocator()
torch.set_num_threads(1)
model, layer, count, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
network, _ = load_network(Path(model))
box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
questions, bounds = open_questions(network, box, layer, 1)
print(len(questions), "open; asking", questions[:count], [hidden.weight.shape for hidden in network.hidden])
below = [(b.lower, b.upper) for b in bounds[:layer]]
with profile(activities=[ProfilerActivity.CPU]) as profiler:
    ask(network, box, below, layer, questions[:count], 1, limit)
print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
