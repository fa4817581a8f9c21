"""Incremental zoo runs: the ledger (skip unchanged models), leases (concurrent runs), on a real local Ray and a
real SeaweedFS server; the ledger and lease protocols on both storage backends."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from rich.console import Console
from typer.testing import CliRunner
from zoo_files import write_good

from exactcompress.cli import app
from exactcompress.distributed.zoo_job import run_zoo_job
from exactcompress.reports.report import REPORT_JSON as REPORT
from exactcompress.schema import (
    Lease,
    LeaseElsewhere,
    ModelTask,
    ZooJobSpec,
    ZooLedger,
    ZooSummary,
)
from exactcompress.storage import open_storage
from exactcompress.zoo.layout import domain_digest, run_prefix
from exactcompress.zoo.leases import (
    LeaseTerms,
    acquire,
    lease_key,
    lease_terms,
    read_lease,
    release,
)
from exactcompress.zoo.ledger import (
    LEDGER,
    consolidate,
    entry_key,
    new_entry,
    read_ledger,
    record,
)
from exactcompress.zoo.plan import plan_tasks
from exactcompress.zoo.task import resolve_domain


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return open_storage(str(tmp_path / "root"))
    return request.getfixturevalue("s3_storage")


def upload_model(source, key: str, seed: int, tmp_path: Path) -> str:
    """Write a small good net, upload it under ``key``; returns its sha256."""
    path = write_good(tmp_path / f"seed{seed}" / "model.pt", seed=seed)
    source.upload(path, key)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def zoo_spec(s3_storage) -> ZooJobSpec:
    return ZooJobSpec(source=s3_storage.child("zoo").url(), output=s3_storage.child("out").url(), time_limit_s=60)


def stored_ledger(output) -> ZooLedger:
    return ZooLedger.model_validate_json(output.get_bytes(LEDGER))


def reports(output) -> list[str]:
    return [key for key in output.list_keys("runs/") if key.endswith("/" + REPORT)]


# ---------------------------------------------------------------------------------------- Ray runs


def test_second_run_compresses_only_the_new_model(tmp_path, s3_storage, local_ray):
    spec = zoo_spec(s3_storage)
    source, output = s3_storage.child("zoo"), s3_storage.child("out")
    shas = {key: upload_model(source, key, seed, tmp_path) for key, seed in (("a.pt", 1), ("sub/b.pt", 2))}

    first = run_zoo_job(spec, incremental=True)
    assert (first.analysed, first.reused, first.exit_code) == (2, 0, 0)
    assert sorted(entry.sha256 for entry in stored_ledger(output).entries) == sorted(shas.values())

    shas["c.pt"] = upload_model(source, "c.pt", 3, tmp_path)
    spec_path = tmp_path / "nightly.yaml"
    spec_path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    cli = CliRunner().invoke(app, ["zoo", "run", str(spec_path), "--incremental", "--quiet"])
    assert cli.exit_code == 0, cli.output
    assert ("2 of 3 models reused from earlier runs or identical files (2 unchanged per the ledger, not "
            "downloaded)") in cli.output

    summary = ZooSummary.model_validate_json(output.get_bytes("summary.json"))
    assert {row.source_key.rsplit("/zoo/", 1)[1]: row.sha256 for row in summary.models} == shas
    assert all(row.status == "exact" and row.report_key for row in summary.models)
    before = {row.source_key: row for row in first.summary.models}
    assert all(before[row.source_key] == row for row in summary.models if row.source_key in before)
    ledger = stored_ledger(output)
    assert sorted(entry.sha256 for entry in ledger.entries) == sorted(shas.values())  # each sha once
    assert len(reports(output)) == 3 and output.list_keys("leases/") == []

    third = run_zoo_job(spec, incremental=True)  # nothing new: no task at all
    assert (third.analysed, third.unchanged) == (0, 3) and stored_ledger(output) == ledger


def test_changed_model_is_compressed_again(tmp_path, s3_storage, local_ray):
    spec = zoo_spec(s3_storage)
    source, output = s3_storage.child("zoo"), s3_storage.child("out")
    old = upload_model(source, "a.pt", 1, tmp_path)
    upload_model(source, "b.pt", 2, tmp_path)
    assert run_zoo_job(spec, incremental=True).analysed == 2

    new = upload_model(source, "a.pt", 4, tmp_path)  # same key, new bytes
    again = run_zoo_job(spec, incremental=True)

    assert (again.analysed, again.unchanged) == (1, 1)
    [row] = [row for row in again.summary.models if row.source_key.endswith("/a.pt")]
    assert row.sha256 == new != old
    by_key = Counter(entry.source_key.rsplit("/", 1)[1] for entry in stored_ledger(output).entries)
    assert by_key == {"a.pt": 2, "b.pt": 1}  # both versions of a.pt are recorded


def test_two_runs_started_together_do_each_model_once(tmp_path, s3_storage, local_ray):
    spec = zoo_spec(s3_storage)
    source, output = s3_storage.child("zoo"), s3_storage.child("out")
    shas = {upload_model(source, f"m{seed}.pt", seed, tmp_path) for seed in range(1, 6)}
    start = threading.Barrier(2)

    def one_run(_: int):
        start.wait()
        return run_zoo_job(spec, incremental=True)

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(one_run, range(2)))

    assert sum(run.analysed for run in runs) == len(shas)
    for run in runs:
        assert run.exit_code == 0
        seen = {row.source_key for row in run.summary.models} | set(run.summary.in_progress_elsewhere)
        assert len(seen) == len(shas) and run.summary.totals.in_progress_elsewhere == len(run.summary.in_progress_elsewhere)
    assert len(reports(output)) == len(shas)
    assert sorted(entry.sha256 for entry in read_ledger(output).entries) == sorted(shas)
    assert output.list_keys("leases/") == []


def test_expired_lease_is_taken_over_and_a_live_one_is_respected(tmp_path, s3_storage, local_ray):
    spec = zoo_spec(s3_storage)
    source, output = s3_storage.child("zoo"), s3_storage.child("out")
    shas = {key: upload_model(source, key, seed, tmp_path) for key, seed in (("crashed.pt", 1), ("busy.pt", 2))}
    lease_keys = {}
    for task in plan_tasks(spec):
        prefix = run_prefix(task, shas[task.key], domain_digest(resolve_domain(task.domain, task.source_root)))
        lease_keys[task.key] = lease_key(prefix)
    now = time.time()
    output.put_bytes(lease_keys["crashed.pt"], Lease(holder="crashed-run", sha256=shas["crashed.pt"],
                                                     expires_at=now - 1).model_dump_json().encode())
    busy = Lease(holder="other-run", sha256=shas["busy.pt"], expires_at=now + 3600)
    output.put_bytes(lease_keys["busy.pt"], busy.model_dump_json().encode())

    log = io.StringIO()
    run = run_zoo_job(spec, incremental=True, console=Console(file=log, width=400))

    assert run.exit_code == 0 and run.analysed == 1
    assert f"compressing: {source.url('busy.pt')}: in progress in another run · " in log.getvalue(), log.getvalue()
    assert [row.source_key for row in run.summary.models] == [source.url("crashed.pt")]
    assert run.summary.in_progress_elsewhere == [source.url("busy.pt")] and run.summary.totals.in_progress_elsewhere == 1
    assert run.summary.leases_elsewhere == [LeaseElsewhere(source_key=source.url("busy.pt"), holder="other-run",
                                                           expires_at=busy.expires_at)]
    assert output.list_keys("leases/") == [lease_keys["busy.pt"]]  # ours released, the live one untouched
    assert read_lease(output, lease_keys["busy.pt"]) == busy
    assert [entry.source_key for entry in stored_ledger(output).entries] == [source.url("crashed.pt")]

    after = run_zoo_job(spec, incremental=True, take_over_leases=True)  # an operator knows the other run is dead
    assert (after.analysed, after.unchanged, after.summary.in_progress_elsewhere) == (1, 1, [])
    assert output.list_keys("leases/") == []


# ------------------------------------------------------------------------------ protocols, no Ray


def test_lease_is_exclusive_renewable_and_released_only_by_its_holder(storage):
    key = lease_key("runs/0123456789abcdef/auto-abc-v1")
    assert key == "leases/0123456789abcdef/auto-abc-v1.json"
    mine, theirs = LeaseTerms("run-a", 60), LeaseTerms("run-b", 60)
    assert acquire(storage, key, "sha", mine)
    assert not acquire(storage, key, "sha", theirs)  # live lease of another run
    first = read_lease(storage, key)
    assert acquire(storage, key, "sha", mine)  # a retried task of the same run renews it
    assert read_lease(storage, key).expires_at >= first.expires_at
    release(storage, key, "run-b")
    assert read_lease(storage, key).holder == "run-a"
    release(storage, key, "run-a")
    assert storage.list_keys() == []
    assert acquire(storage, key, "sha", theirs)


def test_an_expired_lease_is_taken_over_by_exactly_one_of_many_runs(storage):
    key = lease_key("runs/0123456789abcdef/auto-abc-v1")
    storage.put_bytes(key, Lease(holder="crashed", sha256="sha", expires_at=time.time() - 5).model_dump_json().encode())
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda index: acquire(storage, key, "sha", LeaseTerms(f"run-{index}", 60)), range(8)))
    assert won.count(True) == 1
    winner = f"run-{won.index(True)}"
    assert read_lease(storage, key).holder == winner
    release(storage, key, winner)
    assert storage.list_keys() == []  # the lease and its takeover claim are gone


def test_an_unreadable_lease_is_taken_over(storage):
    key = lease_key("runs/0123456789abcdef/auto-abc-v1")
    storage.put_bytes(key, b'{"holder": "torn')
    assert acquire(storage, key, "sha", LeaseTerms("run-a", 60))
    assert read_lease(storage, key).holder == "run-a"


def test_lease_duration_follows_the_time_limit():
    spec = ZooJobSpec(source="zoo", output="out", time_limit_s=100)
    assert lease_terms(spec, "r") == LeaseTerms("r", 800.0)
    assert lease_terms(spec.model_copy(update={"lease_s": 30.0}), "r").seconds == 30.0
    assert lease_terms(spec.model_copy(update={"time_limit_s": None}), "r").seconds == 24 * 3600


def entry(index: int, sha: str | None = None):
    return new_entry(sha or f"{index:064x}", f"s3://zoo/m{index}.pt", f"runs/{index:016x}/auto-x-v1/report.json",
                     "exact", f"etag=e{index};size=1;modified=0")


def test_ledger_entries_are_never_lost_by_concurrent_writers(storage):
    entries = [entry(index) for index in range(24)]

    def finish(item):  # a task records its entry while drivers consolidate
        record(storage, item)
        return consolidate(storage)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(finish, entries))
    assert {entry_key(item) for item in read_ledger(storage).entries} == {entry_key(item) for item in entries}
    storage.put_bytes(LEDGER, ZooLedger(entries=entries[:3]).model_dump_json().encode())  # a stale rewrite
    assert len(read_ledger(storage).entries) == 24
    assert len(consolidate(storage).entries) == 24 and len(stored_ledger(storage).entries) == 24


def test_ledger_records_a_fact_once_and_survives_a_damaged_snapshot(storage):
    first = entry(1)
    record(storage, first)
    record(storage, first.model_copy(update={"finished_at": "2099-01-01T00:00:00+00:00"}))  # same fact, later
    assert read_ledger(storage).entries == [first]
    record(storage, entry(1).model_copy(update={"source_fingerprint": "etag=other;size=1;modified=9"}))
    assert len(consolidate(storage).entries) == 2  # a new version of the same bytes is a new fact
    storage.put_bytes(LEDGER, b"{not json")
    assert len(read_ledger(storage).entries) == 2
    assert consolidate(storage) == stored_ledger(storage)


def test_verify_samples_changes_the_run_prefix_only_when_not_the_default():
    base = ZooJobSpec(source="file:///zoo", output="file:///out")
    task = ModelTask(source_root=base.source, key="m.pt", domain=base.domain, spec=base)
    default = run_prefix(task, "ab" * 32, "domain")
    explicit = task.model_copy(update={"spec": base.model_copy(update={"verify_samples": 100_000})})
    fewer = task.model_copy(update={"spec": base.model_copy(update={"verify_samples": 1000})})
    assert run_prefix(explicit, "ab" * 32, "domain") == default  # earlier results stay reusable
    assert run_prefix(fewer, "ab" * 32, "domain") != default
    with pytest.raises(ValidationError, match="verify_samples"):
        ZooJobSpec(source="file:///zoo", output="file:///out", verify_samples=-1)
