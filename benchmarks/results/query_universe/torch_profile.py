"""torch's profiler over branch and bound on the first N open questions of one layer (SECONDS each, one thread):
which operations take the time.

    python benchmarks/results/query_universe/torch_profile.py MODEL LAYER N SECONDS   (from the repository root)
"""
import sys, time
sys.path.insert(0, "benchmarks")
import torch
from pathlib import Path
from bab_questions import open_questions, ask
from exactcompress.allocator import tune_allocator
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
tune_allocator(); torch.set_num_threads(1)
model, layer, n, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
network, _ = load_network(Path(model))
box = scalar_box(0.0, 1.0).broadcast(network.input_dim).boxes[0]
qs, lb = open_questions(network, box, layer, 1)
print(len(qs), "open; asking", qs[:n], [h.weight.shape for h in network.hidden])
below = [(b.lower, b.upper) for b in lb[:layer]]
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as prof:
    rows = ask(network, box, below, layer, qs[:n], 1, limit)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
