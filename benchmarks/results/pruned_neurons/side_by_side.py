"""`compress` of each net with two engine trees, one run after the other (one process each, `--method auto`
unless METHOD is set): status, neuron counts and the stage seconds from each report.

    [METHOD=milp] .venv/bin/python benchmarks/results/pruned_neurons/side_by_side.py BEFORE_TREE AFTER_TREE LIMIT \
        OUT.json NET.pt...
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

before, after, limit, out = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
runs = []
for model in sys.argv[5:]:
    for label, tree in (("before", before), ("after", after)):
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}  # run in the tree: its package first
            subprocess.run([sys.executable, "-m", "exactcompress", "compress", str(Path(model).resolve()), "--out",
                            folder, "--force", "--quiet", "--time-limit", limit,
                            "--method", os.environ.get("METHOD", "auto")], env=env, cwd=tree, check=True,
                           capture_output=True)
            report = json.loads((Path(folder) / "report.json").read_text())
        counts = {state: sum(len(layer[state]) for layer in report["layers"])
                  for state in ("stably_inactive", "stably_active", "undecided")}
        run = {"model": Path(model).stem, "tree": label, "method": report["method"], "status": report["status"], **counts,
               "neurons_after": report["neurons_after"], "seconds": report["seconds"], "bab": report["bab"],
               "milp": report["milp"]}
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if k not in ("bab", "milp")}), flush=True)
out.write_text(json.dumps(runs, indent=1) + "\n")
