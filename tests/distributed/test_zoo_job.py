"""The zoo job end to end: real local Ray, real SeaweedFS, real SCIP."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml
from nets import random_net
from rich.console import Console
from zoo_files import write_good, write_mixed_zoo

from exactcompress.distributed.cluster import ray_parallel_map
from exactcompress.distributed.zoo_job import run_zoo_job
from exactcompress.engine.analyze import analyze
from exactcompress.errors import InputError
from exactcompress.io.domain_files import scalar_box
from exactcompress.reports.report import write_reports
from exactcompress.schema import CompressionReport, ZooJobSpec, ZooSummary
from exactcompress.schema.specfile import read_job_spec
from exactcompress.storage import open_storage
from exactcompress.zoo import task as zoo_task
from exactcompress.zoo.plan import plan_tasks
from exactcompress.zoo.task import run_model_task

SMALL_LIMIT = 20_000


def upload_tree(directory: Path, storage) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            storage.upload(path, path.relative_to(directory).as_posix())


def all_objects(storage) -> dict[str, bytes]:
    return {key: storage.get_bytes(key) for key in storage.list_keys()}


def test_mixed_zoo_on_s3_then_rerun_is_a_no_op(tmp_path, s3_storage, local_ray):
    expected = write_mixed_zoo(tmp_path / "zoo")
    source, output = s3_storage.child("zoo"), s3_storage.child("results")
    upload_tree(tmp_path / "zoo", source)
    spec = ZooJobSpec(source=source.url(), output=output.url(), max_model_bytes=SMALL_LIMIT, time_limit_s=60)

    run = run_zoo_job(spec)

    assert run.exit_code == 3 and run.reused == 0
    rows = {row.source_key.rsplit("/zoo/", 1)[1]: row for row in run.summary.models}
    assert set(rows) == set(expected)
    for key, want in expected.items():
        row = rows[key]
        status, _, reason = want.partition(":")
        assert row.status == status, (key, row.error)
        assert reason in (row.error or ""), (key, row.error)
        report = CompressionReport.model_validate_json(output.get_bytes(row.report_key.split("/results/", 1)[1]))
        assert report.status == row.status
        if status == "exact":
            assert row.neurons_after < row.neurons_before
            assert row.compressed_key and row.compressed_key.endswith("compressed.pt")
    summary = ZooSummary.model_validate_json(output.get_bytes("summary.json"))
    assert summary == run.summary
    assert summary.totals.failed == 4 and summary.totals.exact == 3
    for name in ("summary.md", "summary.html"):
        assert output.exists(name)

    before = all_objects(output)
    again = run_zoo_job(spec)
    assert again.reused == len(expected)
    assert all_objects(output) == before  # zero solves, byte-identical outputs


def test_local_paths_and_a_manifest_with_domain_override(tmp_path, local_ray):
    write_good(tmp_path / "models/a.pt", seed=1)
    write_good(tmp_path / "models/b.pt", seed=2)
    manifest = {"models": [{"key": "a.pt"}, {"key": "b.pt", "domain": {"lower": -1, "upper": 1}}]}
    (tmp_path / "models/manifest.yaml").write_text(yaml.safe_dump(manifest))
    spec = ZooJobSpec(source={"manifest": str(tmp_path / "models/manifest.yaml")}, output=f"file://{tmp_path}/out")

    log = io.StringIO()  # a console that is not a terminal, as a job's log file: plain lines, no bar
    run = run_zoo_job(spec, console=Console(file=log, width=400))

    assert run.exit_code == 0
    lines = log.getvalue().splitlines()
    assert re.fullmatch(r"\[ +[0-9.]+ s\] compressing: 2 tasks", lines[0]), lines
    finished = [line for line in lines if f"compressing: {tmp_path}/models/" in line]
    assert len(finished) == 2 and all(re.search(r"\.pt: exact in [0-9.]+ s · done \d · failed 0 · running \d+ "
                                                r"\(of 2\)$", line) for line in finished), lines
    assert "done 2 · failed 0" in finished[-1] and "\x1b" not in log.getvalue()
    domains = {}
    for row in run.summary.models:
        report = CompressionReport.model_validate_json(Path(row.report_key.removeprefix("file://")).read_bytes())
        domains[Path(row.source_key).name] = (report.domain.scalar_lower, report.domain.scalar_upper)
    assert domains == {"a.pt": (0.0, 1.0), "b.pt": (-1.0, 1.0)}
    assert (tmp_path / "out/summary.json").is_file()
    assert run.summary.domain_overrides == [f"{tmp_path}/models/b.pt"]
    for page in ("summary.md", "summary.html"):  # the settings name the job's domain as a default only
        assert "box: lower 0, upper 1 (job default; 1 model overrides it)" in (tmp_path / "out" / page).read_text()


@pytest.mark.timeout(120)
def test_more_cpus_per_task_than_the_embedded_ray_has_is_refused_instead_of_waiting_forever(tmp_path, local_ray):
    write_good(tmp_path / "models/a.pt", seed=1)
    spec = ZooJobSpec(source=str(tmp_path / "models"), output=str(tmp_path / "out"), cpus_per_task=3)
    with pytest.raises(InputError, match=r"^job spec: field 'cpus_per_task': 3 CPUs per task, but the Ray cluster has 2: no task"):
        run_zoo_job(spec)
    assert not (tmp_path / "out").exists()


def test_a_partial_models_row_says_what_settling_its_undecided_neurons_could_remove(tmp_path):
    write_good(tmp_path / "m/a.pt", seed=5, input_dim=8, hidden=(32, 32, 32), bias_shift=0.5)
    [task] = plan_tasks(ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out"), time_limit_s=0.001))
    row = run_model_task(task).result
    report = CompressionReport.model_validate_json(Path(row.report_key.removeprefix("file://")).read_bytes())
    assert row.status == "partial" and row.undecided > 0
    assert row.neurons_after_if_settled == report.if_undecided_settled.neurons_after <= row.neurons_after


def test_same_model_different_domain_goes_to_a_different_place(tmp_path):
    write_good(tmp_path / "m/a.pt", seed=1)
    outcomes = []
    for upper in (1.0, 2.0):
        spec = ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out"), domain={"lower": 0, "upper": upper})
        [task] = plan_tasks(spec)
        outcomes.append(run_model_task(task))
    assert all(outcome.analysed for outcome in outcomes)
    assert outcomes[0].result.report_key != outcomes[1].result.report_key
    assert outcomes[0].result.sha256 == outcomes[1].result.sha256


def test_every_state_dict_suffix_has_its_architecture_file_read_and_fingerprinted():
    """.ckpt was loaded with NAME.arch.json by compress but the zoo never fetched it (found by a review)."""
    assert [zoo_task.arch_key(f"zoo/m{suffix}") for suffix in (".pt", ".pth", ".ckpt", ".safetensors", ".onnx")] == [
        "zoo/m.arch.json"] * 4 + [None]


def test_a_model_whose_architecture_file_name_would_be_too_long_has_none_and_is_analysed(tmp_path):
    write_good(tmp_path / "m" / ("n" * 247 + ".pt"), seed=1)  # a legal name; NAME.arch.json would be 257 bytes
    [task] = plan_tasks(ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out"), verify_samples=100))
    assert zoo_task.arch_key(task.key) is None
    outcome = run_model_task(task)
    assert outcome.analysed and outcome.result.status == "exact", outcome.result.error
    assert Path(outcome.result.report_key).is_file()


def test_a_failed_report_never_replaces_a_valid_one_but_a_damaged_one_is_redone(tmp_path):
    write_good(tmp_path / "m/a.pt", seed=1)
    spec = ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out"))
    [task] = plan_tasks(spec)
    first = run_model_task(task).result
    assert first.status == "exact"
    report_path = Path(first.report_key)
    committed = report_path.read_bytes()
    prefix = str(report_path.parent.relative_to(tmp_path / "out"))
    failed = CompressionReport.model_validate_json(committed).model_copy(update={"status": "failed", "error": "boom"})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "report.json").write_text(failed.model_dump_json())
    write_reports(failed, scratch)  # the losing task's pages go up before its report.json is refused
    pages_before = (report_path.parent / "report.md").read_bytes()
    domain = zoo_task.resolve_domain(task.domain, task.source_root)
    place = zoo_task._Place(task, open_storage(str(tmp_path / "out")), first.source_key, prefix, domain)
    kept = place.commit(scratch, failed)
    assert kept.status == "exact" and report_path.read_bytes() == committed
    assert (report_path.parent / "report.md").read_bytes() == pages_before  # the committed report's own pages

    report_path.write_text('{"status": "exa')  # a torn or damaged report does not count as done
    again = run_model_task(task)
    assert again.analysed and again.result.status == "exact"
    assert again.redone.reason == "report.json does not validate"
    CompressionReport.model_validate_json(report_path.read_bytes())


EDITS = {  # an edit of a valid report → the words of the reason it does not count
    "status": ({"status": "partial"}, "status partial with 0 undecided"),
    "neurons_after": ({"neurons_after": 1}, "neurons_after does not match"),
    "time_limit_s": ({"time_limit_s": 9.0}, "time_limit_s 9.0"),
    "method": ({"method": "milp"}, "method milp"),
    "model": ({"model": {"sha256": "0" * 64}}, "model sha256 0000"),
    "domain": ({"domain": {"boxes": [{"upper": 2.0}]}}, "domain is not the one"),
    "files": ({"outputs": {"files": {}}}, "no recorded size and sha256"),
    "stably_active": ({"layers": [{"stably_active": [0, 0]}]}, "do not partition"),
}


def edited(report: dict, edit: dict) -> dict:
    """``report`` with ``edit`` merged in (non-empty dicts recursively; a list of dicts edits its first element; a float
    in place of a list fills the list)."""
    out = dict(report)
    for name, value in edit.items():
        if isinstance(value, dict) and value and isinstance(out[name], dict):
            out[name] = edited(out[name], value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out[name] = [edited(out[name][0], value[0]), *out[name][1:]]
        elif isinstance(value, float) and isinstance(out.get(name), list):
            out[name] = [value] * len(out[name])
        else:
            out[name] = value
    return out


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_an_edited_report_does_not_count_and_the_model_is_redone_saying_why(tmp_path, edit):
    write_good(tmp_path / "m/a.pt", seed=1)
    [task] = plan_tasks(ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out"), time_limit_s=60))
    first = run_model_task(task).result
    report_path = Path(first.report_key)
    original = json.loads(report_path.read_bytes())
    change, reason = EDITS[edit]
    tampered = edited(original, change)
    CompressionReport.model_validate(tampered)  # still a valid report: only its content lies
    report_path.write_text(json.dumps(tampered))

    again = run_model_task(task)

    assert again.analysed and again.redone is not None and reason in again.redone.reason, again.redone
    assert again.redone.report_key == first.report_key and again.result.status == "exact"
    restored = json.loads(report_path.read_bytes())
    assert restored["status"] == original["status"] and restored["outputs"] == original["outputs"]
    assert not run_model_task(task).analysed  # it counts again


@pytest.mark.parametrize("damage", ["delete", "truncate", "alter"])
def test_a_report_whose_outputs_are_missing_or_changed_is_not_reused(tmp_path, damage):
    write_good(tmp_path / "m/a.pt", seed=1)
    [task] = plan_tasks(ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out")))
    first = run_model_task(task).result
    folder = Path(first.report_key).parent
    recorded = CompressionReport.model_validate_json(Path(first.report_key).read_bytes()).outputs.files
    assert set(recorded) == {"compressed.pt", "witnesses.npz"}
    original = (folder / "compressed.pt").read_bytes()
    assert recorded["compressed.pt"].bytes == len(original)
    assert not run_model_task(task).analysed  # intact: reused
    if damage == "delete":
        (folder / "compressed.pt").unlink()
    elif damage == "truncate":
        (folder / "compressed.pt").write_bytes(original[:100])
    else:
        (folder / "compressed.pt").write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    again = run_model_task(task)
    assert again.analysed and again.result.status == "exact"
    assert (folder / "compressed.pt").read_bytes() == original  # restored, and the report matches it again
    assert not run_model_task(task).analysed


@pytest.mark.parametrize("page", ["report.html", "report_layers.png"])
def test_a_deleted_report_page_does_not_count_and_the_model_is_redone(tmp_path, page):
    write_good(tmp_path / "m/a.pt", seed=1)
    [task] = plan_tasks(ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out")))
    folder = Path(run_model_task(task).result.report_key).parent
    (folder / page).unlink()
    again = run_model_task(task)
    assert again.analysed and again.redone.reason == f"{page} is missing" and (folder / page).is_file()


def test_a_missing_convergence_figure_counts_only_where_report_md_links_it(tmp_path):
    from exactcompress.schema import SolverStats, Versions
    from exactcompress.zoo.committed import changed_output

    versions = Versions(exactcompress="0.1.0", python="3.11", numpy="1.26", torch="2.13", pyscipopt="6.3", scip="10.0")
    report = CompressionReport(model_path="m/a.pt", method="milp", status="failed", error="boom", versions=versions,
                               milp=SolverStats(dual_trace=[(0.0, 3.0), (0.5, 0.4)]))
    write_reports(report, tmp_path / "r")
    output = open_storage(str(tmp_path))
    assert changed_output(output, "r/report.json", report) is None
    (tmp_path / "r/report_dual_bound.png").unlink()
    assert changed_output(output, "r/report.json", report) == "report_dual_bound.png is missing"
    untraced = report.model_copy(update={"milp": SolverStats()})
    assert changed_output(output, "r/report.json", untraced) is None


def test_a_report_for_a_domain_this_version_refuses_is_redone_instead_of_stopping_the_task(tmp_path):
    """Earlier versions spread a one-feature ball domain over every input; reading such a committed report raised."""
    from exactcompress.engine.domain import Box, Domain
    from exactcompress.zoo.committed import settings_mismatch

    write_good(tmp_path / "m/a.pt", seed=1)
    [task] = plan_tasks(ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out")))
    first = run_model_task(task).result
    report = CompressionReport.model_validate_json(Path(first.report_key).read_bytes())
    key = str(Path(first.report_key).relative_to(tmp_path / "out"))
    one_feature = Domain("linf-balls", (Box(np.array([0.5]), np.array([1.5])),), epsilon=0.5)
    assert settings_mismatch(report, key, task.spec, one_feature) == (
        "the report's model does not take the domain its folder stands for")


def test_a_failed_report_without_its_pages_is_redone(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m/bad.pt").write_bytes(b"PK not a checkpoint")
    [task] = plan_tasks(ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out")))
    folder = Path(run_model_task(task).result.report_key).parent
    (folder / "report.html").unlink()  # as a version that wrote no pages for failed models left it
    again = run_model_task(task)
    assert again.analysed and again.redone.reason == "report.html is missing" and (folder / "report.html").is_file()


def test_a_failure_that_another_run_may_not_meet_is_tried_again_and_a_bad_model_is_not(tmp_path, monkeypatch):
    """A failed report of kind internal (out of memory, say) used to count as done forever."""
    import exactcompress.pipeline

    write_good(tmp_path / "m/a.pt", seed=1)
    (tmp_path / "m/bad.pt").write_bytes(b"PK not a checkpoint")
    spec = ZooJobSpec(source=str(tmp_path / "m"), output=str(tmp_path / "out"))
    good, bad = sorted(plan_tasks(spec), key=lambda task: task.key)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("no room")

    with monkeypatch.context() as patch:
        patch.setattr(exactcompress.pipeline, "analyze", out_of_memory)
        first = run_model_task(good).result
    assert first.status == "failed" and "MemoryError" in first.error
    again = run_model_task(good)
    assert again.analysed and again.result.status == "exact" and "kind internal" in again.redone.reason

    failed = run_model_task(bad).result
    assert failed.status == "failed" and "bad.pt" not in failed.error, failed.error  # its row names the file
    folder = Path(failed.report_key).parent
    assert {"report.json", "report.md", "report.html"} <= {path.name for path in folder.iterdir()}
    assert not run_model_task(bad).analysed  # a bad input fails the same way again: reused


def test_spec_errors_name_the_field(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("source: models\noutput: out\nmetod: milp\ndomain: {lower: 0, uper: 1}\n")
    with pytest.raises(InputError) as caught:
        read_job_spec(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert "field 'metod'" in message and "field 'domain.uper'" in message
    path.write_text("source: models\noutput: out\nmethod: fastest\n")
    with pytest.raises(InputError, match="field 'method'"):
        read_job_spec(path)
    path.write_text("source: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        read_job_spec(path)


def test_unsafe_manifest_key_is_refused_before_any_work(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [{"key": "../outside.pt"}]}))
    spec = ZooJobSpec(source={"manifest": str(tmp_path / "manifest.json")}, output=str(tmp_path / "out"))
    with pytest.raises(InputError, match=r"\.\."):
        plan_tasks(spec)
    assert not (tmp_path / "out").exists()


def test_empty_source_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=rf"^zoo.yaml: field 'source': {re.escape(str(tmp_path / 'empty'))}: no model "
                       "files"):
        plan_tasks(ZooJobSpec(source=str(tmp_path / "empty"), output=str(tmp_path / "out")), "zoo.yaml")


def test_output_inside_the_source_is_not_read_as_models(tmp_path):
    write_good(tmp_path / "zoo/a.pt", seed=1)
    write_good(tmp_path / "zoo/results/runs/x/compressed.pt", seed=2)
    tasks = plan_tasks(ZooJobSpec(source=str(tmp_path / "zoo"), output=str(tmp_path / "zoo/results")))
    assert [task.key for task in tasks] == ["a.pt"]


def process_id(_: int) -> int:
    return os.getpid()


@ray.remote(num_cpus=2)
class CpuHolder:
    def ready(self) -> bool:
        return True


def busy_interval(seconds: float) -> tuple[float, float]:
    """When a call that waits ``seconds`` began and ended (this process's monotonic clock)."""
    import time

    started = time.monotonic()
    time.sleep(seconds)
    return started, time.monotonic()


def test_fallback_fans_out_only_while_a_cpu_is_idle(local_ray):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    assert os.getpid() not in ray_parallel_map(process_id, [(0,), (1,)])
    holder = CpuHolder.remote()  # takes both CPUs of the embedded Ray
    ray.get(holder.ready.remote())
    try:
        assert ray_parallel_map(process_id, [(0,), (1,)]) == [os.getpid()] * 2
        # here, at once: one after the other, each call took the whole time its arguments left it
        (first_start, first_end), (second_start, _) = ray_parallel_map(busy_interval, [(1.0,), (1.0,)])
        assert second_start < first_end and first_start < first_end
    finally:
        ray.kill(holder)


def test_per_neuron_fallback_fans_out_as_ray_tasks(local_ray):
    network = random_net(5, 3, [8, 6], bias_shift=1.5)
    domain = scalar_box(0.0, 1.0).broadcast(3)
    here = analyze(network, domain, method="per-neuron", workers=1)
    across = analyze(network, domain, method="per-neuron", workers=3, parallel_map=ray_parallel_map)
    for mine, theirs in zip(here.stably_active + here.stably_inactive, across.stably_active + across.stably_inactive):
        np.testing.assert_array_equal(mine, theirs)
