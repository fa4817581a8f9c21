"""The ``exactcompress`` command line: parses, calls the library, renders. Nothing else."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer
from rich.console import Console

from .allocator import tune_allocator
from .process_exit import end_process, exit_status
from .termination import SigtermAsCtrlC

if TYPE_CHECKING:  # the schema is imported where it is used: `--help` stays fast
    from .schema import CompressionReport

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Compress ReLU networks exactly: prove which neurons are stable on an input domain, remove or fold "
    "them, and verify that the compressed network computes the same function there.",
)
zoo_app = typer.Typer(no_args_is_help=True, help="Model zoos: compress a whole zoo on Ray (run, or submit to a "
                      "cluster and follow it with status/logs); build the bundled digits zoo.")
study_app = typer.Typer(no_args_is_help=True, help="Hyperparameter studies: train every architecture × "
                        "regulariser strength × seed on Ray, compress each exactly, and tabulate and plot accuracy "
                        "against what was removed (run, or submit to a cluster and follow it with status/logs).")
schema_app = typer.Typer(no_args_is_help=True, help="Print the JSON Schema of a file this tool reads (specs, "
                         "architecture files) or writes (reports, summaries).")
app.add_typer(zoo_app, name="zoo")
app.add_typer(study_app, name="study")
app.add_typer(schema_app, name="schema")

err = Console(stderr=True)
#: ``compress``'s default ``--threads``: the usable CPUs, at most this many (each running search may hold up to
#: 512 MiB of open cases, ``bab.MAX_POOL_BYTES``)
DEFAULT_MAX_THREADS = 4


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"exactcompress {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Compress ReLU networks exactly: prove which neurons are stable on an input domain, remove or fold them, and
    verify that the compressed network computes the same function there."""


class MethodChoice(str, Enum):
    auto = "auto"
    per_neuron = "per-neuron"
    milp = "milp"
    bab = "bab"


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class FormatChoice(str, Enum):
    torch = "torch"
    safetensors = "safetensors"
    onnx = "onnx"


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _positive_seconds(value: float | None) -> float | None:
    """--time-limit's check: a finite number of seconds > 0 (None: no limit)."""
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a positive number of seconds")
    return value


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """End the command on any ``ExactCompressError`` with its one line and its exit code (``errors.ExitCode``:
    2 for bad input, flags, specs or storage locations; 1 for a failure of the work itself)."""
    from .errors import ExactCompressError

    try:
        yield
    except ExactCompressError as error:
        _fail(str(error), int(error.exit_code))


def _load_model(model: Path):
    """``load_network(model)``; a loader's own bug (any exception but an ``ExactCompressError``) ends the command
    with one line and exit code 1, as ``pipeline.compress_model`` reports it, instead of a traceback."""
    from .errors import ExactCompressError, ExitCode, described
    from .io import load_network

    try:
        return load_network(model)
    except ExactCompressError:
        raise
    except Exception as error:
        _fail(f"internal error while loading {model} ({described(error)})", ExitCode.FAILED)


def _domain(lower, upper, domain_file, data_box, margin):
    from .errors import ExitCode
    from .io.domain_files import from_data, from_file, scalar_box

    chosen = [name for name, value in (("--lower/--upper", lower is not None or upper is not None),
                                       ("--domain", domain_file), ("--domain-from-data", data_box)) if value]
    if len(chosen) > 1:
        _fail(f"choose one domain: {' or '.join(chosen)}", ExitCode.USAGE)
    if margin is not None and data_box is None:
        _fail("--margin only applies with --domain-from-data", ExitCode.USAGE)
    with _one_line_errors():
        if domain_file:
            return from_file(domain_file)
        if data_box:
            return from_data(data_box, margin or 0.0)
        return scalar_box(0.0 if lower is None else lower, 1.0 if upper is None else upper)


@app.command(short_help="Compress one model exactly on an input domain; write its report, compressed model "
             "and witnesses.")
