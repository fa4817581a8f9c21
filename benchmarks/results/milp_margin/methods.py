"""`milp` and `per-neuron` (the methods whose proofs are MILP dual bounds alone) on a few bench nets, two source trees
interleaved run by run, one fresh `compress` process each; per row the neuron counts of the report.

    python benchmarks/results/milp_margin/methods.py BEFORE_TREE AFTER_TREE OUT.json CAP METHOD MODEL...
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run(tree: str, method: str, model: str, cap: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "exactcompress", "compress", str(Path(model).absolute()), "--out",
                        f"{scratch}/out", "--method", method, "--time-limit", cap, "--quiet"],
                       capture_output=True, text=True, cwd=tree)
        report = json.loads((Path(scratch) / "out" / "report.json").read_text())
    counts = {name: sum(len(layer[name]) for layer in report["layers"])
              for name in ("stably_active", "stably_inactive", "unstable", "undecided")}
    return {"tree": tree, "method": method, "model": Path(model).stem, "status": report["status"],
            "total_s": round(report["seconds"]["total"], 1), **counts}


def main() -> None:
    before, after, out, cap, method, *models = sys.argv[1:]
    rows = []
    for model in models:
        for tree in (before, after):
            rows.append(run(tree, method, model, cap))
            print(json.dumps(rows[-1]), flush=True)
            Path(out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
