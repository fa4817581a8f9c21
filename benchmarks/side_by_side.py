"""Two or more engine trees, or settings, side by side on the same nets: one fresh ``compress`` process per tree,
setting and net, one after the other per net (their order reversed on every second repeat), so every pair sees
the same machine.

    python benchmarks/side_by_side.py --trees ../before . --out benchmarks/results/NAME [--cap 300]
        [--method auto] [--repeat 1] [--extra=--threads=2] NET.pt ...
    python benchmarks/side_by_side.py --trees . --variant='--threads 1' --variant='--threads 2' --out ... NET.pt ...

``--variant`` (repeatable) runs every tree once per variant, with the variant's arguments after ``--extra``'s;
a run's ``tree`` in the results is then its tree and variant.

Each run is ``milp_vs_per_neuron.run_method`` with the tree's own package (working directory and
``PYTHONPATH``; its commit in the record): status, neuron counts, per-layer stable sets, stage seconds,
branch-and-bound and MILP statistics, wall seconds and peak RSS. ``<out>/side_by_side.json`` and ``.md`` are
rewritten after every run. The runs of one net must agree (``milp_vs_per_neuron.disagreements``: exact runs on
equal stable sets, a partial run's inside an exact one's); exit status 1 where they do not.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import milp_vs_per_neuron as bench  # noqa: E402

RESULTS_FILE = "side_by_side"


def label(tree: Path) -> str:
    """A tree's name in the results: its commit's first 7 hex digits, with ``+`` for uncommitted changes."""
    commit = bench._git_commit(tree) or "?"
    return commit[:7] + ("+" if commit.endswith("(uncommitted changes)") else "")


def run_pairs(models: Sequence[Path], trees: Sequence[Path], *, cap: float, method: str, repeat: int,
              extra: Sequence[str], out: Path, variants: Sequence[str] = ()) -> list[str]:
    """Every model under every tree and variant (a string of ``compress`` arguments; none: each tree once),
    ``repeat`` times; returns the disagreements found (``[]``: none)."""
    configs = [(tree, variant) for tree in trees for variant in (variants or [""])]
    labels = [label(tree) + (f" {variant}" if variant else "") for tree, variant in configs]
    rows, problems = [], []
    for model in models:
        for round_ in range(repeat):
            order = list(range(len(configs)))[:: -1 if round_ % 2 else 1]
            runs = {}
            for index in order:
                tree, variant = configs[index]
                with tempfile.TemporaryDirectory() as work:
                    run = bench.run_method(model.resolve(), method, cap, Path(work), [*extra, *shlex.split(variant)],
                                           tree=tree)
                run = {"model": model.stem, "tree": labels[index], "repeat": round_, **run}
                runs[f"{labels[index]}#{index}"] = run
                rows.append(run)
                print(describe(run), flush=True)
                write(out, rows, cap, method, extra)
            found = bench.disagreements(runs)
            problems += [f"{model.stem}: {problem}" for problem in found]
    return problems


def describe(run: dict) -> str:
    """One line: net, tree, status, undecided, seconds, domains, peak RSS."""
    domains = (run.get("bab") or {}).get("domains", 0)
    return (f"{run['model']} {run['tree']}: {run['status']}, {run.get('undecided', '-')} undecided, "
            f"{run['seconds']:.1f} s, {domains} domains, {run['peak_rss_mib']:.0f} MiB")


def write(out: Path, rows: list[dict], cap: float, method: str, extra: Sequence[str]) -> None:
    """``<out>/side_by_side.json`` (every run record) and ``.md`` (one table row per run)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{RESULTS_FILE}.json").write_text(json.dumps(
        {"cap_s": cap, "method": method, "extra": list(extra), "rows": rows}, indent=1) + "\n")
    lines = [f"`{method}` at {cap:g} s{' ' + ' '.join(extra) if extra else ''}, one fresh process per run", "",
             "| net | tree | status | undecided | seconds (total · bab · prove · verify) | domains | peak RSS (MiB) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in rows:
        stages = run.get("stage_seconds", {})
        seconds = " · ".join(f"{stages.get(key, 0.0):.1f}" for key in ("total", "bab", "prove", "verify"))
        lines.append(f"| {run['model']} | {run['tree']} | {run['status']} | {run.get('undecided', '-')} | {seconds} | "
                     f"{(run.get('bab') or {}).get('domains', 0):,} | {run['peak_rss_mib']:,.0f} |")
    (out / f"{RESULTS_FILE}.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="model files")
    parser.add_argument("--trees", type=Path, nargs="+", required=True, help="source trees, in run order")
    parser.add_argument("--out", type=Path, required=True, help="directory for side_by_side.json and .md")
    parser.add_argument("--cap", type=float, default=bench.DEFAULT_CAP_S, help="--time-limit of every run (s)")
    parser.add_argument("--method", default="auto", choices=bench.KNOWN_METHODS[:3], help="--method of every run")
    parser.add_argument("--repeat", type=int, default=1, help="pairs per net (the order alternates)")
    parser.add_argument("--extra", action="append", default=[],
                        help="one more argument for compress, as --extra=--threads=2 (repeatable)")
    parser.add_argument("--variant", action="append", default=[],
                        help="compress arguments of one more run per tree, as --variant='--threads 1' (repeatable)")
    args = parser.parse_args(argv)
    problems = run_pairs(args.models, args.trees, cap=args.cap, method=args.method, repeat=args.repeat,
                         extra=args.extra, out=args.out, variants=args.variant)
    for problem in problems:
        print(f"DISAGREEMENT {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
