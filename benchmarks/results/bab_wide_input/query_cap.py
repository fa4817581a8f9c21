# from the repository root, the two at once (one thread each), HEAD 40f6a17:
#   python query_cap.py 256 out/bench_zoo/d3072-5x100-l1_1e-4.pt --layer 3 --limit 60
#   python query_cap.py 96 out/bench_zoo/d3072-5x100-l1_1e-4.pt --layer 3 --limit 60
# python qcap.py CAP <bab_questions args>: bab_questions.py with the query universe capped at CAP neurons
import sys, runpy
import exactcompress.engine.prove.bab_batch as BB
cap = int(sys.argv[1])
BB.QueryUniverse.at_root.__func__.__defaults__ = (cap,)
print("query cap", cap)
sys.argv = ["bab_questions.py"] + sys.argv[2:]
runpy.run_path("benchmarks/bab_questions.py", run_name="__main__")
