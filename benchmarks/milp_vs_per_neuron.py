"""Proof methods side by side: per-neuron MILPs (2020) vs one MILP (2021) vs auto, on the bench zoo.

    python benchmarks/milp_vs_per_neuron.py --zoo out/bench_zoo [--methods per-neuron milp auto]
        [--cap 300] [--cap-for per-neuron=600 ...] [--jobs 1] [--only NAME ...] [--out benchmarks/results]
        [--fresh | --rerun METHOD ... | --redo METHOD ...]

Every method runs on every model in the same run, each in a fresh subprocess
(``python -m exactcompress compress MODEL --out TMP --method M --time-limit CAP --quiet``, in this
process's working directory and environment), so that its peak RSS is the child's own ``ru_maxrss``
(``os.wait4``). Results go to ``<out>/milp_vs_per_neuron.json`` and ``.md`` after every model; runs already
there for the same model file (sha256), method and cap are reused unless ``--fresh`` (failed runs are
retried); ``--rerun METHOD ...`` measures those methods again where their earlier run finished (a capped
run is kept: it would hit the cap again). ``--jobs N`` benchmarks N models at once (each model's methods
still run one after the other); every run records its N, since runs that share the machine run slower. Methods that finished exactly must agree on every layer's stably active and stably inactive
sets, and a partial run's stable sets must lie inside an exact run's: anything else is a soundness bug,
printed loudly, and the exit status is 1.

Optional method ``gurobi-per-neuron`` (not in the default set): the same 2020 per-neuron baseline in Gurobi,
run as ``python benchmarks/gurobi_per_neuron.py MODEL --out TMP --time-limit CAP``. Without ``gurobipy`` its
runs are "not installed" (skipped, not failed); a model too large for Gurobi's size-limited licence shows
"over licence". Below the table, besides the speed-ups: the median of t(gurobi-per-neuron) / t(auto) over the
models both finished exactly.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

BASELINE = "per-neuron"
#: the per-neuron baseline in Gurobi (benchmarks/gurobi_per_neuron.py); optional, needs ``pip install gurobipy``
GUROBI = "gurobi-per-neuron"
GUROBI_SCRIPT = Path(__file__).resolve().parent / "gurobi_per_neuron.py"
#: table order of the methods this script knows
KNOWN_METHODS = ("per-neuron", "milp", "auto", GUROBI)
DEFAULT_METHODS = ("per-neuron", "milp", "auto")
#: status of a run skipped because its solver is not installed (neither finished nor failed)
NOT_INSTALLED = "not installed"
#: how gurobi_per_neuron.py's error starts when the model is too large for a size-limited licence
OVER_LICENCE = "over licence"
RESULTS_FILE = "milp_vs_per_neuron"
MANIFEST_FILE = "bench_zoo.json"
DEFAULT_CAP_S = 300.0
#: a child still running after ``KILL_FACTOR * cap + KILL_GRACE_S`` seconds is killed (status "killed")
KILL_FACTOR = 3.0
KILL_GRACE_S = 120.0
POLL_S = 0.05
STABLE_KEYS = ("stably_active", "stably_inactive")


# ---------------------------------------------------------------------------------------------- one run


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gurobi_installed() -> bool:
    """Whether ``gurobipy`` can be imported by the children (same interpreter and environment as this one)."""
    return importlib.util.find_spec("gurobipy") is not None


def missing_solver(method: str) -> str | None:
    """Why ``method`` cannot run here (its solver is not installed), or None."""
    if method == GUROBI and not gurobi_installed():
        return "gurobipy is not installed (pip install gurobipy)"
    return None


def method_command(model: Path, method: str, cap: float, out: Path) -> list[str]:
    """The child's command line: ``python -m exactcompress compress ...``, or for GUROBI its own script."""
    if method == GUROBI:
        return [sys.executable, str(GUROBI_SCRIPT), str(model), "--out", str(out), "--time-limit", repr(float(cap))]
    return [sys.executable, "-m", "exactcompress", "compress", str(model), "--out", str(out),
            "--method", method, "--time-limit", repr(float(cap)), "--quiet"]


