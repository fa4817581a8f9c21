"""Zoo job scaling: the same small zoo with 1 Ray worker CPU vs 2, side by side, on the local S3 server.

    python benchmarks/zoo_scaling.py [--models 40] [--repeats 3] [--out benchmarks/results]

Each run is a fresh subprocess with its own embedded Ray (``--num-cpus`` 1 or 2) and a fresh output prefix
in one local SeaweedFS bucket; runs alternate (1, 2, 1, 2, …) so drift on a noisy machine hits both alike.
Per run: wall seconds of ``run_zoo_job`` (Ray already started; the job's planning, tasks, storage traffic
and summary all count), Σ engine seconds (the reports' ``seconds.total``) and the job layer's cost per
model = (wall − Σ engine / CPUs) / N — the time a model spends in the job layer rather than in the engine,
per CPU (with 1 CPU exactly the issue's (wall − Σ engine) / N, which is the headline figure).
Throughput ratio = median wall(1 CPU) / median wall(2 CPUs).
Writes ``<out>/zoo_scaling.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS_FILE = "zoo_scaling"
BUCKET = "zoo-scaling"


def write_models(directory: Path, count: int) -> list[Path]:
    """``count`` small ReLU MLPs (16 inputs, 2×32 hidden, some neurons pushed towards stability), float32
    state_dicts, deterministic by index."""
    paths = []
    for index in range(count):
        rng = np.random.default_rng(index)
        sizes = [16, 32, 32, 4]
        state = {}
        for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
            bias = rng.uniform(-1, 1, fan_out)
            if layer < 2:
                bias[: fan_out // 3] += rng.choice([-2.0, 2.0], fan_out // 3)
            state[f"{2 * layer}.weight"] = torch.tensor(rng.normal(size=(fan_out, fan_in)) / np.sqrt(fan_in), dtype=torch.float32)
            state[f"{2 * layer}.bias"] = torch.tensor(bias, dtype=torch.float32)
        path = directory / f"net{index:03d}.pt"
        torch.save(state, path)
        paths.append(path)
    return paths


def child(spec_json: str, cpus: int) -> None:
    """One timed run (called in a subprocess): prints a JSON line with wall and engine seconds."""
    from exactcompress.distributed.zoo_job import connect, run_zoo_job
    from exactcompress.schema import ZooJobSpec

    spec = ZooJobSpec.model_validate_json(spec_json)
    connect(None, num_cpus=cpus)
    start = time.monotonic()
    run = run_zoo_job(spec)
    wall = time.monotonic() - start
    print(json.dumps({"wall_s": wall, "engine_s": run.summary.totals.engine_seconds, "models": run.summary.totals.models,
                      "failed": run.summary.totals.failed, "reused": run.reused}))


def timed_run(spec_json: str, cpus: int, env: dict[str, str]) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", spec_json, "--cpus", str(cpus)],
        env=env, capture_output=True, text=True, check=True,
    )
    record = json.loads(completed.stdout.strip().splitlines()[-1])
    record["cpus"] = cpus
    record["overhead_per_model_s"] = (record["wall_s"] - record["engine_s"] / cpus) / record["models"]
    return record


def markdown(result: dict) -> str:
    rows = ["| run | CPUs | wall s | Σ engine s | job layer s / model |", "|---|---|---|---|---|"]
    for index, run in enumerate(result["runs"]):
        rows.append(f"| {index + 1} | {run['cpus']} | {run['wall_s']:.2f} | {run['engine_s']:.2f} | {run['overhead_per_model_s']:.3f} |")
    return "\n".join([
        f"# Zoo job scaling — {result['models']} models, {result['date']}",
        "",
        f"Machine: {result['machine']}. Each run a fresh process with its own embedded Ray; output to a local "
        "SeaweedFS bucket; runs alternate between 1 and 2 CPUs.",
        "",
        *rows,
        "",
        f"- throughput ratio, 2 CPUs over 1 (median wall 1 CPU / median wall 2 CPUs): **{result['throughput_ratio']:.2f}** (target ≥ 1.8)",
        f"- job layer's cost per model, (wall − Σ engine) / N, median over the 1-CPU runs: **{result['median_overhead_per_model_s']:.3f} s** (target ≤ 0.3 s)",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cpus", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.cpus)
        return

    from exactcompress.schema import ZooJobSpec
    from exactcompress.storage import open_storage
    from exactcompress.storage.local_s3 import LocalS3Server, create_buckets

    with tempfile.TemporaryDirectory(prefix="zoo-scaling-") as scratch_name, LocalS3Server(Path(scratch_name) / "s3") as server:
        scratch = Path(scratch_name)
        endpoint = server.endpoint
        env = {**os.environ, **endpoint.env(), "RAY_TMPDIR": str(scratch)}
        os.environ.update(endpoint.env())
        create_buckets(endpoint, [BUCKET])
        source = open_storage(f"s3://{BUCKET}/models")
        (scratch / "models").mkdir()
        for path in write_models(scratch / "models", args.models):
            source.upload(path, path.name)
        runs = []
        for repeat in range(args.repeats):
            for cpus in (1, 2):
                spec = ZooJobSpec(source=source.url(), output=f"s3://{BUCKET}/out-{cpus}-{repeat}", time_limit_s=60)
                runs.append(timed_run(spec.model_dump_json(), cpus, env))
                print(json.dumps(runs[-1]), flush=True)
    wall = {cpus: statistics.median(run["wall_s"] for run in runs if run["cpus"] == cpus) for cpus in (1, 2)}
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "models": args.models,
        "runs": runs,
        "throughput_ratio": wall[1] / wall[2],
        "median_overhead_per_model_s": statistics.median(run["overhead_per_model_s"] for run in runs if run["cpus"] == 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{RESULTS_FILE}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{RESULTS_FILE}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
