# bab_questions.py with the query universe capped at $QN neurons (default 256 = MAX_QUERY_NEURONS), run from the
# repository root at c58e1c5, e.g. QN=16 python benchmarks/results/lower_layer_bounds/what_if/query_universe.py
# out/bench_zoo/d64-2x100-l1_0.pt --layer 1 --neurons 8 78 60 --limit 60 (outputs: query_universe_*.txt here).
import os, sys
sys.path.insert(0, "."); sys.path.insert(0, "benchmarks")
from exactcompress.engine.prove import bab_batch
n = int(os.environ.get("QN", "256"))
f = bab_batch.QueryUniverse.at_root.__func__
f.__defaults__ = (n,)
import bab_questions
bab_questions.main(sys.argv[1:])
