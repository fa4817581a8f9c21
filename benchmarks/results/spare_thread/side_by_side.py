"""`auto` at 300 s on the nets whose last few questions the spare thread could take, two source trees
interleaved run by run (the engine before it, then with it), one fresh `compress` process each.

Each row also holds branch and bound's figures from the report (``bab``); ``--repeat N`` runs each pair N times.

    python benchmarks/results/spare_thread/side_by_side.py BEFORE_TREE AFTER_TREE OUT.json [--repeat N] MODEL...
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(tree: str, model: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "exactcompress", "compress", str(Path(model).absolute()), "--out",
                               f"{scratch}/out", "--method", "auto", "--time-limit", "300", "--quiet"],
                              capture_output=True, text=True, cwd=tree)
        wall = time.perf_counter() - start
        report = json.loads((Path(scratch) / "out" / "report.json").read_text())
    undecided = sum(len(layer["undecided"]) for layer in report["layers"])
    return {"tree": tree, "model": Path(model).stem, "status": report["status"], "undecided": undecided,
            "total_s": round(report["seconds"]["total"], 1), "wall_s": round(wall, 1), "bab": report["bab"],
            "policy": report.get("policy"),
            "stderr_lines": len(done.stderr.splitlines())}


def main() -> None:
    before, after, out, *models = sys.argv[1:]
    repeat = 1
    if models[0] == "--repeat":
        repeat, models = int(models[1]), models[2:]
    rows = []
    for model in models:
        for _ in range(repeat):
            for tree in (before, after):
                rows.append(run(tree, model))
                print(json.dumps(rows[-1]), flush=True)
                Path(out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
