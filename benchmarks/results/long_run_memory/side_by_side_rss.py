"""`auto` at 300 s, two source trees interleaved run by run (before, then after), one fresh `compress` process
each under ``/usr/bin/time``: status, undecided neurons, seconds, branch-and-bound domains and peak RSS.

    python benchmarks/results/long_run_memory/side_by_side_rss.py BEFORE_TREE AFTER_TREE OUT.json MODEL...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(tree: str, model: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "exactcompress", "compress",
                               str(Path(model).absolute()), "--out", f"{scratch}/out", "--method", "auto",
                               "--time-limit", "300", "--quiet"],
                              capture_output=True, text=True, cwd=tree, env={**os.environ, "PYTHONPATH": tree})
        report = json.loads((Path(scratch) / "out" / "report.json").read_text())
    return {"tree": tree, "model": Path(model).stem, "status": report["status"],
            "undecided": sum(len(layer["undecided"]) for layer in report["layers"]),
            "total_s": round(report["seconds"]["total"], 1), "bab_domains": report["bab"]["domains"],
            "peak_rss_mib": int(done.stderr.split()[-1]) // 1024}


def main() -> None:
    before, after, out, *models = sys.argv[1:]
    rows = []
    for model in models:
        for tree in (before, after):
            rows.append(run(tree, model))
            print(json.dumps(rows[-1]), flush=True)
    Path(out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