def not_installed_record(method: str, cap: float, reason: str, model_sha256: str) -> dict:
    """The record of a run skipped because its solver is missing (status NOT_INSTALLED; retried next time)."""
    return {"method": method, "cap_s": float(cap), "model_sha256": model_sha256,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "status": NOT_INSTALLED, "capped": False, "seconds": 0.0, "error": reason}


def over_licence(run: dict | None) -> bool:
    """A run refused because the model is too large for Gurobi's size-limited licence."""
    return run is not None and run["status"] == "failed" and str(run.get("error") or "").startswith(OVER_LICENCE)


def run_method(model: Path, method: str, cap: float, work_dir: Path, extra: Sequence[str] = (),
               tree: Path | None = None) -> dict:
    """Compress ``model`` with ``method`` under ``--time-limit cap`` (seconds) in a fresh subprocess, ``extra``
    appended to its command line; returns its run record. ``tree``: run that source tree's package (the child's
    working directory and ``PYTHONPATH``; its commit goes into the record), else the one this script imports.

    Record: method, cap_s, status (exact | partial | failed | killed), capped (the time limit cut the
    analysis), seconds (report's total; the child's wall time when there is no report), wall_seconds,
    exit_code, peak_rss_mib (child's ru_maxrss), neuron counts, per-layer stable sets, MILP statistics
    (harvested: ``milp.solutions_harvested``, 0 when the report has no such field), error, versions, date.
    """
    out = Path(work_dir) / method
    command = [*method_command(model, method, cap, out), *extra]
    log_path = Path(work_dir) / f"{method}.log"
    started = time.monotonic()
    in_tree = {} if tree is None else {"cwd": tree, "env": {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}}
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **in_tree)
    exit_code, usage, killed = _wait(child, KILL_FACTOR * cap + KILL_GRACE_S)
    wall = time.monotonic() - started
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    log_tail = " ".join(log_path.read_text(errors="replace").split()[-60:])
    return run_record(method, cap, report, exit_code=exit_code, killed=killed, wall_seconds=wall,
                      peak_rss_mib=usage.ru_maxrss / 1024.0, log_tail=log_tail, model_sha256=file_sha256(model),
                      tree=tree)


def _wait(child: subprocess.Popen, timeout: float):
    """Reap ``child`` with ``os.wait4`` (killing it after ``timeout`` s); returns (exit code, rusage, killed)."""
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid == child.pid:
            break
        if time.monotonic() > deadline and not killed:
            os.kill(child.pid, signal.SIGKILL)
            killed = True
        time.sleep(POLL_S)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage, killed


def run_record(method: str, cap: float, report: dict | None, *, exit_code: int, killed: bool, wall_seconds: float,
               peak_rss_mib: float, log_tail: str, model_sha256: str, tree: Path | None = None) -> dict:
    """The run record of one child from its ``report.json`` (``None`` if it wrote none); see ``run_method``."""
    record = {
        "method": method,
        "cap_s": float(cap),
        "model_sha256": model_sha256,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(tree),
        "exit_code": exit_code,
        "wall_seconds": round(wall_seconds, 3),
        "peak_rss_mib": round(peak_rss_mib, 1),
    }
    if killed or report is None:
        reason = f"killed after {wall_seconds:.0f} s" if killed else f"no report.json (exit code {exit_code}): {log_tail}"
        return {**record, "status": "killed" if killed else "failed", "capped": killed,
                "seconds": round(wall_seconds, 3), "error": reason}
    layers = report.get("layers", [])
    milp = report.get("milp") or {}
    counts = {key: sum(len(layer.get(key, [])) for layer in layers)
              for key in ("stably_active", "stably_inactive", "unstable", "undecided")}
    return {
        **record,
        "status": report["status"],
        "capped": bool(report.get("time_limit_reached", False)) and report["status"] == "partial",
        "seconds": round(float(report.get("seconds", {}).get("total", wall_seconds)), 3),
        "stage_seconds": {key: round(float(value), 3) for key, value in report.get("seconds", {}).items()},
        "error": report.get("error"),
        **counts,
        "neurons_before": report.get("neurons_before", 0),
        "neurons_after": report.get("neurons_after", 0),
        "nodes": int(milp.get("nodes", 0)),
        "solves": int(milp.get("solves", 0)),
        "harvested": int(milp.get("solutions_harvested", 0)),
        "milp": milp,
        "bab": report.get("bab") or {},
        "policy": report.get("policy"),
        "threads": report.get("threads"),
        "settled_by": _settled_by(layers),
        "layers": [{key: sorted(layer.get(key, [])) for key in STABLE_KEYS} for layer in layers],
        "versions": report.get("versions", {}),
    }


