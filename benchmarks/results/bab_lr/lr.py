"""Run benchmarks/bab_questions.py with branch and bound's Adam learning rates changed:
lr.py LR_LAMBDA LR_ALPHA LR_ETA LR_DECAY ARGS...  (ARGS as bab_questions.py takes them; a value '-' keeps the engine's)."""
import runpy
import sys

from exactcompress.engine.prove import bab_batch

for name, value in zip(("LR_LAMBDA", "LR_ALPHA", "LR_ETA", "LR_DECAY"), sys.argv[1:5]):
    if value != "-":
        setattr(bab_batch, name, float(value))
print("learning rates:", {name: getattr(bab_batch, name) for name in ("LR_LAMBDA", "LR_ALPHA", "LR_ETA", "LR_DECAY")},
      flush=True)
sys.argv = ["benchmarks/bab_questions.py"] + sys.argv[5:]
runpy.run_path("benchmarks/bab_questions.py", run_name="__main__")
