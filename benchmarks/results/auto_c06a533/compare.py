"""The auto column of milp_vs_per_neuron.json before and after a --redo auto: compare.py BEFORE.json AFTER.json.
Prints a Markdown table: per net, the earlier run (commit, status, seconds, undecided, branch-and-bound domains,
peak RSS) and the new one."""
import json
import sys


def auto_runs(path):
    data = json.load(open(path))
    return {row["name"]: row["runs"].get("auto") for row in data["rows"]}


def cell(run):
    if run is None:
        return "–", "–", "–"
    commit = (run.get("git_commit") or "unrecorded")[:7]
    what = (f"exact {run['seconds']:.1f} s" if run["status"] == "exact"
            else f"{run['status']}, {run['undecided']} undecided")
    domains = (run.get("bab") or {}).get("domains", 0)
    return commit, what, f"{domains:,} / {run['peak_rss_mib']:.0f}"


before, after = auto_runs(sys.argv[1]), auto_runs(sys.argv[2])
print("| net | before (commit) | before | after (commit) | after | bab domains / MiB before → after |")
print("| --- | --- | --- | --- | --- | --- |")
for name in after:
    b, a = cell(before.get(name)), cell(after[name])
    print(f"| {name} | {b[0]} | {b[1]} | {a[0]} | {a[1]} | {b[2]} → {a[2]} |")