def compress(
    model: Path = typer.Argument(..., help="Model file: torch state_dict (.pt/.pth/.ckpt), .safetensors or .onnx. A CNN "
                                 "or BatchNorm1d state dict needs its architecture file NAME.arch.json beside it."),
    out: Path = typer.Option(..., "--out", help="Output directory (created)."),
    lower: Optional[float] = typer.Option(None, help="Lower bound of every input (default 0)."),
    upper: Optional[float] = typer.Option(None, help="Upper bound of every input (default 1)."),
    domain: Optional[Path] = typer.Option(None, "--domain", help="Domain file: .npy (2, d) lower/upper rows; JSON "
                                          "{lower, upper} (scalars or lists); or JSON {points, epsilon} for L∞ balls."),
    domain_from_data: Optional[Path] = typer.Option(None, "--domain-from-data", help="Use the bounding box of the "
                                                    "points (n, d) in this .npy, one-array .npz or FILE.npz:NAME."),
    margin: Optional[float] = typer.Option(None, help="Widen --domain-from-data's box by this much on each side."),
    data: Optional[Path] = typer.Option(None, "--data", help="Extra witness candidates (n, d): .npy, one-array .npz "
                                        "or FILE.npz:NAME (e.g. an earlier run's witnesses.npz:points)."),
    method: MethodChoice = typer.Option(MethodChoice.auto, help="auto: bounds → witnesses → branch and bound "
                                        "and per-neuron sign solves, chosen per network and question "
                                        "(report.json's policy says how); milp: bounds → witnesses → one MILP for the "
                                        "whole network; bab: bounds → witnesses → branch and bound on ReLU splits per "
                                        "question; per-neuron: two full MILPs per neuron (the 2020 baseline)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", callback=_positive_seconds,
                                               help="Seconds for the analysis (> 0; default: no limit); neurons "
                                               "not settled in time are kept (status 'partial')."),
    workers: int = typer.Option(1, min=1, help="Processes for independent questions (MILPs, branch and bound)."),
    threads: Optional[int] = typer.Option(None, min=1, help="Branch-and-bound questions answered at once in this "
                                          "process, one thread each, in its rounds of 20 s or more per question (or "
                                          "no time limit); auto's 2 s sweep answers one at a time. With 2 or "
                                          "more, auto's per-neuron sign solves answer that many questions at once "
                                          "(without --workers), it gives its last few questions sign solves on a "
                                          "spare thread as well, and verification checks that many passes of "
                                          "inputs at once. Default: the CPUs this process may use, at most "
                                          f"{DEFAULT_MAX_THREADS}."),
    device: DeviceChoice = typer.Option(DeviceChoice.auto, help="Where branch and bound computes its batched bounds: "
                                        "cuda when a GPU is visible (auto), or cpu / cuda; proofs are float64 on "
                                        "either."),
    fmt: list[FormatChoice] = typer.Option([FormatChoice.torch], "--format", help="Compressed model format(s); repeat "
                                           "for several."),
    seed: int = typer.Option(0, min=0, help="Seed for sampling and the gradient search."),
    verify_samples: int = typer.Option(100_000, "--verify-samples", min=0, help="Uniform random inputs on which the "
                                       "compressed model is checked against the original (float64), besides the box "
                                       "corners, every witness and the --data rows."),
    force: bool = typer.Option(False, "--force", help="Replace another model's results in --out, or write into a "
                               "folder holding other files (they are kept). A previous output of the same model "
                               "alone is always replaced, as a whole."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Analyse MODEL on an input domain (a box, a data set's box or a union of L∞ balls), compress it exactly
    and write report.json, compressed.pt, witnesses.npz, report.md, report.html and report_layers.png into
    --out. Bad input (model, domain, data, --out) ends with one line and exit code 2 before anything is
    written."""
    from .engine.prove.bab_layer import resolve_device
    from .errors import ExitCode
    from .io import ACTIVATION_ASSUMED_NOTE
    from .io.domain_files import load_data
    from .pipeline import compress_model

    chosen_domain = _domain(lower, upper, domain, domain_from_data, margin)
    threads = threads or min(DEFAULT_MAX_THREADS, _usable_cpus())
    with _one_line_errors():
        loaded = _load_model(model)
        points = load_data(data, loaded[0].input_dim, loaded[0].input_shape) if data is not None else None
        chosen_domain.check_dim(loaded[0].input_dim, loaded[0].input_shape)
        resolve_device(device.value)
        whole = _check_out(out, loaded[1].sha256, force)
    if points is not None and (outside := int((~chosen_domain.broadcast(len(points[0])).contains(points)).sum())):
        err.print(f"[yellow]note:[/yellow] {data}: {outside} of {len(points)} rows lie outside the domain and are not "
                  "used (the witnesses and the verification take inputs in the domain only)", highlight=False,
                  soft_wrap=True)
    with _one_line_errors(), _replacing(out, whole) as target:
        if quiet:
            report = compress_model(loaded, target, domain=chosen_domain, data=points, method=method.value,
                                    time_limit=time_limit, workers=workers, threads=threads,
                                    formats=[f.value for f in fmt], seed=seed, device=device.value,
                                    verify_samples=verify_samples)
        else:
            with _stage_bar(model.name) as progress:
                report = compress_model(loaded, target, domain=chosen_domain, data=points, method=method.value,
                                        time_limit=time_limit, workers=workers, threads=threads,
                                        formats=[f.value for f in fmt], seed=seed, device=device.value,
                                        verify_samples=verify_samples, progress=progress)
    if report.status == "failed":
        _fail(report.error or "failed", ExitCode.FAILED)
    if loaded[1].activation_assumed:
        err.print(f"[yellow]note:[/yellow] {model}: {ACTIVATION_ASSUMED_NOTE}", highlight=False, soft_wrap=True)
    counts = report.counts()
    removed = report.neurons_before - report.neurons_after
    typer.echo(
        f"{report.status}: {report.neurons_before} → {report.neurons_after} neurons ({removed} removed; "
        f"{counts['stably_active']} stably active, {counts['stably_inactive']} stably inactive, "
        f"{counts['unstable']} unstable, {counts['undecided']} undecided) in {report.seconds.get('total', 0):.1f} s; "
        f"max error {report.verification.max_abs_error:.2e}{_saved_dtype_error(report.verification)}"
    )
    convs = [layer.conv for layer in report.layers if layer.conv is not None]
    if convs:
        states = [channel.state for conv in convs for channel in conv.channels]
        typer.echo(
            f"conv channels: {sum(conv.channels_after for conv in convs)} of {len(states)} kept "
            f"({sum(len(conv.channels_removed) for conv in convs)} removed: inactive at every position; "
            f"{states.count('active_everywhere')} active everywhere, {states.count('mixed')} mixed, "
            f"{states.count('undecided')} undecided)"
        )
    typer.echo(f"report: {out / 'report.html'}")
    if report.time_limit_reached and counts["undecided"]:
        err.print(_time_limit_hint(report), highlight=False, soft_wrap=True)


def _saved_dtype_error(check) -> str:
    """`` (E as saved in DTYPE)`` where rounding the compressed weights to the saved dtype changed some, else ''."""
    if check.max_abs_error_saved_dtype is None or check.n_saved_dtype_inputs == 0:
        return ""
    return f" ({check.max_abs_error_saved_dtype:.2e} as saved in {check.saved_dtype})"


def _usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _time_limit_hint(report: CompressionReport) -> str:
    """One line for a run cut by --time-limit: its undecided neurons are kept, what settling them could gain at
    most (``report.if_undecided_settled``), and what could settle them (more time; questions in parallel where
    this process may use more CPUs than the method's flag for that, --threads or --workers, gave it; the single
    MILP has none)."""
    from .reports.report import settled_as_asked_line

    cpus = _usable_cpus()
    remedies = "a longer --time-limit"
    flag, parallel = (("--workers", report.workers) if report.method == "per-neuron"
                      else ("--threads", max(report.workers, report.threads)))
    if report.method != "milp" and parallel < cpus:
        remedies += f", or {flag} {cpus} (independent questions in parallel on this machine's {cpus} CPUs)"
    undecided = report.counts()["undecided"]
    were, are = ("neuron was", "is") if undecided == 1 else ("neurons were", "are")
    return (f"[yellow]hint:[/yellow] {undecided} {were} undecided at the time limit and "
            f"{are} kept, so the output is still exact; {remedies} may settle them; {settled_as_asked_line(report)}")


@contextmanager
def _stage_bar(name: str) -> Iterator:
    """A ``Progress`` drawing one rich line on stderr: the stage, and for counted stages a bar with done/total
    questions, the stage's elapsed time and its ETA (a new stage starts a new bar). Where stderr is not a
    terminal (a batch job's log), plain lines instead (``progress_log.StageLines``)."""
    if not err.is_terminal:
        from .progress_log import StageLines

        yield StageLines(err, name)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(f"{name}: starting", total=None)

        def progress(message: str, done: int | None = None, total: int | None = None) -> None:
            description = f"{name}: {message}"
            if bar.tasks[0].description != description:
                bar.reset(task, description=description, total=total, completed=done or 0)
            else:
                bar.update(task, total=total, completed=done or 0)

        yield progress


def _check_out(out: Path, model_sha256: str, force: bool) -> bool:
    """Whether ``out`` is replaced as a whole (``_replaced_whole``), once the folders that needs take a new file
    (``_check_writable``); InputError naming ``out`` otherwise, before any analysis."""
    whole = _replaced_whole(out, model_sha256, force)
    _check_writable(out, whole)
    return whole


def _replaced_whole(out: Path, model_sha256: str, force: bool) -> bool:
    """Whether ``out`` is replaced as a whole (absent, empty, or an exactcompress output: of this model, or of
    another with ``force``) rather than written into (other files, with ``force``: they are kept). InputError
    for a file, or without ``force`` for other files or another model's results."""
    from pydantic import ValidationError

    from .errors import InputError
    from .reports.report import written_files
    from .schema import CompressionReport

    if out.exists() and not out.is_dir():
        raise InputError(str(out), "exists and is not a directory; --out needs a directory for the outputs")
    existing = next(parent for parent in out.absolute().parents if parent.exists())
    if not out.exists() and not existing.is_dir():
        raise InputError(str(out), f"cannot be created: {existing} is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return True
    try:
        previous = CompressionReport.model_validate_json((out / "report.json").read_bytes())
    except (OSError, ValidationError):
        if force:
            return False
        raise InputError(str(out), "is not empty and holds no exactcompress output; choose another --out or pass "
                         "--force") from None
    if (previous.model is None or previous.model.sha256 != model_sha256) and not force:
        raise InputError(str(out), "holds the results of another model; choose another --out or pass --force")
    ours = written_files(previous)
    others = sorted(path.name for path in out.iterdir() if path.name not in ours)
    if others:
        if force:
            return False
        raise InputError(str(out), f"holds an earlier output and other files ({', '.join(others[:3])}"
                         f"{', ...' if len(others) > 3 else ''}) that replacing it would delete; choose another --out "
                         "or pass --force (the other files are kept)")
    return True


def _check_writable(out: Path, whole: bool) -> None:
    """InputError naming ``out`` where a folder the run writes in refuses a file (``storage.files.probe_writable``):
    ``out`` when it exists (written into, or moved aside when replaced), and the folder that receives a new
    ``out`` (its parent, or the nearest existing folder above it)."""
    from .errors import InputError
    from .storage.files import nearest_existing, probe_writable

    folders = [out.absolute()] if out.exists() else []
    if whole or not out.exists():
        folders.append(nearest_existing(out.absolute().parent))
    for folder in folders:
        try:
            probe_writable(folder)
        except OSError as error:
            reason = error.strerror or str(error)
            if folder != out.absolute():
                reason = f"no file can be created in {folder} ({reason})"
            raise InputError(str(out), f"cannot be written: {reason}") from None


@contextmanager
def _cannot_write(out: Path) -> Iterator[None]:
    """An OSError within, the file system refusing to create what ``out`` needs, as an InputError naming ``out``."""
    from .errors import InputError

    try:
        yield
    except OSError as error:
        raise InputError(str(out), f"cannot be written: {error.strerror or error}") from None


@contextmanager
def _replacing(out: Path, whole: bool) -> Iterator[Path]:
    """The folder to write the outputs into: with ``whole``, a new folder beside ``out`` that then takes its
    place (a reader sees the old outputs or the new ones, never a mix); else ``out`` itself."""
    import shutil
    import tempfile

    if not whole:
        with _cannot_write(out):
            out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with _cannot_write(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        yield staging
        with _cannot_write(out):
            _swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, out: Path) -> None:
    """Put the folder ``staging`` in the place of ``out`` (absent, or a folder then deleted). On an OSError ``out``
    is left as it was and no ``.NAME.old-*`` folder stays behind (unless putting ``out`` back failed too)."""
    import shutil
    import tempfile

    if not out.exists():
        os.replace(staging, out)
        return
    previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old = previous / out.name
    try:
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except OSError:
            os.replace(old, out)
            raise
    except OSError:
        if not old.exists():
            previous.rmdir()
        raise
    shutil.rmtree(previous, ignore_errors=True)


#: ``exactcompress schema NAME`` prints the JSON Schema of this pydantic model (in ``schema.py``)
SCHEMA_COMMANDS = {
    "report": ("CompressionReport", "JSON Schema of report.json (CompressionReport)."),
    "job": ("ZooJobSpec", "JSON Schema of a zoo job spec file (ZooJobSpec; YAML or JSON)."),
    "summary": ("ZooSummary", "JSON Schema of a zoo job's summary.json (ZooSummary)."),
    "study": ("StudySpec", "JSON Schema of a study spec file (StudySpec; YAML or JSON)."),
    "arch": ("ArchFile", "JSON Schema of a state dict's architecture file NAME.arch.json (ArchFile; CNNs and state dicts with BatchNorm1d need one)."),
    "manifest": ("Manifest", "JSON Schema of a zoo's manifest file (Manifest; YAML or JSON), named by a job spec's "
                 "source: {manifest: …}."),
}


def _schema_command(model_name: str, doc: str):
    def print_schema() -> None:
        from . import schema

        typer.echo(json.dumps(getattr(schema, model_name).model_json_schema(), indent=2))

    print_schema.__doc__ = doc
    return print_schema


for _name, (_model, _doc) in SCHEMA_COMMANDS.items():
    schema_app.command(_name)(_schema_command(_model, _doc))


RAY_ADDRESS_OPTION = typer.Option(None, "--address", help="Ray cluster to join (HOST:PORT or ray://…); "
                                  "default: an embedded local Ray on this machine.")
NUM_CPUS_OPTION = typer.Option(None, "--num-cpus", min=1, help="CPUs of the embedded local Ray (default: all).")
QUIET_OPTION = typer.Option(False, "--quiet", "-q", help="No progress bar.")


@zoo_app.command("run", short_help="Compress every model of a zoo on Ray; write per-model outputs and the "
                 "summary. Exit code 0, 3 (some failed) or 2 (bad spec).")
def zoo_run(
    spec: Path = typer.Argument(..., help="Job spec, YAML or JSON (see `exactcompress schema job`)."),
    address: Optional[str] = RAY_ADDRESS_OPTION,
    num_cpus: Optional[int] = NUM_CPUS_OPTION,
    quiet: bool = QUIET_OPTION,
    incremental: bool = typer.Option(False, "--incremental", help="Scheduled runs: skip models whose source "
                                     "version the output's ledger records as done (without downloading them), "
                                     "lease each model so concurrent runs never both analyse it, and add what "
                                     "this run finishes to ledger.json."),
    take_over_leases: bool = typer.Option(False, "--take-over-leases", help="With --incremental, after a run was "
                                          "killed: take over the models other runs hold leases on instead of "
                                          "waiting for the leases to expire (only when no other run is alive; a "
                                          "live one would duplicate work, never a result)."),
) -> None:
    """Compress every model of a zoo on Ray; write per-model outputs and, last, summary.json/.md/.html at the
    spec's output prefix. Exit code 0: all models exact or partial (or in progress in another run); 3: some
    failed; 2: bad spec."""
    from .errors import InputError
    from .reports.summary import render_summary_table
    from .schema.specfile import read_job_spec

    with _one_line_errors():
        job = read_job_spec(spec)
        from .distributed.zoo_job import run_zoo_job

        if take_over_leases and not incremental:
            raise InputError("--take-over-leases", "only applies with --incremental (plain runs take no leases)")
        run = run_zoo_job(job, address=address, num_cpus=num_cpus, console=None if quiet else err,
                          incremental=incremental, take_over_leases=take_over_leases, spec_file=str(spec))
    typer.echo(render_summary_table(run.summary))
    totals = run.summary.totals
    unchanged = f" ({run.unchanged} unchanged per the ledger, not downloaded)" if incremental else ""
    typer.echo(f"{run.reused} of {totals.models} models reused from earlier runs or identical files{unchanged}; "
               f"wall time {run.wall_seconds:.1f} s")
    if totals.in_progress_elsewhere:
        leases = run.summary.leases_elsewhere
        last = max(lease.expires_at for lease in leases)
        holders = sorted({lease.holder for lease in leases})
        typer.echo(f"{totals.in_progress_elsewhere} models in progress in another run (not failed; that run's or "
                   f"the next run's summary has them): leases of run {', '.join(holders)} until "
                   f"{_utc(last)}; if that run is dead, run again with --take-over-leases")
    for model in run.summary.redone:
        typer.echo(f"redone {model.source_key}: its committed report did not count ({model.reason})")
    typer.echo(f"summary: {run.summary_html}")
    if run.exit_code:
        err.print(f"[red]partial failure:[/red] {totals.failed} of {totals.models} models failed; see their reports")
        raise typer.Exit(run.exit_code)


def _utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


DASHBOARD_HELP = "Ray dashboard (Jobs API) address of the cluster, http://HEAD:8265 or HEAD:8265 (default: $RAY_ADDRESS)."


JOB_ID_OPTION = typer.Option(None, "--job-id", help="Submission id (default: chosen by Ray).")
PIP_OPTION = typer.Option([], "--pip", help="Extra pip requirement for the job's environment; repeat.")
PASS_CREDENTIALS_OPTION = typer.Option(False, "--pass-credentials", help="Forward AWS_ACCESS_KEY_ID/"
                                       "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN when set) to the job (dev "
                                       "clusters only: the job table shows them).")


def _submit(spec: Path, address: str, command: str, job_id: Optional[str], pip: list[str],
            pass_credentials: bool) -> None:
    """Check the spec of ``exactcompress <command> run`` here, submit it, print the submission id."""
    from .schema.specfile import read_job_spec, read_study_spec

    with _one_line_errors():
        (read_study_spec if command == "study" else read_job_spec)(spec)
        from .distributed.submit import submit_zoo_job, zoo_entrypoint

        submission = submit_zoo_job(spec, address, job_id=job_id, extra_pip=pip or None,
                                    pass_credentials=pass_credentials, entrypoint=zoo_entrypoint(spec.name, command))
    typer.echo(submission)
    err.print(f"follow it: exactcompress {command} logs {submission} --address {address} --follow", highlight=False,
              soft_wrap=True)


def _submit_command(command: str, what: str, doc: str):
    """The ``<command> submit`` CLI command: the same options for the zoo job and the study."""

    def submit(
        spec: Path = typer.Argument(..., help=f"{what} spec, YAML or JSON; checked here before it is sent."),
        address: str = typer.Option(..., "--address", envvar="RAY_ADDRESS", help=DASHBOARD_HELP),
        job_id: Optional[str] = JOB_ID_OPTION,
        pip: list[str] = PIP_OPTION,
        pass_credentials: bool = PASS_CREDENTIALS_OPTION,
    ) -> None:
        _submit(spec, address, command, job_id, pip, pass_credentials)

    submit.__doc__ = " ".join(doc.split())
    return submit


zoo_app.command("submit")(_submit_command(
    "zoo", "Job", """Submit the zoo job to a Ray cluster through the Jobs API (this package's code travels with it);
    prints the submission id for `zoo status` and `zoo logs`."""))


def job_exit_code(status: str, message: str | None) -> int:
    """The exit code of ``status``/``logs --follow`` for a job in Ray's ``status``: 0 while it is pending or
    running and when it succeeded; for FAILED, the exit code its own run ended with (3 some models failed, 2 bad
    spec or input; Ray's ``message`` gives it) or else 1; 1 for STOPPED (its run did not finish)."""
    from .errors import ExitCode

    if status == "FAILED":
        import re

        found = re.search(r"failed with exit code (\d+)", message or "")
        code = int(found.group(1)) if found else None
        return code if code in (ExitCode.FAILED, ExitCode.USAGE, ExitCode.PARTIAL_FAILURE) else ExitCode.FAILED
    return ExitCode.FAILED if status == "STOPPED" else ExitCode.OK


def _status_line(message: str | None, logs_command: str) -> str:
    """Ray's message on a job in one line: a failed job's carries up to 20,000 characters of its log after
    "last available logs", which ``logs_command`` prints instead."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    cut = first.find(", last available logs")
    return f"{first[:cut]} (its log: {logs_command})" if cut >= 0 else first


def _job_commands(group: typer.Typer, command: str, what: str) -> None:
    """``<command> status|logs|stop``: follow a job that ``<command> submit`` sent to a cluster."""
    job_id_argument = typer.Argument(..., help=f"Submission id printed by `{command} submit`.")
    address_option = typer.Option(..., "--address", envvar="RAY_ADDRESS", help=DASHBOARD_HELP)

    def status(job_id: str = job_id_argument, address: str = address_option) -> None:
        from .distributed.submit import job_status

        with _one_line_errors():
            info = job_status(address, job_id)
        summary = _status_line(info.message, f"exactcompress {command} logs {job_id} --address {address}")
        typer.echo(f"{info.submission_id}: {info.status.value}" + (f" — {summary}" if summary else ""))
        raise typer.Exit(job_exit_code(info.status.value, info.message))

    def logs(job_id: str = job_id_argument, address: str = address_option,
             follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends.")) -> None:
        from .distributed.submit import job_logs, job_status

        with _one_line_errors():
            for chunk in job_logs(address, job_id, follow=follow):
                typer.echo(chunk, nl=False)
            if follow:
                info = job_status(address, job_id)
        if follow:
            raise typer.Exit(job_exit_code(info.status.value, info.message))

    def stop(job_id: str = job_id_argument, address: str = address_option) -> None:
        from .distributed.submit import stop_job

        with _one_line_errors():
            stopped = stop_job(address, job_id)
        typer.echo("stopped" if stopped else "already finished")

    status.__doc__ = (f"Status of a submitted {what} (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED). Exit code 0 "
                      "while pending or running and once succeeded; once FAILED its run's own (3: some failed, 2: bad "
                      "spec, else 1); 1 once STOPPED.")
    logs.__doc__ = (f"The driver log of a submitted {what}; with --follow, until it ends, then the exit code of "
                    "`status`.")
    stop.__doc__ = f"Stop a submitted {what} (models already committed stay; a new run resumes the rest)."
    group.command("status")(status)
    group.command("logs")(logs)
    group.command("stop")(stop)


_job_commands(zoo_app, "zoo", "zoo job")


def _make_out_dir(out: Path, what: str) -> None:
    """Create the folder ``out`` for ``what``; one line and exit code 2 where it is a file or cannot be created or
    written."""
    from .errors import InputError
    from .storage.files import probe_writable

    with _one_line_errors():
        if out.exists() and not out.is_dir():
            raise InputError(str(out), f"exists and is not a directory; --out needs a directory for {what}")
        with _cannot_write(out):
            out.mkdir(parents=True, exist_ok=True)
            probe_writable(out)


@zoo_app.command("digits")
def zoo_digits(
    out: Path = typer.Option(..., "--out", help="Directory for the models, zoo.json and digits_test_X.npy."),
    seed: int = typer.Option(0, min=0, help="Training seed (same seed → identical files)."),
) -> None:
    """Train the bundled zoo: small MLPs on scikit-learn's digits at several L1 strengths."""
    from .training.digits_zoo import build_digits_zoo

    _make_out_dir(out, "the zoo")
    paths = build_digits_zoo(out, seed=seed)
    for path in paths:
        typer.echo(str(path))


@study_app.command("run", short_help="Train and compress every configuration of a study on Ray; write its "
                   "tables and figures. Exit code 0, 3 (some failed) or 2 (bad spec).")
def study_run(
    spec: Path = typer.Argument(..., help="Study spec, YAML or JSON (see `exactcompress schema study`)."),
    address: Optional[str] = RAY_ADDRESS_OPTION,
    num_cpus: Optional[int] = NUM_CPUS_OPTION,
    quiet: bool = QUIET_OPTION,
) -> None:
    """Train and compress every configuration of a study on Ray (configurations already done are reused);
    write study.json/.csv/.md/.html and the figures at the spec's output prefix. Exit code 0: all
    configurations exact or partial; 3: some failed; 2: bad spec."""
    from .reports.study import render_study_table
    from .schema.specfile import read_study_spec

    with _one_line_errors():
        study = read_study_spec(spec)
        from .distributed.study_job import run_study

        run = run_study(study, address=address, num_cpus=num_cpus, console=None if quiet else err,
                        spec_file=str(spec))
    typer.echo(render_study_table(run.result))
    rows = len(run.result.rows)
    typer.echo(f"trained {run.trained} and compressed {run.analysed} of {rows} configurations in this run (the "
               f"rest reused); wall time {run.wall_seconds:.1f} s")
    typer.echo(f"study: {run.study_html}")
    if run.exit_code:
        failed = sum(row.status == "failed" for row in run.result.rows)
        err.print(f"[red]partial failure:[/red] {failed} of {rows} configurations failed; see the study table")
        raise typer.Exit(run.exit_code)


study_app.command("submit")(_submit_command(
    "study", "Study", """Submit the study to a Ray cluster through the Jobs API (its output must be storage the cluster
    reaches); prints the submission id for `study status` and `study logs`."""))
_job_commands(study_app, "study", "study")


@app.command(short_help="The main job on an embedded default: local S3 server, local Ray, the bundled zoo.")
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Local folder: the S3 server's data, the trained zoo "
                             "and a copy of the results."),
    time_limit: float = typer.Option(120.0, "--time-limit", callback=_positive_seconds,
                                     help="Analysis seconds per model (> 0)."),
    num_cpus: Optional[int] = typer.Option(None, "--num-cpus", min=1, help="CPUs of the embedded Ray (default: all)."),
) -> None:
    """The main job on an embedded default: start a local S3 server (SeaweedFS), upload the bundled digits zoo,
    compress it on a local Ray with `zoo run`'s job, copy the results to OUT/results, print the summary table
    and stop the server."""
    from .reports.summary import render_summary_table
    from .schema import ZooJobSpec
    from .storage import open_storage
    from .storage.local_s3 import LocalS3Server, create_buckets
    from .training.digits_zoo import build_digits_zoo

    _make_out_dir(out, "the demo")
    with err.status("training the digits zoo"):
        models = build_digits_zoo(out / "zoo")
    with LocalS3Server(out / "s3") as server:
        endpoint = server.endpoint
        os.environ.update(endpoint.env())  # before Ray starts, so its workers reach the same server
        create_buckets(endpoint, ["exactcompress-demo"])
        source = open_storage("s3://exactcompress-demo/zoo")
        for path in [*models, out / "zoo" / "digits_test_X.npy"]:
            source.upload(path, path.name)
        spec = ZooJobSpec(source=source.url(), output="s3://exactcompress-demo/results", time_limit_s=time_limit,
                          data="digits_test_X.npy")
        from .distributed.zoo_job import run_zoo_job

        run = run_zoo_job(spec, num_cpus=num_cpus, console=err)
        results = open_storage(spec.output)
        local = out / "results"
        for key in results.list_keys():
            results.download(key, local / key)
    typer.echo(render_summary_table(run.summary))
    typer.echo(f"{run.summary.totals.models} models in {run.wall_seconds:.1f} s on local Ray; results in "
               f"{spec.output} (server stopped), copied to {local}")
    typer.echo(f"HTML summary: {local / 'summary.html'}")
    if run.exit_code:
        _fail("some models failed; see their reports", run.exit_code)


def main() -> None:
    """The console script: runs the command, then ends the process without the interpreter's teardown
    (``process_exit``; ~0.45 s once torch is loaded). Ctrl-C ends it with "interrupted" and status 130, SIGTERM
    (a scheduler's stop) the same way with "terminated" and 143: running SCIP solves end, pools' processes are
    ended, and nothing half-written replaces an earlier output."""
    tune_allocator()
    sigterm = SigtermAsCtrlC()  # as Ctrl-C: SCIP's solves end on SIGINT, and cleanups run
    sigterm.install()
    try:
        app()
        status = 0
    except SystemExit as done:
        status = exit_status(done)
    except KeyboardInterrupt:
        status = 130
    if status == 130:  # typer turns Ctrl-C into a silent exit 130
        err.print("terminated" if sigterm.terminated else "interrupted")
        status = 143 if sigterm.terminated else 130
    end_process(status)