def _settled_by(layers: Sequence[dict]) -> dict[str, int]:
    """Neurons each step settled, over the report's layers (``settled_by``: step -> neuron indices)."""
    counts: dict[str, int] = {}
    for layer in layers:
        for step, neurons in (layer.get("settled_by") or {}).items():
            counts[step] = counts.get(step, 0) + len(neurons)
    return counts


# ------------------------------------------------------------------------------------- comparisons


def disagreements(runs: dict[str, dict]) -> list[str]:
    """Soundness conflicts between the runs of one model (method → run record); ``[]`` when they agree.

    Exact runs must have equal per-layer stably active and stably inactive sets; a partial run's stable
    sets must be subsets of the first exact run's (a proof is a proof, even when cut short).
    """
    exact = [method for method, run in runs.items() if run["status"] == "exact"]
    if not exact:
        return []
    reference = exact[0]
    problems = []
    for method, run in runs.items():
        if method == reference or run["status"] not in ("exact", "partial"):
            continue
        subset_only = run["status"] == "partial"
        if len(run["layers"]) != len(runs[reference]["layers"]):
            problems.append(f"{method} reports {len(run['layers'])} layers, {reference} {len(runs[reference]['layers'])}")
            continue
        for index, (mine, theirs) in enumerate(zip(run["layers"], runs[reference]["layers"])):
            for key in STABLE_KEYS:
                extra = sorted(set(mine[key]) - set(theirs[key]))
                missing = [] if subset_only else sorted(set(theirs[key]) - set(mine[key]))
                if extra:
                    problems.append(f"layer {index} {key}: {method} ({run['status']}) claims {extra}, {reference} (exact) does not")
                if missing:
                    problems.append(f"layer {index} {key}: {reference} (exact) claims {missing}, {method} (exact) does not")
    return problems


def lower_bound_seconds(run: dict) -> float | None:
    """Seconds to finish: the measured total, the cap if the cap cut the run (a lower bound), None if it failed."""
    if run["status"] in ("failed", "killed", NOT_INSTALLED) and not run["capped"]:
        return None
    return run["cap_s"] if run["capped"] else run["seconds"]


def speedup(baseline: dict | None, run: dict | None) -> dict:
    """``{"value": t(baseline)/t(run), "bound": "=" | "≥" | "≤"}``; value None when undefined.

    A capped baseline makes the value a lower bound (≥), a capped run an upper bound (≤); both capped,
    or either failed: undefined.
    """
    if baseline is None or run is None:
        return {"value": None, "bound": "="}
    t_base, t_run = lower_bound_seconds(baseline), lower_bound_seconds(run)
    if t_base is None or t_run is None or (baseline["capped"] and run["capped"]) or t_run <= 0:
        return {"value": None, "bound": "="}
    bound = "≥" if baseline["capped"] else "≤" if run["capped"] else "="
    return {"value": round(t_base / t_run, 3), "bound": bound}


def median_speedup(speedups: Sequence[dict]) -> dict:
    """Median of the defined speed-ups. Median is monotone, so lower bounds (≥) mixed with exact values give a
    lower bound, upper bounds (≤) an upper bound, both: "~" (neither). ``n``: how many values entered."""
    defined = [s for s in speedups if s["value"] is not None]
    if not defined:
        return {"value": None, "bound": "=", "n": 0}
    kinds = {s["bound"] for s in defined} - {"="}
    bound = "=" if not kinds else kinds.pop() if len(kinds) == 1 else "~"
    return {"value": round(statistics.median(s["value"] for s in defined), 3), "bound": bound, "n": len(defined)}


# -------------------------------------------------------------------------------------------- one model


