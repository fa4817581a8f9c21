"""The ``exactcompress`` command line: parses, calls the library, renders. Nothing else."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Compress ReLU networks exactly: prove which neurons are stable on an input domain, remove or fold "
    "them, and verify that the compressed network computes the same function there.",
)
zoo_app = typer.Typer(no_args_is_help=True, help="Model zoos: build the bundled digits zoo.")
schema_app = typer.Typer(no_args_is_help=True, help="Print the JSON Schema of a file this tool writes.")
app.add_typer(zoo_app, name="zoo")
app.add_typer(schema_app, name="schema")

err = Console(stderr=True)


class MethodChoice(str, Enum):
    auto = "auto"
    per_neuron = "per-neuron"
    milp = "milp"


class FormatChoice(str, Enum):
    torch = "torch"
    safetensors = "safetensors"
    onnx = "onnx"


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _domain(lower, upper, domain_file, data_box, margin):
    from .domain import from_data, from_file, scalar_box
    from .errors import InputError

    chosen = [name for name, value in (("--lower/--upper", lower is not None or upper is not None),
                                       ("--domain", domain_file), ("--domain-from-data", data_box)) if value]
    if len(chosen) > 1:
        _fail(f"choose one domain: {' or '.join(chosen)}", 2)
    if margin is not None and data_box is None:
        _fail("--margin only applies with --domain-from-data", 2)
    try:
        if domain_file:
            return from_file(domain_file)
        if data_box:
            return from_data(data_box, margin or 0.0)
        return scalar_box(0.0 if lower is None else lower, 1.0 if upper is None else upper)
    except InputError as error:
        _fail(str(error))


@app.command()
def compress(
    model: Path = typer.Argument(..., help="Model file: torch state_dict (.pt/.pth), .safetensors or .onnx."),
    out: Path = typer.Option(..., "--out", help="Output directory (created)."),
    lower: Optional[float] = typer.Option(None, help="Lower bound of every input (default 0)."),
    upper: Optional[float] = typer.Option(None, help="Upper bound of every input (default 1)."),
    domain: Optional[Path] = typer.Option(None, "--domain", help="Domain file: .npy (2, d) lower/upper rows; JSON "
                                          "{lower, upper} (scalars or lists); or JSON {points, epsilon} for L∞ balls."),
    domain_from_data: Optional[Path] = typer.Option(None, "--domain-from-data", help="Use the bounding box of the "
                                                    "points in this .npy file (n, d)."),
    margin: Optional[float] = typer.Option(None, help="Widen --domain-from-data's box by this much on each side."),
    data: Optional[Path] = typer.Option(None, "--data", help="Extra witness candidates, .npy (n, d)."),
    method: MethodChoice = typer.Option(MethodChoice.auto, help="auto: bounds → witnesses → the single MILP or "
                                        "per-neuron sign solves, chosen per network; milp: bounds → witnesses → one "
                                        "MILP for the whole network; per-neuron: two full MILPs per neuron (the 2020 "
                                        "baseline)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Seconds for the analysis; neurons not "
                                               "settled in time are kept (status 'partial')."),
    workers: int = typer.Option(1, min=1, help="Processes for independent MILPs."),
    fmt: list[FormatChoice] = typer.Option([FormatChoice.torch], "--format", help="Compressed model format(s); repeat "
                                           "for several."),
    seed: int = typer.Option(0, help="Seed for sampling and the gradient search."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Analyse MODEL on a box domain, compress it exactly and write report.json, compressed.pt, witnesses.npz,
    report.md and report.html into --out."""
    from .pipeline import compress_model

    chosen_domain = _domain(lower, upper, domain, domain_from_data, margin)
    if quiet:
        report = compress_model(model, out, domain=chosen_domain, data=data, method=method.value, time_limit=time_limit,
                                workers=workers, formats=[f.value for f in fmt], seed=seed)
    else:
        with err.status(f"{model.name}: starting") as status:
            report = compress_model(model, out, domain=chosen_domain, data=data, method=method.value,
                                    time_limit=time_limit, workers=workers, formats=[f.value for f in fmt], seed=seed,
                                    progress=lambda stage: status.update(f"{model.name}: {stage}"))
    if report.status == "failed":
        _fail(report.error or "failed")
    counts = report.counts()
    removed = report.neurons_before - report.neurons_after
    typer.echo(
        f"{report.status}: {report.neurons_before} → {report.neurons_after} neurons ({removed} removed; "
        f"{counts['stably_active']} stably active, {counts['stably_inactive']} stably inactive, "
        f"{counts['unstable']} unstable, {counts['undecided']} undecided) in {report.seconds.get('total', 0):.1f} s; "
        f"max error {report.verification.max_abs_error:.2e}"
    )
    typer.echo(f"report: {out / 'report.html'}")


@schema_app.command("report")
def schema_report() -> None:
    """JSON Schema of report.json (CompressionReport)."""
    from .schema import CompressionReport

    typer.echo(json.dumps(CompressionReport.model_json_schema(), indent=2))


@zoo_app.command("digits")
def zoo_digits(
    out: Path = typer.Option(..., "--out", help="Directory for the models, zoo.json and digits_test_X.npy."),
    seed: int = typer.Option(0, help="Training seed (same seed → identical files)."),
) -> None:
    """Train the bundled zoo: small MLPs on scikit-learn's digits at several L1 strengths."""
    from .zoo import build_digits_zoo

    paths = build_digits_zoo(out, seed=seed)
    for path in paths:
        typer.echo(str(path))


@app.command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Output directory."),
    time_limit: Optional[float] = typer.Option(120.0, "--time-limit", help="Seconds per model."),
) -> None:
    """Build the bundled digits zoo and compress every model on [0,1]^64 with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .pipeline import compress_model
    from .render import render_summary_table, write_summary_html
    from .zoo import build_digits_zoo

    with err.status("training the digits zoo"):
        models = build_digits_zoo(out / "zoo")
    test_points = out / "zoo" / "digits_test_X.npy"
    reports = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("compressing", total=len(models))
        for path in models:
            bar.update(task, description=f"compressing {path.stem}")
            stage = lambda message, name=path.stem: bar.update(task, description=f"{name}: {message}")  # noqa: E731
            reports.append(compress_model(path, out / path.stem, data=test_points, time_limit=time_limit, progress=stage))
            bar.advance(task)
    typer.echo(render_summary_table(reports))
    index = out / "index.html"
    write_summary_html(reports, [f"{path.stem}/report.html" for path in models], index)
    typer.echo(f"HTML report: {index}")
    if any(report.status == "failed" for report in reports):
        _fail("some models failed; see their reports")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
