"""auto on a model with one line per branch-and-bound search that a round stops: the process's RSS, the searches
kept for the next round and their bytes (``SuspendedSearch.nbytes``), and glibc's heap in use and free (mallinfo2).

    python benchmarks/results/suspended_memory/trace_kept_searches.py out/bench_zoo/d64-2x400-l1_0.pt 420
        (from the repository root; the run of trace_kept_searches_420s_ec049c2.log, engine of ec049c2)
"""
import ctypes, sys, time, threading
from exactcompress.allocator import tune_allocator
tune_allocator()
import numpy as np
from exactcompress.engine.prove import bab_layer as BL
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.engine.analyze import analyze

class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena","ordblks","smblks","hblks","hblkhd","usmblks","fsmblks","uordblks","fordblks","keepcost")]
libc = ctypes.CDLL("libc.so.6"); libc.mallinfo2.restype = MI
t0 = time.monotonic()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) // 1024
orig = BL._KeptSearches.add
def add(self, key, search):
    orig(self, key, search)
    m = libc.mallinfo2()
    kept = sum(s.nbytes() for s in self.searches.values()) >> 20
    print(f"{time.monotonic()-t0:7.1f} s  rss {rss()} MiB  kept {len(self.searches)} searches {kept} MiB  (new {search.nbytes()>>20} MiB)  "
          f"malloc in use {(m.uordblks + m.hblkhd)>>20} MiB  free in heap {m.fordblks>>20} MiB  mmapped {m.hblkhd>>20} MiB", flush=True)
BL._KeptSearches.add = add
net, _ = load_network(sys.argv[1])
a = analyze(net, scalar_box(0.0, 1.0).broadcast(net.input_dim), method="auto", time_limit=float(sys.argv[2]), threads=2)
print("done", rss())