def method_caps(methods: Sequence[str], cap: float, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Each method's ``--time-limit`` (seconds): ``overrides[method]`` where given, else ``cap``."""
    return {method: float((overrides or {}).get(method, cap)) for method in methods}


def benchmark_model(zoo_dir: Path, entry: dict, caps: Mapping[str, float], previous: dict | None = None,
                    say=lambda message: None, *, rerun: Sequence[str] = (), redo: Sequence[str] = (),
                    jobs: int = 1) -> dict:
    """Run (or reuse from ``previous``, the model's earlier row) every method of ``caps`` (method → cap, s) on one
    bench model; returns its row. ``rerun``: methods measured again unless their earlier run was capped;
    ``redo``: methods measured again whatever their earlier run was (after a change to the method's code);
    ``jobs``: how many models the caller benchmarks at once (recorded in each new run).

    Row: the manifest entry's fields, caps, runs (method → run record, including earlier runs of other
    methods), disagreements, speedups (method → ``speedup`` over per-neuron).
    """
    model = Path(zoo_dir) / entry["file"]
    sha = file_sha256(model)
    earlier = {m: run for m, run in ((previous or {}).get("runs") or {}).items()
               if run["cap_s"] == caps.get(m, run["cap_s"]) and run.get("model_sha256") == sha and m not in redo}
    runs = dict(earlier)
    for method, cap in caps.items():
        # failed and skipped runs are retried, except a refusal by the licence (it would be refused again)
        retry = earlier.get(method, {}).get("status") in ("failed", NOT_INSTALLED) and not over_licence(earlier.get(method))
        if method in earlier and not retry and (method not in rerun or earlier[method]["capped"]):
            say(f"{entry['name']} {method}: reused ({earlier[method]['status']}, {earlier[method]['seconds']:.1f} s)")
            continue
        missing = missing_solver(method)
        if missing:
            runs[method] = {**not_installed_record(method, cap, missing, sha), "jobs": jobs}
            say(f"{entry['name']} {method}: {NOT_INSTALLED}, skipped ({missing})")
            continue
        say(f"{entry['name']} {method}: running (cap {cap:g} s)")
        with tempfile.TemporaryDirectory(prefix="bench-") as work_dir:
            runs[method] = {**run_method(model, method, cap, Path(work_dir)), "jobs": jobs}
        say(f"{entry['name']} {method}: {describe(runs[method])}")
    runs = {m: runs[m] for m in _method_order(runs)}
    return {
        **{key: entry.get(key) for key in ("name", "file", "hidden", "l1", "inputs", "test_accuracy")},
        "caps": {m: run["cap_s"] for m, run in runs.items()},
        "runs": runs,
        "disagreements": disagreements(runs),
        "speedups": {m: speedup(runs.get(BASELINE), run) for m, run in runs.items() if m != BASELINE},
    }


def describe(run: dict) -> str:
    if run["status"] in ("failed", "killed", NOT_INSTALLED):
        return f"{run['status']}: {run['error']}"
    return (f"{run['status']} in {format_seconds(run)} s; {run['stably_active']} active, {run['stably_inactive']} "
            f"inactive, {run['undecided']} undecided; {run['nodes']} nodes; {run['peak_rss_mib']:.0f} MiB")


def _method_order(methods) -> list[str]:
    return sorted(methods, key=lambda m: (KNOWN_METHODS.index(m) if m in KNOWN_METHODS else len(KNOWN_METHODS), m))


# ------------------------------------------------------------------------------------------- results


def machine_info(rows: Sequence[dict]) -> dict:
    """CPU count and model, memory, OS, python and package versions (from the newest report), date, git commit."""
    versions, solver = {}, {}
    for row in rows:
        for method, run in row["runs"].items():
            if method == GUROBI:  # its report states Gurobi's versions, not the exactcompress run's torch/SCIP
                if run.get("versions", {}).get("gurobi") and run["date"] >= solver.get("_date", ""):
                    solver = {key: run["versions"][key] for key in ("gurobipy", "gurobi")} | {"_date": run["date"]}
            elif run.get("versions") and run["date"] >= versions.get("_date", ""):
                versions = {**run["versions"], "_date": run["date"]}
    versions = {**versions, **solver}
    versions.pop("_date", None)
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory": _proc_field("/proc/meminfo", "MemTotal"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
    }


def _proc_field(path: str, name: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git_commit(tree: Path | None = None) -> str | None:
    """HEAD of the git work tree holding ``tree`` (default: this script's), marked when files outside
    ``benchmarks/results`` changed."""
    tree = Path(__file__).parent if tree is None else Path(tree)
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=tree).stdout.strip()
        # the whole work tree except the results this script writes itself
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(top,exclude)benchmarks/results"], capture_output=True,
                               text=True, check=True, cwd=tree).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}{' (uncommitted changes)' if dirty else ''}"


