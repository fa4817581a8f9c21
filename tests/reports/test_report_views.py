import base64
import re

from exactcompress import tolerances
from exactcompress.reports.report import (
    layer_figure_png,
    render_html,
    render_markdown,
    write_reports,
)
from exactcompress.schema import (
    CompressionReport,
    DomainRecord,
    LayerReport,
    ModelInfo,
    SolverStats,
    VerificationReport,
    Versions,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VERSIONS = Versions(exactcompress="0.1.0", python="3.11", numpy="1.26", torch="2.13", pyscipopt="6.3", scip="10.0")


def _report(name: str = "digits-32x32-l1_1e-3") -> CompressionReport:
    layers = [
        LayerReport(
            index=0,
            width=6,
            stably_active=[0],
            stably_inactive=[1, 2, 3],
            unstable=[4],
            undecided=[5],
            settled_by={"bounds": [1, 2], "witnesses": [4], "per-neuron": [0, 3]},
        ),
        LayerReport(index=1, width=4, stably_active=[], stably_inactive=[0, 1], unstable=[2, 3], undecided=[], settled_by={"bounds": [0, 1]}),
    ]
    return CompressionReport(
        model=ModelInfo(
            name=name, path=f"zoo/{name}.pt", sha256="ab" * 32, format="torch", dtype="float32",
            input_dim=64, hidden_widths=[6, 4], output_dim=10,
        ),
        model_path=f"zoo/{name}.pt",
        domain=DomainRecord(
            kind="box", source="--lower 0 --upper 1", n_boxes=1, union_semantics="single box",
            scalar_lower=0.0, scalar_upper=1.0, boxes=[],
        ),
        method="auto",
        status="exact",
        time_limit_s=60.0,
        layers=layers,
        neurons_before=10,
        neurons_after=4,
        parameters_before=500,
        parameters_after=200,
        hidden_widths_after=[2, 2],
        verification=VerificationReport(
            n_inputs=1000, max_abs_error=3.5e-12, max_rel_error=1e-12, tolerance=1e-6, passed=True, saved_dtype="float32"
        ),
        seconds={"bounds": 0.1, "witnesses": 1.5, "milp": 2.25, "total": 4.0},
        milp=SolverStats(solves=3, nodes=17, lp_iterations=420, seconds=2.2),
        tolerances=tolerances.record(),
        versions=VERSIONS,
    )


def _failed() -> CompressionReport:
    return CompressionReport(
        model_path="zoo/broken.pt", method="auto", status="failed",
        error="zoo/broken.pt: not a torch state_dict", versions=VERSIONS,
    )


def _embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_layer_figure_is_png():
    assert layer_figure_png(_report()).startswith(PNG_MAGIC)
    assert layer_figure_png(_failed()).startswith(PNG_MAGIC)


def test_markdown_has_summary_layer_rows_and_figure_link():
    text = render_markdown(_report(), figure_name="report_layers.png")
    assert "digits-32x32-l1_1e-3" in text and "exact" in text
    assert "10 → 4 (60.0% removed)" in text
    assert "500 → 200" in text
    assert "passed" in text and "3.5e-12" in text
    assert "![neuron states per layer](report_layers.png)" in text
    assert "| 0 | 6 | 1 | 3 | 1 | 1 | 2 | 1 | 2 |" in text
    assert "| 1 | 4 | 0 | 2 | 2 | 0 | 2 | 0 | 0 |" in text
    assert "| milp | 2.25 |" in text
    assert "| witness_margin | 1e-09 |" in text
    assert "| scip | 10.0 |" in text
    assert "report_layers.png" not in render_markdown(_report())


def test_html_is_self_contained_with_embedded_png():
    page = render_html(_report())
    assert "digits-32x32-l1_1e-3" in page and "exact" in page
    assert "http://" not in page and "https://" not in page
    pngs = _embedded_pngs(page)
    assert len(pngs) == 1 and pngs[0].startswith(PNG_MAGIC)
    layer_rows = re.findall(r"<tr><td class=\"num\">(\d)</td><td class=\"num\">(\d+)</td>", page)
    assert layer_rows == [("0", "6"), ("1", "4")]
    assert '<td class="num">1e-09</td>' in page and '<td class="num">2.25</td>' in page  # exponents, decimals
    assert 'class="legend">stably active: g ≥ 0 on the whole domain' in page
    assert "*stably active: g ≥ 0 on the whole domain" in render_markdown(_report())


def test_html_and_markdown_escape_model_names():
    hostile = "<script>alert('x')</script>|evil"
    page = render_html(_report(hostile))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    text = render_markdown(_report(hostile))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\\|evil" in text


def test_failed_report_renders_its_error(tmp_path):
    failed = _failed()
    page, text = render_html(failed), render_markdown(failed)
    for rendered in (page, text):
        assert "broken.pt" in rendered and "failed" in rendered and "not a torch state_dict" in rendered
        assert "0 → 0" not in rendered  # nothing was analysed: no neuron counts to show
    assert "| neurons | — |" in text and '<td class="num">—</td>' in page
    names = write_reports(failed, tmp_path)
    assert all((tmp_path / name).is_file() for name in names.values())


def test_a_failed_run_shows_no_after_side():
    """A failed run wrote no compressed model: its pages must not read as if every neuron had been removed."""
    loaded = _failed().model_copy(update={"model": _report().model})  # e.g. a solver error after loading
    verified = _report().model_copy(update={"status": "failed", "error": "verification failed"})
    for report, neurons, parameters in ((loaded, "—", "—"), (verified, "10 → —", "500 → —")):
        text, page = render_markdown(report), render_html(report)
        assert "| hidden widths | [6, 4] → — |" in text and "<td>[6, 4] → —</td>" in page
        assert f"| neurons | {neurons} |" in text and f"| parameters | {parameters} |" in text
        assert "→ []" not in text + page and "[2, 2]" not in text + page and "% removed" not in text
    assert "| hidden widths | [6, 4] → [2, 2] |" in render_markdown(_report())


def test_write_reports_writes_three_files(tmp_path):
    names = write_reports(_report(), tmp_path / "out")
    assert names == {"report_md": "report.md", "report_html": "report.html", "figure": "report_layers.png"}
    out = tmp_path / "out"
    assert (out / "report_layers.png").read_bytes().startswith(PNG_MAGIC)
    assert "report_layers.png" in (out / "report.md").read_text(encoding="utf-8")
    assert _embedded_pngs((out / "report.html").read_text(encoding="utf-8"))


def test_single_milp_convergence_is_plotted_when_traced(tmp_path):
    traced = _report().model_copy(update={"milp": SolverStats(
        solves=1, nodes=40, single_milp_finished=True, open_states=12, solutions_harvested=5,
        lp_points_harvested=30, states_fixed=9, dual_trace=[(0.0, 12.0), (0.5, 4.0), (1.2, 0.4)])})
    page = render_html(traced)
    assert page.count("data:image/png;base64,") == 2 and "solutions harvested" in page
    written = write_reports(traced, tmp_path)
    assert (tmp_path / "report_dual_bound.png").read_bytes().startswith(PNG_MAGIC)
    assert "report_dual_bound.png" in (tmp_path / written["report_md"]).read_text()
    assert render_html(_report()).count("data:image/png;base64,") == 1
