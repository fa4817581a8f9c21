import sys, time, numpy as np, torch
import exactcompress; print("engine at", exactcompress.__file__)
from exactcompress.io import load_network
from exactcompress.engine import bounds as bounds_mod
from exactcompress.engine.domain import Box
from exactcompress.engine.witnesses import search, WitnessSet
paths = sys.argv[1:]
for path in paths:
    net, _ = load_network(path)
    box = Box(np.zeros(net.input_dim), np.ones(net.input_dim))
    b = bounds_mod.propagate(net, box)
    for threads in (2, 1, 2, 1):
        torch.set_num_threads(threads)
        t = time.perf_counter()
        w = search(net, box, WitnessSet.empty(net), bounds=b, rng=np.random.default_rng(0))
        print(f"{path.split('/')[-1]:32s} torch threads {threads}: {time.perf_counter() - t:6.2f} s, open {sum(int(m.sum()) for ms in w.open_signs() for m in ms)}", flush=True)
