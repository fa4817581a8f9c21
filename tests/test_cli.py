"""The command line as a user runs it: a subprocess of the installed console script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from exactcompress.cli import DEFAULT_MAX_THREADS
from exactcompress.schema import CompressionReport

SCRIPT = shutil.which("exactcompress", path=str(Path(sys.executable).parent))


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout)


def test_console_script_is_installed_and_documents_the_contract():
    assert SCRIPT, "the exactcompress console script is not installed in the venv"
    result = run("compress", "--help")
    assert result.returncode == 0
    for flag in ("--out", "--lower", "--upper", "--domain", "--domain-from-data", "--margin", "--data", "--method",
                 "--time-limit", "--workers", "--threads", "--format", "--verify-samples"):
        assert flag in result.stdout, flag


def test_schema_report_prints_the_report_json_schema():
    result = run("schema", "report")
    schema = json.loads(result.stdout)
    assert schema["title"] == "CompressionReport"
    assert {"schema_version", "status", "layers", "method", "domain"} <= set(schema["properties"])


def _zoo_model(digits_zoo: Path, name_part: str) -> Path:
    manifest = json.loads((digits_zoo / "zoo.json").read_text())
    files = [digits_zoo / entry["file"] for entry in manifest["models"]]
    return next(path for path in files if name_part in path.name)


def test_compress_a_bundled_model_end_to_end(digits_zoo, tmp_path):
    model = _zoo_model(digits_zoo, "l1")
    out = tmp_path / "out"
    result = run("compress", str(model), "--out", str(out), "--data", str(digits_zoo / "digits_test_X.npy"),
                 "--format", "torch", "--format", "onnx", "--quiet")
    assert result.returncode == 0, result.stderr
    report = CompressionReport.model_validate_json((out / "report.json").read_text())
    assert report.status == "exact" and report.verification.passed
    assert report.model.input_dim == 64 and report.domain.scalar_lower == 0.0 and report.domain.scalar_upper == 1.0
    assert report.neurons_after < report.neurons_before
    assert report.model.activation_assumed and "ReLU was assumed" in " ".join(result.stderr.split())
    assert "ReLU assumed" in (out / "report.md").read_text()
    assert sorted(report.outputs.compressed) == ["compressed.onnx", "compressed.pt"]
    assert "data:image/png;base64," in (out / "report.html").read_text()
    # the compressed model loads back through the tool's own loader and computes the same outputs
    from exactcompress.io import load_network

    original, _ = load_network(model)
    compressed, info = load_network(out / "compressed.onnx") if report.hidden_widths_after else (None, None)
    if compressed is not None:
        assert info.activation_assumed is False  # ONNX records its activations: checked, not assumed
        x = np.random.default_rng(0).random((2000, 64))
        scale = 1 + np.abs(original.forward(x))
        assert np.all(np.abs(compressed.forward(x) - original.forward(x)) <= 1e-4 * scale)


def test_domain_choices_and_errors(digits_zoo, tmp_path):
    model = _zoo_model(digits_zoo, "l1")
    data = digits_zoo / "digits_test_X.npy"
    result = run("compress", str(model), "--out", str(tmp_path / "a"), "--domain-from-data", str(data),
                 "--margin", "0.01", "--quiet")
    assert result.returncode == 0, result.stderr
    report = CompressionReport.model_validate_json((tmp_path / "a" / "report.json").read_text())
    assert report.domain.kind == "data" and report.domain.margin == 0.01

    conflict = run("compress", str(model), "--out", str(tmp_path / "b"), "--lower", "0", "--domain", str(data))
    assert conflict.returncode == 2 and "choose one domain" in conflict.stderr

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"\x00" * 10)
    for bad_model in (broken, tmp_path / "nope.pt", tmp_path):  # corrupt, a typo, a directory
        failed = run("compress", str(bad_model), "--out", str(tmp_path / "c"))
        assert failed.returncode == 2, failed.stderr
        lines = [line for line in failed.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and str(bad_model) in lines[0] and "Traceback" not in failed.stderr
        assert not (tmp_path / "c").exists()  # input errors are found before anything is written

    bad_domain = tmp_path / "domain.json"
    bad_domain.write_text('{"lower": 0, "uper": 1}')
    wrong_field = run("compress", str(model), "--out", str(tmp_path / "d"), "--domain", str(bad_domain))
    assert wrong_field.returncode == 2 and "uper" in wrong_field.stderr and "domain.json" in wrong_field.stderr


def test_verify_samples_sets_the_uniform_draws_and_is_checked(digits_zoo, tmp_path):
    model = _zoo_model(digits_zoo, "l1")
    result = run("compress", str(model), "--out", str(tmp_path / "a"), "--verify-samples", "0", "--quiet")
    assert result.returncode == 0, result.stderr
    check = CompressionReport.model_validate_json((tmp_path / "a" / "report.json").read_text()).verification
    assert check.passed and check.n_samples == 0 and 1024 <= check.n_inputs < 100_000  # corners and witnesses
    refused = run("compress", str(model), "--out", str(tmp_path / "b"), "--verify-samples", "-1")
    assert refused.returncode == 2 and "--verify-samples" in refused.stderr and not (tmp_path / "b").exists()
    refused = run("compress", str(model), "--out", str(tmp_path / "c"), "--seed", "-1")  # a usage error, not internal
    assert refused.returncode == 2 and "--seed" in refused.stderr and not (tmp_path / "c").exists()


def test_out_is_never_a_file_nor_someone_elses_directory(digits_zoo, tmp_path):
    model, other = _zoo_model(digits_zoo, "32x32-l1"), _zoo_model(digits_zoo, "64x64")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    result = run("compress", str(model), "--out", str(a_file))
    assert result.returncode == 2 and "is not a directory" in result.stderr and a_file.read_text() == "keep me"
    result = run("compress", str(model), "--out", str(a_file / "sub"))  # under a file: no traceback either
    assert result.returncode == 2 and f"cannot be created: {a_file} is not a directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and a_file.read_text() == "keep me"

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "report.json").write_text('{"mine": true}')
    result = run("compress", str(model), "--out", str(foreign), "-q")
    assert result.returncode == 2 and "--force" in result.stderr and (foreign / "report.json").read_text() == '{"mine": true}'

    out = tmp_path / "out"
    assert run("compress", str(model), "--out", str(out), "-q", "--verify-samples", "10").returncode == 0
    again = run("compress", str(model), "--out", str(out), "-q", "--verify-samples", "10")
    assert again.returncode == 0, again.stderr  # a previous output of the same model is replaced
    result = run("compress", str(other), "--out", str(out), "-q", "--verify-samples", "10")
    assert result.returncode == 2 and "another model" in result.stderr
    assert CompressionReport.model_validate_json((out / "report.json").read_text()).model.name == model.stem
    forced = run("compress", str(other), "--out", str(out), "-q", "--verify-samples", "10", "--force")
    assert forced.returncode == 0, forced.stderr
    assert CompressionReport.model_validate_json((out / "report.json").read_text()).model.name == other.stem


def test_an_earlier_runs_witnesses_npz_is_accepted_as_data(digits_zoo, tmp_path):
    model = _zoo_model(digits_zoo, "32x32-l1")
    assert run("compress", str(model), "--out", str(tmp_path / "a"), "-q", "--verify-samples", "10").returncode == 0
    witnesses = f"{tmp_path / 'a' / 'witnesses.npz'}:points"
    again = run("compress", str(model), "--out", str(tmp_path / "b"), "-q", "--verify-samples", "10", "--data", witnesses,
                "--domain-from-data", witnesses)
    assert again.returncode == 0, again.stderr
    assert CompressionReport.model_validate_json((tmp_path / "b" / "report.json").read_text()).domain.kind == "data"
    unnamed = run("compress", str(model), "--out", str(tmp_path / "c"), "--data", str(tmp_path / "a" / "witnesses.npz"))
    assert unnamed.returncode == 2 and "witnesses.npz:NAME" in unnamed.stderr and not (tmp_path / "c").exists()


def test_version_and_spec_typos_get_the_closest_field(tmp_path):
    from exactcompress import __version__

    assert run("--version").stdout.strip() == f"exactcompress {__version__}"
    spec = tmp_path / "zoo.yaml"
    spec.write_text("source: zoo\noutput: out\ntime_limit: 3\ndomain: {kind: box, lowr: 0}\n")
    result = run("zoo", "run", str(spec))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "field 'time_limit': unknown field; did you mean 'time_limit_s'?" in result.stderr
    assert "did you mean 'lower'?" in result.stderr


def test_a_spec_error_names_fields_not_the_union_member_or_validator_pydantic_tried(tmp_path):
    from exactcompress.errors import InputError
    from exactcompress.schema.specfile import read_study_spec

    spec = tmp_path / "study.yaml"
    spec.write_text("dataset: digits\narchitectures:\n  - {kind: cnn, channels: [8, 16], strides: [1]}\n  - [a]\n"
                    "regularizers: [{kind: none}]\noutput: out\n")
    with pytest.raises(InputError) as raised:
        read_study_spec(spec)
    message = str(raised.value)
    assert "field 'architectures.0': Value error, strides has 1 entries, channels 2" in message
    assert "field 'architectures.1.0'" in message
    assert not any(label in message for label in ("function-after", "list.", "field 'architectures.0.Cnn"))


@pytest.mark.parametrize("flags, message", [
    (["--lower", "1", "--upper", "0"], "lower bound exceeds upper bound"),
    (["--lower", "nan"], "must be finite"),
    (["--domain", "{tmp}/missing.json"], "domain file not found"),
    (["--domain-from-data", "{tmp}/missing.npy"], "no such file"),
    (["--data", "{tmp}/missing.npy"], "no such file"),
    (["--margin", "-1", "--domain-from-data", "{tmp}/missing.npy"], "--margin"),
    (["--device", "cuda"], "cuda"),
])
def test_every_bad_flag_is_exit_code_2_and_writes_nothing(digits_zoo, tmp_path, flags, message):
    import torch

    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")
    model = _zoo_model(digits_zoo, "32x32-l1")
    result = run("compress", str(model), "--out", str(tmp_path / "out"), *[flag.format(tmp=tmp_path) for flag in flags])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_previous_output_is_replaced_as_a_whole_and_forced_writes_keep_other_files(digits_zoo, tmp_path):
    model = _zoo_model(digits_zoo, "32x32-l1")
    out = tmp_path / "out"
    quick = ("-q", "--verify-samples", "10")
    assert run("compress", str(model), "--out", str(out), "--format", "onnx", *quick).returncode == 0
    assert (out / "compressed.onnx").exists()
    assert run("compress", str(model), "--out", str(out), *quick).returncode == 0
    assert (out / "compressed.pt").exists() and not (out / "compressed.onnx").exists()  # nothing stale is left
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # no staging folders left behind

    (out / "notes.txt").write_text("mine")  # a previous output with the user's own files is not replaced
    kept = (out / "report.json").read_bytes()
    refused = run("compress", str(model), "--out", str(out), *quick)
    assert refused.returncode == 2 and "other files (notes.txt)" in refused.stderr and "--force" in refused.stderr
    assert (out / "report.json").read_bytes() == kept and (out / "notes.txt").read_text() == "mine"
    assert run("compress", str(model), "--out", str(out), "--force", "--format", "onnx", *quick).returncode == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "report.json").read_bytes() != kept
    assert (out / "compressed.onnx").exists() and not (out / "compressed.pt").exists()  # written into: none stale

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("mine")
    assert run("compress", str(model), "--out", str(shared), "--force", *quick).returncode == 0
    assert (shared / "notes.txt").read_text() == "mine" and (shared / "report.json").exists()


def test_no_aws_credentials_is_one_line_and_exit_2(tmp_path):
    spec = tmp_path / "zoo.yaml"
    spec.write_text("source: s3://some-bucket/zoo\noutput: s3://some-bucket/out\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    result = subprocess.run([SCRIPT, "zoo", "run", str(spec)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    assert "no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_time_limits_must_be_positive_seconds(digits_zoo, tmp_path):
    model = _zoo_model(digits_zoo, "l1")
    for value in ("0", "-5", "nan", "inf"):
        result = run("compress", str(model), "--out", str(tmp_path / value), "--time-limit", value)
        assert result.returncode == 2 and "not a positive number of seconds" in result.stderr, value
        assert not (tmp_path / value).exists()
    assert "default: no limit" in " ".join(run("compress", "--help").stdout.split())


def test_schema_job_and_summary_print_their_json_schemas():
    job = json.loads(run("schema", "job").stdout)
    assert job["title"] == "ZooJobSpec"
    assert {"source", "output", "domain", "method", "time_limit_s", "retries", "cpus_per_task"} <= set(job["properties"])
    summary = json.loads(run("schema", "summary").stdout)
    assert summary["title"] == "ZooSummary" and {"spec", "versions", "models", "totals"} <= set(summary["properties"])


def test_zoo_commands_are_documented():
    result = run("zoo", "--help")
    for command in ("run", "submit", "status", "logs", "stop", "digits"):
        assert command in result.stdout, command
    assert "--address" in run("zoo", "run", "--help").stdout


def test_submit_checks_the_spec_before_contacting_a_cluster(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("source: models\noutput: out\nmethod: fastest\n")
    result = run("zoo", "submit", str(spec), "--address", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "field 'method'" in result.stderr and "Ray dashboard" not in result.stderr


@pytest.mark.parametrize("group", ["zoo", "study"])
def test_status_of_an_unreachable_cluster_is_one_clear_line(group):
    result = run(group, "status", "raysubmit_x", "--address", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "cannot reach the Ray dashboard" in result.stderr and "Traceback" not in result.stderr
    # as for `ray job`: the address may come from RAY_ADDRESS, and HOST:PORT means http
    from_env = subprocess.run([SCRIPT, group, "status", "raysubmit_x"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "RAY_ADDRESS": "127.0.0.1:9"})
    assert from_env.returncode == 2 and "127.0.0.1:9: cannot reach the Ray dashboard" in from_env.stderr


def test_study_jobs_are_followed_with_study_commands():
    listing = run("study", "--help").stdout
    for command in ("run", "submit", "status", "logs", "stop"):
        assert command in listing, command
    assert "`study status` and `study logs`" in " ".join(run("study", "submit", "--help").stdout.split())


def test_a_missing_spec_is_named_as_a_spec(tmp_path):
    for group in ("zoo", "study"):
        result = run(group, "run", str(tmp_path / "missing.yaml"))
        assert result.returncode == 2 and "missing.yaml: spec file not found" in result.stderr


def test_a_run_cut_by_the_time_limit_says_its_undecided_neurons_are_kept_and_what_could_settle_them(digits_zoo,
                                                                                                   tmp_path):
    model = _zoo_model(digits_zoo, "32x32x32")
    cpus = len(os.sched_getaffinity(0))
    one = run("compress", str(model), "--out", str(tmp_path / "one"), "--time-limit", "0.001", "--quiet",
              "--threads", "1")
    report = CompressionReport.model_validate_json((tmp_path / "one" / "report.json").read_text())
    assert one.returncode == 0 and report.time_limit_reached and report.counts()["undecided"] > 0
    hint = " ".join(line for line in one.stderr.splitlines() if "hint:" in line)
    assert f"{report.counts()['undecided']} neurons were undecided" in hint and "longer --time-limit" in hint
    fewer = report.neurons_after - report.if_undecided_settled.neurons_after
    assert fewer >= 0 and ("settling them could remove at most" in hint) == (fewer > 0)
    assert (f"at most {fewer} more neuron{'s' * (fewer != 1)} " in hint
            or "settling them cannot shrink the compressed model" in hint)
    assert report.threads == 1 and (f"--threads {cpus}" in hint) == (cpus > 1)  # more at once where CPUs are idle
    # by default a question per CPU (at most DEFAULT_MAX_THREADS); with one per CPU, only more time is suggested
    every_cpu = run("compress", str(model), "--out", str(tmp_path / "all"), "--time-limit", "0.001")
    threads = CompressionReport.model_validate_json((tmp_path / "all" / "report.json").read_text()).threads
    assert threads == min(cpus, DEFAULT_MAX_THREADS) and ("--threads" in every_cpu.stderr) == (cpus > threads)
    assert "longer --time-limit" in every_cpu.stderr
    # the single MILP answers no questions in parallel, and per-neuron MILPs take --workers, not --threads
    for method, flag in (("milp", None), ("per-neuron", "--workers")):
        cut = run("compress", str(model), "--out", str(tmp_path / method), "--time-limit", "0.001", "--threads", "1",
                  "--method", method, "--verify-samples", "10")
        hint = " ".join(line for line in cut.stderr.splitlines() if "hint:" in line)
        assert "longer --time-limit" in hint and "--threads" not in hint, method
        assert (flag is not None and cpus > 1) == (f"{flag} {cpus}" in hint), method
    # stderr is a pipe here, not a terminal: progress comes as plain lines, one per stage (none with --quiet)
    stages = [line.split(f"] {model.name}: ", 1)[1] for line in every_cpu.stderr.splitlines()
              if re.match(r"\[ +[0-9.]+ s\] ", line)]
    assert stages[0] == "loading" and {"witness search", "verifying", "writing outputs"} <= set(stages), stages
    assert not re.search(r"^\[ +[0-9.]+ s\]", one.stderr, re.MULTILINE)


def test_the_summary_line_gives_the_error_of_the_saved_dtype_where_rounding_changed_the_weights(tmp_path):
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).half()
    with torch.no_grad():
        model[0].bias += 3  # the first layer is active on [0, 1]^4: folded, so the float16 weights are rounded
    torch.save(model.state_dict(), tmp_path / "half.pt")
    result = run("compress", str(tmp_path / "half.pt"), "--out", str(tmp_path / "out"), "-q")
    check = CompressionReport.model_validate_json((tmp_path / "out" / "report.json").read_text()).verification
    assert result.returncode == 0 and check.saved_dtype == "float16" and check.max_abs_error_saved_dtype > 1e-6
    assert f"({check.max_abs_error_saved_dtype:.2e} as saved in float16)" in result.stdout


def test_data_rows_outside_the_domain_are_named_as_unused(digits_zoo, tmp_path):
    model = _zoo_model(digits_zoo, "32x32-l1")
    rows = np.vstack([np.full((2, 64), 2.0), np.full((1, 64), 0.5)])  # two rows outside [0, 1]^64, one inside
    np.save(tmp_path / "rows.npy", rows)
    result = run("compress", str(model), "--out", str(tmp_path / "out"), "-q", "--verify-samples", "10", "--data",
                 str(tmp_path / "rows.npy"))
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'rows.npy'}: 2 of 3 rows lie outside the domain and are not used" in result.stderr


def test_the_time_limit_hint_agrees_with_one_undecided_neuron(tmp_path):
    from exactcompress.cli import _time_limit_hint
    from exactcompress.pipeline import compress_model
    from exactcompress.schema import IfUndecidedSettled

    model = tmp_path / "a.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ReLU(), torch.nn.Linear(1, 1)).state_dict(), model)
    report = compress_model(model, tmp_path / "out", verify_samples=10)
    layer = report.layers[0].model_copy(update={"stably_active": [], "stably_inactive": [], "unstable": [],
                                                "undecided": [0]})
    best = IfUndecidedSettled(neurons_after=0, parameters_after=1, hidden_widths_after=[])
    hint = _time_limit_hint(report.model_copy(update={"layers": [layer], "if_undecided_settled": best}))
    assert "1 neuron was undecided at the time limit and is kept" in hint


@pytest.mark.slow
@pytest.mark.parametrize("method, extra, sent, status, word, sigint", [
    ("milp", (), "SIGINT", 130, "interrupted", "SIG_DFL"),  # SCIP caught Ctrl-C; the run went on as if cut short
    ("per-neuron", ("--workers", "2"), "SIGTERM", 143, "terminated", "SIG_DFL"),  # the pool's processes ran on
    # the solve in the main thread held SIGTERM until it ended (191 s for a per-neuron solve of a bench net), in
    # the foreground and in the background (SIGINT ignored, as for `cmd &` in a script)
    ("per-neuron", (), "SIGTERM", 143, "terminated", "SIG_DFL"),
    ("milp", (), "SIGTERM", 143, "terminated", "SIG_IGN"),
])
def test_ctrl_c_and_sigterm_end_a_run_at_once_leaving_the_earlier_output(tmp_path, method, extra, sent, status,
                                                                          word, sigint):
    import signal
    import time

    from nets import random_net

    from exactcompress.io import to_sequential

    model, out = tmp_path / "hard.pt", tmp_path / "out"
    torch.save(to_sequential(random_net(0, 30, [60, 60, 60]), "float32").state_dict(), model)
    assert run("compress", str(model), "--out", str(out), "--time-limit", "0.5", "-q").returncode == 0
    earlier = (out / "report.json").read_bytes()
    process = subprocess.Popen(
        [SCRIPT, "compress", str(model), "--out", str(out), "--method", method, "--time-limit", "300", "--threads",
         "1", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, getattr(signal, sigint)))
    time.sleep(8)  # into the solves
    sent_at = time.monotonic()
    process.send_signal(getattr(signal, sent))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status and stderr.strip().splitlines()[-1] == word, stderr[-2000:]
    # a per-neuron solve of this net takes ~13 s: one in the main thread must end at once too
    assert time.monotonic() - sent_at < (5 if extra == () and method == "per-neuron" else 20), stderr[-2000:]
    assert "Traceback" not in stderr
    assert (out / "report.json").read_bytes() == earlier
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hard.pt", "out"]  # no staging folder left
    time.sleep(1)
    children = subprocess.run(["pgrep", "-f", "multiprocessing.spawn"], capture_output=True, text=True).stdout
    assert not children.strip(), children
