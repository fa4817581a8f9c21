"""The fixed cost of one `exactcompress compress` process: wall time against the report's own total.

    python benchmarks/run_cost.py --zoo out/bench_zoo [--trees . ../old-checkout] [--only NAME ...] [--repeat 3]

For each source tree (``python -m exactcompress`` runs in it, so it imports that tree's package; compare an
older checkout side by side, interleaved run by run) and each model: `exactcompress compress MODEL --quiet` run
``--repeat`` times in fresh processes; the wall time of the process, the report's ``seconds.total`` (load to
write) and their difference (interpreter start, imports, report.md/html and figures, exit). Then the import
time of each heavy dependency alone (a fresh ``python -c "import X"`` each, best of ``--repeat``). Writes
``run_cost.json`` and ``run_cost.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

DEFAULT_MODELS = ("d64-2x100-l1_1e-4", "d64-3x100-l1_1e-3", "d64-2x200-l1_1e-4")
IMPORTS = ("numpy", "torch", "pyscipopt", "pydantic", "rich", "typer", "matplotlib.figure", "scipy.linalg", "onnx",
           "exactcompress.cli", "exactcompress.pipeline")


def one_run(model: Path, tree: Path) -> dict:
    """Wall seconds of one compress process run in ``tree`` and the report's total."""
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "exactcompress", "compress", str(model.absolute()), "--out",
                        f"{scratch}/out", "--quiet"], check=True, capture_output=True, cwd=tree)
        wall = time.perf_counter() - start
        report = json.loads((Path(scratch) / "out" / "report.json").read_text())
    seconds = report["seconds"]
    return {"wall_s": wall, "total_s": seconds["total"], "overhead_s": wall - seconds["total"],
            "verify_s": seconds.get("verify", 0.0), "verify_share": seconds.get("verify", 0.0) / seconds["total"],
            "witnesses_s": seconds.get("witnesses", 0.0),
            "verify_inputs": report["verification"]["n_inputs"]}


def import_seconds(module: str, repeat: int) -> float:
    """Best wall time of ``python -c "import module"`` minus that of ``python -c pass``."""
    def best(code: str) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        return min(times)

    return best(f"import {module}") - best("pass")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, required=True, help="bench zoo directory")
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(".")], help="source trees to compare")
    parser.add_argument("--only", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME", help="models (names)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per model and imports (default 3)")
    parser.add_argument("--verify-models", nargs="*", default=[], metavar="NAME",
                        help="models run once per tree (name one twice for two runs) for the verification stage's "
                        "share of the total and the witness stage's seconds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="results directory")
    args = parser.parse_args(argv)
    rows = []
    for name in args.only:
        runs: dict[Path, list[dict]] = {tree: [] for tree in args.trees}
        for _ in range(args.repeat):  # interleaved: the trees share the machine's noise
            for tree in args.trees:
                runs[tree].append(one_run(args.zoo / f"{name}.pt", tree))
        for tree, measured in runs.items():
            rows.append({"model": name, "tree": str(tree), "runs": measured,
                         **{key: statistics.median(run[key] for run in measured)
                            for key in ("wall_s", "total_s", "overhead_s")}})
    verification = [{"model": name, "tree": str(tree), **one_run(args.zoo / f"{name}.pt", tree)}
                    for name in args.verify_models for tree in args.trees]
    imports = {module: import_seconds(module, args.repeat) for module in IMPORTS}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "run_cost.json").write_text(json.dumps({"models": rows, "verification": verification,
                                                        "import_s": imports}, indent=2) + "\n")
    lines = ["# The fixed cost of one compress process", "",
             "Medians of fresh processes (`--quiet`); overhead = wall − the report's total.", "",
             "| model | tree | wall s | report total s | overhead s |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {row['model']} | `{row['tree']}` | {row['wall_s']:.2f} | {row['total_s']:.2f} | {row['overhead_s']:.2f} |"
              for row in rows]
    if verification:
        lines += ["", "The verification stage (float64, 100,000 uniform draws + corners + witnesses) and the witness "
                  "search in one run:", "",
                  "| model | tree | verify s | inputs | witnesses s | total s | verify share |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {row['model']} | `{row['tree']}` | {row['verify_s']:.2f} | {row['verify_inputs']} | "
                  f"{row['witnesses_s']:.2f} | {row['total_s']:.2f} | {100 * row['verify_share']:.0f}% |"
                  for row in verification]
    lines += ["", "Import time of each module alone (best of the repeats, interpreter start subtracted):", "",
              "| module | s |", "| --- | --- |"]
    lines += [f"| `{module}` | {seconds:.2f} |" for module, seconds in imports.items()]
    (args.out / "run_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
