"""`compress` of each pruned net with two engine trees, one run after the other (`auto`, one process each):
status, neuron counts, what settled the pruned rows and the stage seconds from each report.

    .venv/bin/python benchmarks/results/pruned_neurons/side_by_side.py BEFORE_TREE AFTER_TREE LIMIT OUT.json NET.pt...
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
                            folder, "--force", "--quiet", "--time-limit", limit], env=env, cwd=tree, check=True,
                           capture_output=True)
            report = json.loads((Path(folder) / "report.json").read_text())
        counts = {state: sum(len(layer[state]) for layer in report["layers"])
                  for state in ("stably_inactive", "stably_active", "undecided")}
        run = {"model": Path(model).stem, "tree": label, "status": report["status"], **counts,
               "neurons_after": report["neurons_after"], "seconds": report["seconds"], "bab": report["bab"]}
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if k not in ("bab",)}), flush=True)
out.write_text(json.dumps(runs, indent=1) + "\n")