def summary_caps(rows: Sequence[dict], caps: Mapping[str, float]) -> dict[str, float]:
    """``caps`` (this invocation's), completed for the methods it did not run with the cap most of the rows'
    runs of that method had (a ``--redo auto`` keeps the other methods' columns and their caps)."""
    merged = dict(caps)
    for m in {m for row in rows for m in row["runs"]} - set(caps):
        merged[m] = statistics.mode(row["caps"][m] for row in rows if m in row["caps"])
    return merged


def summarize(rows: Sequence[dict], caps: Mapping[str, float], jobs: int = 1) -> dict:
    """The results document: machine, caps, jobs, methods, rows, medians (method → ``median_speedup`` over the
    rows whose runs of that method and of the baseline had the caps in ``summary_caps``)."""
    caps = summary_caps(rows, caps)
    methods = _method_order({m for row in rows for m in row["runs"]})
    medians = {}
    for m in methods:
        if m == BASELINE:
            continue
        at_caps = [row for row in rows if m in row["speedups"] and all(
            row["caps"].get(k) == caps.get(k) for k in (m, BASELINE))]
        medians[m] = median_speedup([row["speedups"][m] for row in at_caps])
    ratios = {f"{GUROBI}/auto": median_ratio(rows, GUROBI, "auto")} if GUROBI in methods and "auto" in methods else {}
    return {
        "benchmark": "milp_vs_per_neuron",
        "machine": machine_info(rows),
        "caps": dict(caps),
        "jobs": jobs,
        "methods": methods,
        "baseline": BASELINE,
        "rows": list(rows),
        "medians": medians,
        "ratios": ratios,
    }


def median_ratio(rows: Sequence[dict], numerator: str, denominator: str) -> dict:
    """Median of t(numerator) / t(denominator) over the rows where both runs are exact (``n``: how many)."""
    values = [row["runs"][numerator]["seconds"] / row["runs"][denominator]["seconds"] for row in rows
              if all(row["runs"].get(m, {}).get("status") == "exact" for m in (numerator, denominator))
              and row["runs"][denominator]["seconds"] > 0]
    return {"value": round(statistics.median(values), 3) if values else None, "n": len(values)}


def load_rows(out_dir: Path) -> dict[str, dict]:
    """Rows of an earlier results file in ``out_dir`` by model name (``{}`` if none)."""
    path = Path(out_dir) / f"{RESULTS_FILE}.json"
    return {row["name"]: row for row in json.loads(path.read_text())["rows"]} if path.is_file() else {}


def write_results(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``milp_vs_per_neuron.json`` and ``.md`` into ``out_dir`` (atomically); returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / f"{RESULTS_FILE}.json", out_dir / f"{RESULTS_FILE}.md"
    for path, text in zip(paths, (json.dumps(results, indent=2, ensure_ascii=False) + "\n", render_markdown(results))):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text)
        temporary.replace(path)
    return paths


def format_seconds(run: dict | None) -> str:
    if run is None:
        return "–"
    if run["capped"]:
        return f"≥ {run['cap_s']:g}"
    if over_licence(run):
        return OVER_LICENCE
    if run["status"] in ("failed", "killed", NOT_INSTALLED):
        return run["status"]
    return f"{run['seconds']:.1f}" + (" partial" if run["status"] == "partial" else "")


def format_speedup(value: dict | None) -> str:
    if value is None or value["value"] is None:
        return "–"
    prefix = "" if value["bound"] == "=" else f"{value['bound']} "
    return f"{prefix}{value['value']:.2f}×"


def proof_steps(run: dict | None) -> str:
    """Which MILPs a run used, from its report's ``milp`` statistics: ``none`` (bounds and witnesses settled
    everything), ``per-neuron``, ``single`` or ``single+per-neuron``; ``–`` without a report."""
    if run is None or "milp" not in run:
        return "–"
    finished = run["milp"].get("single_milp_finished")
    solves = int(run["milp"].get("solves", 0))
    if finished is None:
        return "per-neuron" if solves else "none"
    return "single" if solves <= 1 else "single+per-neuron"


