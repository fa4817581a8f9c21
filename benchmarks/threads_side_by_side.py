"""`auto` with different ``--threads`` side by side on bench nets, one run after the other per net.

    python benchmarks/threads_side_by_side.py --zoo out/bench_zoo --only NAME ... [--threads 1 2] [--cap 300]
        [--out benchmarks/results/threads/rounds]

Each net is compressed once per ``--threads`` value, in that order, each in a fresh subprocess
(``python -m exactcompress compress MODEL --method auto --time-limit CAP --threads N --quiet``, peak RSS from
``os.wait4``), before the next net starts, so the runs of one net see the same machine. Results go to
``<out>/threads_side_by_side.json`` and ``.md`` after every run. Runs that finished exactly must agree on
every stable set, and a partial run's stable sets must lie inside an exact run's (exit status 1 otherwise),
as in ``milp_vs_per_neuron.py``, whose run records these are.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import milp_vs_per_neuron as bench  # noqa: E402

RESULTS_FILE = "threads_side_by_side"


def run_auto(model: Path, threads: int, cap: float, work_dir: Path) -> dict:
    """``auto`` on ``model`` with ``--threads threads`` under ``--time-limit cap``: the run record of
    ``milp_vs_per_neuron.run_method`` with ``threads`` added."""
    return {**bench.run_method(model, "auto", cap, work_dir, extra=("--threads", str(threads))), "threads": threads}


def _machine(machine: dict) -> str:
    versions = machine.get("versions", {})
    return (f"{machine.get('cpus_usable')} CPUs ({machine.get('cpu_model')}), {machine.get('memory')}, torch "
            f"{versions.get('torch')}, SCIP {versions.get('scip')}")


def render_markdown(results: dict) -> str:
    """One row per net, one column group per ``--threads`` value."""
    counts = results["threads"]
    head = " | ".join(f"{n} thread{'s' if n > 1 else ''}: result · domains · peak RSS (MiB)" for n in counts)
    lines = [f"# `auto` with --threads {' / '.join(map(str, counts))}, {results['cap_s']:g} s cap, one run after "
             "the other per net", "", f"Engine `{results['git_commit']}`; {_machine(results['machine'])}.", "",
             f"| net | {head} |", "|---" * (1 + len(counts)) + "|"]
    for row in results["rows"]:
        cells = []
        for n in counts:
            run = row["runs"].get(str(n))
            if run is None:
                cells.append("–")
                continue
            result = (f"exact in {run['seconds']:.1f} s" if run["status"] == "exact"
                      else f"{run['status']}, {run.get('undecided', '?')} undecided")
            cells.append(f"{result} · {run.get('bab', {}).get('domains', 0):,} · {run['peak_rss_mib']:.0f}")
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    problems = [problem for row in results["rows"] for problem in row["disagreements"]]
    lines += ["", "Stable sets: " + ("; ".join(problems) if problems else "every run agrees with every other.")]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, required=True, help="bench zoo directory (with bench_zoo.json)")
    parser.add_argument("--only", nargs="+", required=True, metavar="NAME", help="the nets to run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="--threads values, run in this order")
    parser.add_argument("--cap", type=float, default=bench.DEFAULT_CAP_S, help="--time-limit of every run, seconds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "threads" / "rounds",
                        help="results directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"benchmark": RESULTS_FILE, "cap_s": args.cap, "threads": args.threads,
               "git_commit": bench._git_commit(), "machine": {}, "rows": []}
    failed = False
    for entry in bench.select_entries(args.zoo, args.only):
        row = {"name": entry["name"], "runs": {}, "disagreements": []}
        results["rows"].append(row)
        for threads in args.threads:
            with tempfile.TemporaryDirectory(prefix="threads_") as work:
                run = run_auto(args.zoo / entry["file"], threads, args.cap, Path(work))
            row["runs"][str(threads)] = run
            print(f"{entry['name']}: --threads {threads}: {bench.describe(run)}", flush=True)
            row["disagreements"] = bench.disagreements({f"threads {n}": r for n, r in row["runs"].items()})
            failed |= bool(row["disagreements"])
            results["machine"] = bench.machine_info([{"runs": {"auto": r}} for r in row["runs"].values()])
            (args.out / f"{RESULTS_FILE}.json").write_text(json.dumps(results, indent=1))
            (args.out / f"{RESULTS_FILE}.md").write_text(render_markdown(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
