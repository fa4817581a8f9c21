"""Hyperparameter studies end to end (real embedded Ray, real SCIP, local storage and the real S3 server), the
regulariser maths and the spec's errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from exactcompress.cli import app
from exactcompress.distributed.study_job import _describe, run_study
from exactcompress.errors import InputError
from exactcompress.pipeline import versions
from exactcompress.reports.study import (
    group_table,
    varying_settings,
    render_study_html,
    render_study_markdown,
    study_figures,
)
from exactcompress.schema import (
    BoxDomainSpec,
    CompressionReport,
    NpzDataset,
    StudyResult,
    StudyRow,
    StudySpec,
    TrainingRecord,
)
from exactcompress.schema.specfile import read_study_spec
from exactcompress.storage import open_storage
from exactcompress.training.datasets import digits_data, load_dataset
from exactcompress.training.study import (
    ConfigOutcome,
    checked_study_domain,
    config_hash,
    failed_row,
    plan_configs,
    run_config,
    write_study,
)
from exactcompress.training.trainer import Regularization, penalty, train_mlp

REQUIRED_ROW_FIELDS = {"regularizer", "strength", "hidden", "seed", "test_accuracy", "stably_active",
                       "stably_inactive", "neurons_before", "neurons_after", "status"}
FIGURES = ("study_accuracy_removed.png", "study_stable_strength.png", "study_solve_seconds.png")


def small_spec(output: str, **changes) -> StudySpec:
    fields = dict(architectures=[[8, 8], [12, 8]], regularizers=[{"kind": "none"}, {"kind": "l1", "strengths": [3e-3]}],
                  seeds=[0], epochs=2, output=output, time_limit_s=30)
    return StudySpec.model_validate({**fields, **changes})


def mtimes(directory) -> dict[str, int]:
    return {str(path.relative_to(directory)): path.stat().st_mtime_ns for path in sorted(directory.rglob("*")) if path.is_file()}


def test_a_partial_configuration_says_what_settling_its_undecided_neurons_could_reach(tmp_path):
    spec = small_spec(str(tmp_path / "study"), architectures=[[32, 32]], regularizers=[{"kind": "none"}],
                      time_limit_s=0.001)
    [config] = plan_configs(spec)
    row = run_config(spec, config).row
    report_path = tmp_path / "study" / row.report_key.split("/study/", 1)[1]
    report = CompressionReport.model_validate_json(report_path.read_bytes())
    assert row.status == "partial" and report.if_undecided_settled is not None
    assert row.neurons_after_if_settled == report.if_undecided_settled.neurons_after <= row.neurons_after


def test_study_end_to_end_then_a_rerun_trains_and_solves_nothing(tmp_path, local_ray):
    output = tmp_path / "study"
    spec = small_spec(str(output))
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(spec.model_dump_json())

    log = io.StringIO()  # a console that is not a terminal: a line per finished configuration
    run = run_study(spec, console=Console(file=log, width=400))

    assert (run.trained, run.analysed, run.exit_code) == (4, 4, 0)
    finished = [line for line in log.getvalue().splitlines() if "training + compressing: " in line and " seed " in line]
    assert len(finished) == 4 and all(re.search(r"(none|l1 [0-9.e-]+) \d+x\d+ seed \d+: (exact|partial), "
                                                r"test accuracy [0-9.]+ · done \d", line) for line in finished), finished
    result = StudyResult.model_validate_json((output / "study.json").read_bytes())
    assert result == run.result and result.spec.domain == BoxDomainSpec(lower=0.0, upper=1.0)
    rows = [row.model_dump() for row in result.rows]
    assert len(rows) == 4 and all(REQUIRED_ROW_FIELDS <= set(row) for row in rows)
    assert [(row["regularizer"], row["hidden"]) for row in rows] == [("none", [8, 8]), ("none", [12, 8]),
                                                                     ("l1", [8, 8]), ("l1", [12, 8])]
    for row in result.rows:
        assert row.status in ("exact", "partial"), row.error
        assert 0.1 < row.test_accuracy <= 1.0 and row.neurons_before == sum(row.hidden)
        assert row.stably_active + row.stably_inactive <= row.neurons_before
        assert row.neurons_after <= row.neurons_before and row.report_key.endswith("report.json")
        record = TrainingRecord.model_validate_json((output / "configs" / row.config_hash / "training.json").read_bytes())
        assert record.config_hash == row.config_hash and len(record.loss_curve) == 2
        assert record.test_accuracy == row.test_accuracy
    csv_rows = list(csv.DictReader(io.StringIO((output / "study.csv").read_text())))
    assert len(csv_rows) == 4 and csv_rows[0]["hidden"] == "8x8" and csv_rows[0]["regularizer"] == "none"
    page = (output / "study.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(FIGURES) and "<table>" in page
    markdown = (output / "study.md").read_text()
    assert "| regulariser | strength | hidden | seed | test accuracy % |" in markdown
    assert all(f"]({name})" in markdown and (output / name).read_bytes().startswith(b"\x89PNG") for name in FIGURES)

    before = {name: (output / name).read_bytes() for name in ("study.json", "study.csv", "study.md", "study.html", *FIGURES)}
    stamps = mtimes(output / "configs") | mtimes(output / "compressed")
    again = CliRunner().invoke(app, ["study", "run", str(spec_file), "--quiet"])

    assert again.exit_code == 0, again.output
    assert "trained 0 and compressed 0 of 4 configurations" in again.output
    assert f"study: {output / 'study.html'}" in again.output and "l1" in again.output
    assert mtimes(output / "configs") | mtimes(output / "compressed") == stamps  # no training, no solves
    assert {name: (output / name).read_bytes() for name in before} == before  # deterministic study files


def test_npz_study_on_s3_uses_the_training_data_box(tmp_path, s3_storage, local_ray):
    (X_train, y_train), (X_test, y_test) = digits_data("train"), digits_data("test")
    local = tmp_path / "data.npz"
    np.savez(local, X_train=X_train[:300] * 2 - 0.5, y_train=y_train[:300], X_test=X_test[:100] * 2 - 0.5,
             y_test=y_test[:100])
    s3_storage.upload(local, "data/digits.npz")
    spec = small_spec(s3_storage.child("study").url(), dataset={"npz": s3_storage.url("data/digits.npz")},
                      architectures=[[6]], regularizers=[{"kind": "tl1", "strengths": [1e-3]}])

    run = run_study(spec)

    [row] = run.result.rows
    assert row.status == "exact" and run.trained == 1, row.error
    domain = run.result.spec.domain
    assert len(domain.lower) == 64 and min(domain.lower) == -0.5 and max(domain.upper) == 1.5
    assert s3_storage.exists(f"study/configs/{row.config_hash}/model.pt")
    assert StudyResult.model_validate_json(s3_storage.get_bytes("study/study.json")) == run.result


def test_plan_configs_and_hashes():
    spec = small_spec("out", seeds=[0, 1], regularizers=[
        {"kind": "none"}, {"kind": "l1", "strengths": [1e-4, 1e-3, 1e-4]}, {"kind": "lp", "strengths": [1e-3]},
    ])
    configs = plan_configs(spec)
    assert len(configs) == 2 * (1 + 2 + 1) * 2  # the repeated l1 strength counts once
    assert {config.strength for config in configs if config.regularizer == "none"} == {0.0}
    lp = next(config for config in configs if config.regularizer == "lp")
    assert (lp.p, lp.smoothing, lp.a) == (0.5, 1e-3, None)
    hashes = [config_hash(config) for config in configs]
    assert len(set(hashes)) == len(hashes) and all(len(h) == 16 and int(h, 16) >= 0 for h in hashes)
    assert config_hash(configs[0].model_copy(update={"seed": 7})) != hashes[0]
    assert config_hash(configs[0].model_copy()) == hashes[0]


WEIGHTS = [torch.tensor([[1.0, -2.0], [0.0, 0.5]]), torch.tensor([[3.0]])]


@pytest.mark.parametrize("kind, settings, expected", [
    ("none", {}, 0.0),
    ("l1", {}, 0.1 * (1 + 2 + 0 + 0.5 + 3)),
    ("lp", {"p": 0.5, "smoothing": 1e-3}, 0.1 * sum((abs(w) + 1e-3) ** 0.5 for w in (1, -2, 0, 0.5, 3))),
    ("tl1", {"a": 1.0}, 0.1 * sum(2 * abs(w) / (1 + abs(w)) for w in (1, -2, 0, 0.5, 3))),
])
def test_penalty_values(kind, settings, expected):
    assert float(penalty(kind, WEIGHTS, 0.1, **settings)) == pytest.approx(expected, rel=1e-6)


def test_penalty_gradients_are_finite_at_zero_and_parameters_are_required():
    for kind, settings in (("l1", {}), ("lp", {"p": 0.3, "smoothing": 1e-3}), ("tl1", {"a": 0.5})):
        weight = torch.zeros(3, 2, requires_grad=True)
        penalty(kind, [weight], 1.0, **settings).backward()
        assert torch.isfinite(weight.grad).all(), kind
    with pytest.raises(ValueError, match="p and smoothing"):
        penalty("lp", WEIGHTS, 1.0)
    with pytest.raises(ValueError, match="needs a"):
        penalty("tl1", WEIGHTS, 1.0)


def test_training_is_deterministic_and_the_penalty_shrinks_weights():
    X, y = digits_data("train")
    X, y = X[:256], y[:256]

    def train(regularization=Regularization(), seed=0):
        model, losses = train_mlp(X, y, [8], regularization=regularization, seed=seed, epochs=3)
        return torch.cat([p.detach().flatten() for p in model.parameters()]), losses

    weights, losses = train()
    again, losses_again = train()
    assert torch.equal(weights, again) and losses == losses_again and len(losses) == 3
    assert not torch.equal(weights, train(seed=1)[0])
    shrunk, _ = train(Regularization("l1", 1e-2))
    assert shrunk.abs().sum() < 0.8 * weights.abs().sum()


def test_spec_and_data_errors_name_the_field_or_array(tmp_path):
    spec_file = tmp_path / "study.yaml"
    cases = {
        "architectures: [[8]]\nregularizers: [{kind: l1, strengths: [-1]}]\noutput: o": "field 'regularizers.0.strengths.0'",
        "architectures: [[8]]\nregularizers: [{kind: l2}]\noutput: o": "field 'regularizers.0'",
        "architectures: [[8]]\nregularizers: [{kind: none}]": "field 'output'",
        "dataset: mnist\narchitectures: [[8]]\nregularizers: [{kind: none}]\noutput: o": "field 'dataset'",
    }
    for text, expected in cases.items():
        spec_file.write_text(text)
        with pytest.raises(InputError, match=expected) as caught:
            read_study_spec(spec_file)
        assert "\n" not in str(caught.value) and str(spec_file) in str(caught.value)
    result = CliRunner().invoke(app, ["study", "run", str(spec_file)])
    assert result.exit_code == 2 and "field 'dataset'" in result.output
    missing = tmp_path / "missing.npz"  # checked before Ray starts: the line names the spec, the field and the file
    spec_file.write_text(f"dataset: {{npz: {missing}}}\narchitectures: [[8]]\nregularizers: [{{kind: none}}]\n"
                         f"output: {tmp_path / 'out'}\n")
    result = CliRunner().invoke(app, ["study", "run", str(spec_file)])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        f"error: {spec_file}: field 'dataset.npz': {missing}: no such object"], result.output

    bad = tmp_path / "bad.npz"
    np.savez(bad, X_train=np.zeros((4, 2)), y_train=np.zeros(4, dtype=int), X_test=np.zeros((2, 2)))
    with pytest.raises(InputError, match=r"bad.npz: missing arrays \['y_test'\]; a data set needs"):
        load_dataset(NpzDataset(npz=str(bad)), tmp_path)
    np.savez(bad, X_train=np.zeros((4, 2)), y_train=np.zeros(4), X_test=np.zeros((2, 2)), y_test=np.zeros(2, dtype=int))
    with pytest.raises(InputError, match="bad.npz: y_train must hold one integer label"):
        load_dataset(NpzDataset(npz=str(bad)), tmp_path)
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"bad.npz: not an .npz \(zip\) archive$"):
        load_dataset(NpzDataset(npz=str(bad)), tmp_path)


@pytest.mark.parametrize("change, expected", [
    ({"y_train": np.r_[np.arange(9) % 3, 10 ** 9]}, r"y_train has label 1000000000: at most 1000 classes"),
    ({"y_test": np.array([0, 1, 2, 12])}, r"y_test has labels y_train lacks: \[12\]$"),
    ({"y_test": np.array([0, 1, 2, 10 ** 9])}, r"y_test has labels y_train lacks: \[1000000000\]$"),
    ({"X_train": np.zeros((10, 0)), "X_test": np.zeros((4, 0))},
     r"X_train must be a real .* d >= 1, not float64 \(10, 0\)"),
    ({"X_train": np.ones((10, 3)) * (1 + 1j)}, r"X_train must be a real \(float or integer\) array .* not complex128"),
    ({"X_test": np.ones((4, 3), dtype=bool)}, r"X_test must be a real"),
])
def test_npz_labels_features_and_dtypes_are_checked(tmp_path, change, expected):
    data = tmp_path / "data.npz"
    arrays = dict(X_train=np.ones((10, 3)), y_train=np.arange(10) % 3, X_test=np.ones((4, 3)), y_test=np.arange(4) % 3)
    np.savez(data, **{**arrays, **change})
    with pytest.raises(InputError, match=f"^{re.escape(str(data))}: {expected}"):
        load_dataset(NpzDataset(npz=str(data)), tmp_path)


def test_a_spec_domain_is_checked_against_the_data_before_any_work(tmp_path):
    data = tmp_path / "data.npz"
    X = np.random.default_rng(0).random((20, 3))
    np.savez(data, X_train=X, y_train=np.arange(20) % 2, X_test=X[:4], y_test=np.arange(4) % 2)
    output = tmp_path / "study"
    box = {"lower": [0, 0], "upper": [1, 1]}
    for dataset, features in (({"npz": str(data)}, 3), ("digits", 64), ("digits-784", 784)):
        with pytest.raises(InputError, match=f"^study spec: field 'domain': has 2 features but the data set has {features}$"):
            run_study(small_spec(str(output), dataset=dataset, architectures=[[4]], domain=box))
    assert checked_study_domain(small_spec(str(output), dataset={"npz": str(data)}, domain={"upper": 2.0})).upper == 2.0
    points = tmp_path / "box.json"
    points.write_text(json.dumps({"lower": [0.0] * 64, "upper": [1.0] * 64}))
    with pytest.raises(InputError, match="has 64 features but the data set has 3"):
        checked_study_domain(small_spec(str(output), dataset={"npz": str(data)}, domain={"file": str(points)}))

    X[3, 1] = np.nan  # a bad .npz is refused even when the spec names the domain
    np.savez(data, X_train=X, y_train=np.arange(20) % 2, X_test=X[4:8], y_test=np.arange(4) % 2)
    with pytest.raises(InputError, match=f"^study.yaml: field 'dataset.npz': {re.escape(str(data))}: X_train contains "
                       "NaN or Inf"):
        run_study(small_spec(str(output), dataset={"npz": str(data)}, domain={"lower": 0.0, "upper": 1.0}),
                  spec_file="study.yaml")
    assert not output.exists()


def test_more_cpus_per_task_than_the_cluster_has_is_refused_before_any_work(tmp_path, local_ray):
    output = tmp_path / "study"
    with pytest.raises(InputError, match=r"^study spec: field 'cpus_per_task': 3 CPUs per task, but the Ray cluster has 2: no task"):
        run_study(small_spec(str(output), cpus_per_task=3))
    assert not output.exists()


def test_an_output_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    output = str(tmp_path / "afile")
    with pytest.raises(InputError, match=f"^study spec: field 'output': {re.escape(output)} exists and is not a directory$"):
        run_study(small_spec(output))
    assert [path.name for path in tmp_path.iterdir()] == ["afile"]


def test_the_example_specs_validate_and_the_default_studys_run_time_agrees_with_the_readme():
    root = Path(__file__).resolve().parents[2]
    for name in ("study.yaml", "study_cnn.yaml"):
        read_study_spec(root / "examples" / name)
    claim = "about a minute on 2 cores"  # measured: 41 s for the 32 configurations
    assert claim in (root / "examples/study.yaml").read_text() and claim in (root / "README.md").read_text()


def test_the_progress_log_names_a_configuration_as_the_tables_do():
    spec = small_spec("out", architectures=[{"kind": "cnn", "channels": [4], "strides": [2], "dense": [8],
                                             "kernel_size": 5}],
                      regularizers=[{"kind": "lp", "strengths": [1e-3], "p": 0.5},
                                    {"kind": "lp", "strengths": [1e-3], "p": 0.25}])
    rows = [failed_row(spec, config, "boom") for config in plan_configs(spec)]
    lines = [_describe(ConfigOutcome(row, False, False), varying_settings(spec)) for row in rows]
    assert lines == ["lp p=0.5 0.001 conv4k5s2-8 seed 0: failed (boom)",
                     "lp p=0.25 0.001 conv4k5s2-8 seed 0: failed (boom)"]


def test_bundled_data_sets_have_their_input_widths(tmp_path):
    widths = {name: load_dataset(name, tmp_path)[0].shape[1] for name in ("digits", "digits-784", "digits-3072")}
    assert widths == {"digits": 64, "digits-784": 784, "digits-3072": 3072}
    with pytest.raises(InputError, match="digits-3072"):
        load_dataset("cifar", tmp_path)


def test_schema_study_prints_the_spec_schema():
    result = CliRunner().invoke(app, ["schema", "study"])
    schema = json.loads(result.output)
    assert schema["title"] == "StudySpec" and {"architectures", "regularizers", "dataset"} <= set(schema["properties"])


def test_failed_rows_are_shown_escaped_and_left_out_of_the_means(tmp_path):
    spec = small_spec(str(tmp_path), architectures=[[8]], regularizers=[{"kind": "l1", "strengths": [1e-3]}], seeds=[0, 1])
    common = dict(regularizer="l1", strength=1e-3, hidden=[8], method="auto")
    rows = [
        StudyRow(config_hash="a" * 16, seed=0, test_accuracy=0.9, stably_active=2, stably_inactive=2, neurons_before=8,
                 neurons_after=6, parameters_before=100, parameters_after=80, status="exact", solve_seconds=1.5, **common),
        StudyRow(config_hash="b" * 16, seed=1, status="failed", error="task failed: <b>boom</b> | x", **common),
    ]
    result = StudyResult(spec=spec, versions=versions(), rows=rows)

    [group] = group_table(result)[1]
    assert group[3:6] == ["1 of 2", "90.0", "25.0"]  # the failed seed is not averaged in
    markdown, page = render_study_markdown(result), render_study_html(result, study_figures(result))
    assert "&lt;b&gt;boom&lt;/b&gt; \\| x" in markdown and "<b>boom" not in markdown
    assert "&lt;b&gt;boom&lt;/b&gt; | x" in page and "<b>boom" not in page
    html_url = write_study(open_storage(str(tmp_path)), result)
    assert html_url == str(tmp_path / "study.html")
    assert StudyResult.model_validate_json((tmp_path / "study.json").read_bytes()) == result
    empty = StudyResult(spec=spec, versions=versions(), rows=rows[1:])
    assert all(png.startswith(b"\x89PNG") for png in study_figures(empty).values())


def test_a_cnn_row_set_with_group_l1_trains_saves_its_architecture_and_reports_channels(tmp_path, local_ray):
    cnn_architecture = {"kind": "cnn", "channels": [4], "strides": [2], "dense": [8]}
    spec = small_spec(str(tmp_path / "study"), architectures=[[8, 8], cnn_architecture],
                      regularizers=[{"kind": "none"}, {"kind": "group-l1", "strengths": [1e-3]}])
    configs = plan_configs(spec)
    assert [(c.cnn.label if c.cnn else c.hidden, c.regularizer) for c in configs] == [
        ([8, 8], "none"), ([8, 8], "group-l1"), ("conv4s2-8", "none"), ("conv4s2-8", "group-l1")]
    mlp = configs[0]
    legacy = json.dumps(mlp.model_dump(mode="json", exclude={"cnn", "dataset_sha256"}), sort_keys=True,
                        separators=(",", ":"))  # the fields of schema 1.0
    assert config_hash(mlp) == hashlib.sha256(legacy.encode()).hexdigest()[:16]  # MLP hashes of schema 1.0 kept

    run = run_study(spec)

    assert run.exit_code == 0, [row.error for row in run.result.rows]
    cnn_rows = [row for row in run.result.rows if row.architecture == "conv4s2-8"]
    assert len(cnn_rows) == 2 and all(row.status in ("exact", "partial") for row in cnn_rows)
    assert all(row.neurons_before == 4 * 4 * 4 + 8 for row in cnn_rows)  # 4 channels x 4x4 positions + 8
    config_dir = tmp_path / "study" / "configs" / cnn_rows[0].config_hash
    assert (config_dir / "model.arch.json").is_file()
    report = json.loads(open_storage(cnn_rows[0].report_key.rsplit("/", 1)[0]).get_bytes("report.json"))
    assert report["layers"][0]["conv"]["out_shape"] == [4, 4, 4]
    table = (tmp_path / "study" / "study.md").read_text()
    assert "| group-l1 | 0.001 | conv4s2-8 |" in table


def test_a_cnn_architecture_is_refused_with_flat_npz_data():
    with pytest.raises(ValueError, match="cnn architecture needs an image data set"):
        small_spec("out", dataset={"npz": "data.npz"}, architectures=[{"kind": "cnn", "channels": [4]}])
    with pytest.raises(ValueError, match="strides has 1 entries"):
        small_spec("out", architectures=[{"kind": "cnn", "channels": [4, 8], "strides": [2]}])


def test_a_changed_npz_data_set_is_another_configuration(tmp_path):
    """The configurations of an .npz study carry the file's sha256: replacing the file (the same URL) plans other
    configurations, so nothing trained on the old data is reused with its old accuracy."""
    from exactcompress.training.study import config_hash, plan_configs

    data = tmp_path / "data.npz"
    arrays = dict(X_train=np.random.default_rng(0).random((20, 3)), y_train=np.arange(20) % 2,
                  X_test=np.random.default_rng(1).random((6, 3)), y_test=np.arange(6) % 2)
    np.savez(data, **arrays)
    spec = small_spec(str(tmp_path / "study"), dataset={"npz": str(data)})
    before = [config_hash(config) for config in plan_configs(spec)]
    assert plan_configs(spec)[0].dataset_sha256 is not None and before == [config_hash(c) for c in plan_configs(spec)]
    np.savez(data, **{**arrays, "y_train": 1 - arrays["y_train"]})
    assert not set(before) & {config_hash(config) for config in plan_configs(spec)}
    assert all(config.dataset_sha256 is None for config in plan_configs(small_spec(str(tmp_path / "s"))))


def test_a_configuration_whose_model_was_replaced_since_its_record_is_trained_again(tmp_path):
    """training.json records model.pt's sha256: a model.pt damaged or replaced since no longer lets the record
    count, so the configuration is trained (and compressed) again rather than reported with the old accuracy."""
    from exactcompress.training.study import CONFIGS, MODEL, committed_record, config_hash, plan_configs, run_config

    spec = small_spec(str(tmp_path / "study"), architectures=[[8]], regularizers=[{"kind": "none"}], time_limit_s=5)
    (config,) = plan_configs(spec)
    first = run_config(spec, config)
    record = committed_record(spec, config)
    assert first.trained and record is not None and record.model_sha256 is not None
    model = tmp_path / "study" / CONFIGS / config_hash(config) / MODEL
    model.write_bytes(model.read_bytes()[:-8] + b"damaged!")
    assert committed_record(spec, config) is None
    again = run_config(spec, config)
    assert again.trained and committed_record(spec, config) is not None


class _RayWouldStart(Exception):
    """Raised in place of starting Ray: the study got past every up-front check."""


def _no_ray(monkeypatch) -> None:
    import exactcompress.distributed.study_job as study_job

    def refuse(*args, **kwargs):
        raise _RayWouldStart

    monkeypatch.setattr(study_job, "connect", refuse)


def test_an_s3_output_bucket_that_does_not_exist_is_refused_before_any_work(s3_storage, s3_server, monkeypatch):
    _no_ray(monkeypatch)
    with pytest.raises(InputError) as caught:
        run_study(small_spec("s3://reslts/study"))
    assert str(caught.value) == f"study spec: field 'output': bucket 'reslts' does not exist at {s3_server.endpoint.url}"
    assert "reslts" not in [bucket["Name"] for bucket in s3_server.endpoint.client().list_buckets()["Buckets"]]
    with pytest.raises(_RayWouldStart):  # an existing bucket passes, and nothing is written into it
        run_study(small_spec(s3_storage.url("study")))
    assert s3_storage.list_keys() == []
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(InputError, match=rf"^study spec: field 'output': bucket '{s3_storage.bucket}' is not "
                       "accessible with these credentials at "):
        run_study(small_spec(s3_storage.url("study")))


def test_the_cli_refuses_a_study_with_a_missing_s3_output_bucket_with_exit_2(tmp_path, s3_storage, s3_server,
                                                                             monkeypatch):
    _no_ray(monkeypatch)
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text("architectures: [[8]]\nregularizers: [{kind: none}]\noutput: s3://reslts/study\n")
    result = CliRunner().invoke(app, ["study", "run", str(spec_file), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: {spec_file}: field 'output': bucket 'reslts' does not exist at {s3_server.endpoint.url}"]