def stable_counts(row: dict) -> str:
    """"active/inactive" from the first exact run ("≥a/≥i" from a partial one when none is exact)."""
    runs = [run for run in row["runs"].values() if run["status"] in ("exact", "partial")]
    exact = [run for run in runs if run["status"] == "exact"]
    if exact:
        return f"{exact[0]['stably_active']}/{exact[0]['stably_inactive']}"
    if runs:
        best = max(runs, key=lambda run: run["stably_active"] + run["stably_inactive"])
        return f"≥{best['stably_active']}/≥{best['stably_inactive']}"
    return "–"


def table(results: dict) -> str:
    """The per-model table as aligned Markdown (readable in a terminal too)."""
    methods = results["methods"]
    others = [m for m in methods if m != BASELINE]
    header = (["model", "neurons", "stable act/inact"] + [f"s {m}" for m in methods]
              + [f"speed-up {m}" for m in others] + [f"nodes {m}" for m in methods]
              + [f"harvested {m}" for m in others] + [f"MiB {m}" for m in methods]
              + (["MILPs auto"] if "auto" in methods else []) + ["agree"])
    lines = []
    for row in results["rows"]:
        runs = row["runs"]

        def cell(method, key, runs=runs):
            run = runs.get(method)
            return "–" if run is None or key not in run else str(run[key])

        other_caps = {m: cap for m, cap in row["caps"].items() if results["caps"].get(m) != cap}
        lines.append(
            [row["name"] + "".join(f" ({m} cap {cap:g})" for m, cap in other_caps.items()),
             str(sum(row.get("hidden") or [])), stable_counts(row)]
            + [format_seconds(runs.get(m)) for m in methods]
            + [format_speedup(row["speedups"].get(m)) for m in others]
            + [cell(m, "nodes") for m in methods]
            + [cell(m, "harvested") for m in others]
            + [cell(m, "peak_rss_mib") for m in methods]
            + ([proof_steps(runs.get("auto"))] if "auto" in methods else [])
            + ["DISAGREE" if row["disagreements"] else "ok"]
        )
    widths = [max(len(text) for text in column) for column in zip(header, *lines)]
    render = lambda cells: "| " + " | ".join(text.ljust(width) for text, width in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([render(header), render(["-" * width for width in widths]), *map(render, lines)])


def _shared_runs_note(results: dict) -> str:
    """A sentence naming the runs measured while other models were benchmarked at once (``jobs`` > 1)."""
    by_jobs: dict[int, int] = {}
    for row in results["rows"]:
        for run in row["runs"].values():
            by_jobs[run.get("jobs", 1)] = by_jobs.get(run.get("jobs", 1), 0) + 1
    shared = {jobs: count for jobs, count in by_jobs.items() if jobs > 1}
    if not shared:
        return ""
    counts = ", ".join(f"{count} of the {sum(by_jobs.values())} runs with {jobs} models" for jobs, count in sorted(shared.items()))
    return (f" Measured while other models were benchmarked at once (`--jobs`): {counts} (field `jobs` of each run "
            "in the json); runs that share the machine are somewhat slower than alone.")


def _commits_note(results: dict) -> str:
    """A sentence naming the commits the runs measured (field ``git_commit`` of each run) when they differ."""
    by_commit: dict[str, int] = {}
    for row in results["rows"]:
        for run in row["runs"].values():
            if run["status"] == NOT_INSTALLED:
                continue
            recorded = run.get("git_commit") or "unrecorded"
            commit = recorded[:12] + (" (uncommitted changes)" if recorded.endswith("(uncommitted changes)") else "")
            by_commit[commit] = by_commit.get(commit, 0) + 1
    if len(by_commit) <= 1:
        return ""
    counts = ", ".join(f"{count} at `{commit}`" for commit, count in sorted(by_commit.items(), key=lambda item: -item[1]))
    return (f" The runs come from more than one commit (`--rerun`/`--redo` measure only some again): {counts} "
            "(field `git_commit` of each run; `unrecorded`: runs older than that field).")


def _gurobi_version(results: dict) -> str:
    """", Gurobi X.Y.Z" from the newest gurobi-per-neuron run that states it, else ""."""
    stated = [(run["date"], run["versions"]["gurobi"]) for row in results["rows"]
              for m, run in row["runs"].items() if m == GUROBI and (run.get("versions") or {}).get("gurobi")]
    return f", Gurobi {max(stated)[1]}" if stated else ""


def format_caps(caps: Mapping[str, float], methods: Sequence[str] | None = None) -> str:
    return ", ".join(f"{m} {cap:g} s" for m, cap in caps.items() if methods is None or m in methods)


def median_lines(results: dict) -> list[str]:
    lines = []
    for method, median in results["medians"].items():
        lines.append(f"median speed-up of {method} over {BASELINE}: {format_speedup(median)} "
                     f"({median['n']} models; caps {format_caps(results['caps'], (method, BASELINE))})")
    for name, ratio in (results.get("ratios") or {}).items():
        numerator, denominator = name.split("/")
        value = "–" if ratio["value"] is None else f"{ratio['value']:.2f}"
        lines.append(f"median ratio t({numerator})/t({denominator}) over the models both finished (exact): {value} "
                     f"({ratio['n']} models)")
    return lines


def render_markdown(results: dict) -> str:
    machine = results["machine"]
    versions = ", ".join(f"{key} {value}" for key, value in machine["versions"].items())
    capped = [(row["name"], m) for row in results["rows"] for m, run in row["runs"].items() if run["capped"]]
    bad = [(row["name"], problem) for row in results["rows"] for problem in row["disagreements"]]
    failed = [(row["name"], m, run["error"]) for row in results["rows"] for m, run in row["runs"].items()
              if run["status"] in ("failed", "killed") and not over_licence(run)]
    refused = [(row["name"], m, run["error"]) for row in results["rows"] for m, run in row["runs"].items() if over_licence(run)]
    skipped = {m: run["error"] for row in results["rows"] for m, run in row["runs"].items() if run["status"] == NOT_INSTALLED}
    skipped_models = {m: [row["name"] for row in results["rows"] if row["runs"].get(m, {}).get("status") == NOT_INSTALLED]
                      for m in skipped}
    gurobi = GUROBI in results["methods"]
    parts = [
        "# Proof methods side by side: per-neuron MILPs vs one MILP vs auto" + (" (and per-neuron in Gurobi)" if gurobi else ""),
        "",
        f"Measured on {machine['cpu_count']} CPUs ({machine['cpu_model'] or 'unknown CPU'}, {machine['memory'] or '? memory'}), "
        f"{machine['platform']}, Python {machine['python']}; {versions}. Written {machine['date']}, "
        f"git {machine['git_commit'] or 'unknown'}. Caps (`--time-limit` per run): {format_caps(results['caps'])}; "
        "each run is a fresh `python -m exactcompress compress` process"
        + (f" (`{GUROBI}`: `benchmarks/gurobi_per_neuron.py`{_gurobi_version(results)})" if gurobi else "") + "."
        + _shared_runs_note(results) + _commits_note(results),
        "",
        table(results),
        "",
        *median_lines(results),
        "",
        "## Notes",
        "",
        "- `s <method>`: wall seconds of the whole run as the report states it (load, bounds, witnesses, proofs, "
        "compression, verification, writing; not the interpreter start). `≥ cap`: the cap cut the analysis "
        "(status partial); the run would have needed more.",
        f"- `speed-up <method>` = t({BASELINE}) / t(method). `≥`: {BASELINE} was capped, so the speed-up is a lower "
        "bound; `≤`: the method was capped, an upper bound; `–`: both capped or a run failed. A median over "
        "lower bounds and exact values is a lower bound.",
        "- `stable act/inact`: stably active / stably inactive hidden neurons from the first exact run "
        "(`≥` from a partial run when none finished). `nodes`: branch-and-bound nodes over all MILP solves. "
        "`harvested`: solutions harvested by the single MILP (0 where the report has none). `MiB`: the "
        "child's peak resident memory (ru_maxrss). `MILPs auto`: what `auto` chose after bounds and witnesses: "
        "`none` (nothing left open), `per-neuron` (sign solves; at most 4 open questions), `single` (the single "
        "MILP proved the rest), `single+per-neuron` (the single MILP stopped at its budget; sign solves for the rest).",
        "- `agree`: exact runs have equal stable sets per layer and partial runs' stable sets lie inside them.",
    ]
    if gurobi:
        parts.append(f"- `{GUROBI}`: the per-neuron baseline (two MILPs per neuron solved to optimality, layer by layer, "
                     "big-M from interval bounds on the first layer and from the MILP optima above) in Gurobi, one thread; "
                     "it proves stability only (no compression or verification in its seconds). `over licence`: the model's "
                     "MILP is larger than Gurobi's size-limited licence allows (2000 variables, 2000 linear constraints); "
                     "refused, no result claimed.")
    if capped:
        parts.append("- capped runs (`≥`): " + ", ".join(f"{name} {method}" for name, method in capped) + ".")
    if failed:
        parts += [f"- failed: {name} {method}: {error}" for name, method, error in failed]
    if refused:
        parts += [f"- {OVER_LICENCE}: {name} {method}: {error}" for name, method, error in refused]
    for method, reason in skipped.items():
        parts.append(f"- **{method} not installed**: {reason}; its runs were skipped, not failed "
                     f"({', '.join(skipped_models[method])}), and run on the next call once it is installed.")
    if bad:
        parts += ["", "## SOUNDNESS: the methods disagree", ""] + [f"- {name}: {problem}" for name, problem in bad]
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------- main


def select_entries(zoo_dir: Path, names: Sequence[str] | None) -> list[dict]:
    """Manifest entries of the bench zoo in ``zoo_dir``, only ``names`` if given (unknown names raise ValueError)."""
    entries = json.loads((Path(zoo_dir) / MANIFEST_FILE).read_text())["models"]
    unknown = sorted(set(names or ()) - {entry["name"] for entry in entries})
    if unknown:
        raise ValueError(f"not in {Path(zoo_dir) / MANIFEST_FILE}: {unknown}")
    return [entry for entry in entries if not names or entry["name"] in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, required=True, help="bench zoo directory (with bench_zoo.json)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        help=f"methods, passed to --method as they are ({GUROBI}: benchmarks/gurobi_per_neuron.py, "
                             "needs gurobipy)")
    parser.add_argument("--cap", type=float, default=DEFAULT_CAP_S, help="--time-limit of every run, seconds")
    parser.add_argument("--cap-for", nargs="+", default=[], metavar="METHOD=SECONDS",
                        help="a different --time-limit for these methods, e.g. per-neuron=600")
    parser.add_argument("--jobs", type=int, default=1, help="models benchmarked at once (default 1)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="benchmark only these models")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="results directory")
    parser.add_argument("--fresh", action="store_true", help="rerun everything, ignoring earlier results")
    parser.add_argument("--rerun", nargs="+", default=[], metavar="METHOD",
                        help="measure these methods again where their earlier run finished (capped runs are kept)")
    parser.add_argument("--redo", nargs="+", default=[], metavar="METHOD",
                        help="measure these methods again on every model, capped runs too (after their code changed)")
    args = parser.parse_args(argv)
    try:
        entries = select_entries(args.zoo, args.only)
        overrides = {method: float(seconds) for method, seconds in (item.split("=", 1) for item in args.cap_for)}
    except (OSError, ValueError) as error:
        parser.error(str(error))
    caps = method_caps(args.methods, args.cap, overrides)
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    rows = {} if args.fresh else load_rows(args.out)
    zoo_order = [entry["name"] for entry in select_entries(args.zoo, None)]
    order = zoo_order + [name for name in rows if name not in zoo_order]
    lock = threading.Lock()

    def one_model(entry: dict) -> None:
        row = benchmark_model(args.zoo, entry, caps, rows.get(entry["name"]), say, rerun=args.rerun, redo=args.redo,
                              jobs=args.jobs)
        for problem in row["disagreements"]:
            say(f"SOUNDNESS BUG: {entry['name']}: {problem}")
        with lock:
            rows[entry["name"]] = row
            write_results(summarize([rows[name] for name in order if name in rows], caps, args.jobs), args.out)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(one_model, entry) for entry in entries]:
            future.result()
    results = summarize([rows[name] for name in order if name in rows], caps, args.jobs)
    json_path, md_path = write_results(results, args.out)
    print(table(results))
    print()
    print("\n".join(median_lines(results)))
    print(f"\nwrote {json_path} and {md_path}")
    if any(row["disagreements"] for row in results["rows"]):
        say("SOUNDNESS BUG: methods disagree on stable sets; see the results file")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
