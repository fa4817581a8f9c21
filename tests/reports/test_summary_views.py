import base64
import re
import shutil
import subprocess

import pytest

from exactcompress.reports.summary import (
    model_names,
    render_summary_html,
    render_summary_markdown,
    render_summary_table,
    summary_figures,
)
from exactcompress.schema import (
    LeaseElsewhere,
    ManifestSource,
    RedoneModel,
    Versions,
    ZooJobSpec,
    ZooModelResult,
    ZooSummary,
    ZooTotals,
)
from exactcompress.storage import open_storage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = {"summary_removed.png", "summary_seconds.png", "summary_settled.png"}
VERSIONS = Versions(exactcompress="0.1.0", python="3.11", numpy="1.26", torch="2.13", pyscipopt="6.3", scip="10.0")
OUTPUT = "s3://zoo-out/run-1"
HOSTILE_ERROR = "load failed | <script>alert('x')</script>\nsecond line of the traceback " + "x" * 80


def _model(name: str, status: str = "exact", **fields) -> ZooModelResult:
    report = f"{OUTPUT}/{name}/report.json"
    values = dict(
        source_key=f"s3://zoo-in/models/{name}.pt", status=status, report_key=report, seconds=2.5,
        neurons_before=100, neurons_after=40, parameters_before=5000, parameters_after=2100,
        settled_by={"bounds": 12, "witnesses": 40, "single-milp": 3}, undecided=0,
    )
    return ZooModelResult(**{**values, **fields})


def _summary(models: list[ZooModelResult]) -> ZooSummary:
    def count(status: str) -> int:
        return sum(model.status == status for model in models)

    return ZooSummary(
        spec=ZooJobSpec(source="s3://zoo-in/models", output=OUTPUT, time_limit_s=60.0),
        versions=VERSIONS,
        models=models,
        totals=ZooTotals(
            models=len(models), exact=count("exact"), partial=count("partial"), failed=count("failed"),
            neurons_before=sum(m.neurons_before for m in models), neurons_after=sum(m.neurons_after for m in models),
            parameters_before=sum(m.parameters_before for m in models),
            parameters_after=sum(m.parameters_after for m in models),
            engine_seconds=sum(m.seconds for m in models),
        ),
    )


def _mixed() -> ZooSummary:
    return _summary([
        _model("mnist-a"),
        _model("pipe|name<b>", status="partial", neurons_after=70, undecided=9, seconds=600.0,
               settled_by={"bounds": 20, "per-neuron": 1}),
        _model("broken", status="failed", error=HOSTILE_ERROR, report_key=None, seconds=0.0, neurons_before=0,
               neurons_after=0, parameters_before=0, parameters_after=0, settled_by={}),
    ])


def _embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _table_rows(text: str) -> list[str]:
    section = text.split("## Models\n\n")[1].split("\n\n")[0]
    return section.splitlines()[2:]


def test_model_names_drop_folders_and_suffix_unless_needed():
    keys = ["s3://b/zoo/a/net.pt", "s3://b/zoo/b/net.onnx", "file:///tmp/zoo/other.v2.safetensors", "plain"]
    assert model_names([_model("x", source_key=key) for key in keys]) == ["a/net", "b/net", "other.v2", "plain"]


def test_models_that_differ_only_by_suffix_keep_it_in_the_tables():
    keys = [f"s3://b/zoo/m{suffix}" for suffix in (".pt", ".onnx", ".pth", ".safetensors")] + ["s3://b/zoo/other.pt"]
    models = [_model("x", source_key=key) for key in keys]
    assert model_names(models) == ["m.pt", "m.onnx", "m.pth", "m.safetensors", "other"]
    assert [row.split(" | ")[0] for row in _table_rows(render_summary_markdown(_summary(models)))] == [
        "| m.pt", "| m.onnx", "| m.pth", "| m.safetensors", "| other"]


def test_model_names_of_a_large_zoo_are_unique_and_short():
    models = [_model("x", source_key=f"s3://b/zoo/group{i % 2}/net{i // 2}.pt") for i in range(5000)]
    models.append(_model("x", source_key="s3://b/zoo/alone.pt"))
    names = model_names(models)
    assert names[:2] == ["group0/net0", "group1/net0"] and names[-1] == "alone" and len(set(names)) == 5001


def test_a_kept_suffix_never_makes_a_name_another_model_has():
    keys = ["s3://bk/m.pt", "s3://bk/m.pth", "s3://bk/m.pt.pth"]  # stripped, the last one is "m.pt" too
    assert model_names([_model("x", source_key=key) for key in keys]) == ["m.pt", "m.pth", "m.pt.pth"]


def test_markdown_has_totals_settings_and_one_escaped_row_per_model():
    text = render_summary_markdown(_mixed())
    assert text.startswith("# exactcompress zoo: 3 models\n")
    assert "3 models: 1 exact, 1 partial, 1 failed · neurons 200 → 110 (45.0% removed)" in text
    assert "parameters 10000 → 4200 · Σ engine seconds 602.50" in text
    for setting in ("| source | s3://zoo-in/models |", f"| output | {OUTPUT} |", "| domain | box: lower 0, upper 1 |",
                    "| method | auto |", "| time limit | 60 s per model |"):
        assert setting in text
    rows = _table_rows(text)
    assert len(rows) == 3
    assert rows[0] == (
        "| mnist-a | exact | 100 → 40 | 60.0 | 5000 → 2100 | bounds 12 · witnesses 40 · single-milp 3 | 0 | 2.50 "
        "| [report](./mnist-a/report.html) |  |"
    )
    assert rows[1].startswith("| pipe\\|name&lt;b&gt; | partial | 100 → 70 | 30.0 |")
    assert "bounds 20 · per-neuron 1 | 9 | 600.00 | [report](./pipe%7Cname%3Cb%3E/report.html) |" in rows[1]
    assert rows[2].startswith("| broken | failed | — | — | — | — | — | 0.00 | — | load failed \\| &lt;script&gt;")
    assert "<script>" not in text and "\n" not in rows[2]
    assert [len(re.split(r"(?<!\\)\|", row)) - 2 for row in rows] == [10, 10, 10]  # cells between unescaped pipes
    assert "## Figures" not in text


def test_markdown_links_figures_when_named():
    names = {name: f"figures/{name}" for name in sorted(FIGURES)}
    text = render_summary_markdown(_mixed(), figure_names=names)
    assert "![fraction of neurons removed per model](figures/summary_removed.png)" in text
    assert "![engine seconds per model](figures/summary_seconds.png)" in text
    assert "![neurons settled by each step per model](figures/summary_settled.png)" in text


def test_reports_outside_the_output_prefix_keep_their_url():
    summary = _summary([_model("elsewhere", report_key="s3://other/elsewhere/report.json")])
    assert "[report](s3://other/elsewhere/report.html)" in render_summary_markdown(summary)


@pytest.mark.parametrize("spelling", ["out", "./out/", "file://{root}/out", "{root}/./out"])
def test_report_links_are_relative_however_the_output_is_spelled(tmp_path, monkeypatch, spelling):
    monkeypatch.chdir(tmp_path)
    output = spelling.format(root=tmp_path)
    model = _model("net", report_key=open_storage(output).url("runs/abc/net/report.json"))  # as the job writes it
    summary = _summary([model]).model_copy(update={"spec": ZooJobSpec(source="s3://zoo-in/models", output=output)})
    assert "[report](./runs/abc/net/report.html)" in render_summary_markdown(summary)
    assert 'href="./runs/abc/net/report.html"' in render_summary_html(summary)


def test_html_is_self_contained_escaped_and_embeds_three_figures():
    page = render_summary_html(_mixed())
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert page.count("<script>") == 1  # only the table's own sort/filter script
    assert "pipe|name&lt;b&gt;" in page
    assert re.findall(r'src="([^"]*)"', page) and all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert "<link" not in page and "http://" not in page and "https://" not in page
    pngs = _embedded_pngs(page)
    assert len(pngs) == 3 and all(png.startswith(PNG_MAGIC) for png in pngs)
    assert '<td class="status-failed">failed</td>' in page
    assert '<a href="./mnist-a/report.html">report</a>' in page
    assert page.count("<tr>") == 6 + 1 + 3  # settings rows, model header, model rows


def test_figures_are_pngs_and_deterministic():
    summary = _mixed()
    first, second = summary_figures(summary), summary_figures(_mixed())
    assert set(first) == FIGURES
    assert all(png.startswith(PNG_MAGIC) for png in first.values())
    assert first == second
    assert b"tEXt" not in first["summary_removed.png"] and b"tIME" not in first["summary_removed.png"]
    changed = _summary([*summary.models[:2], summary.models[2].model_copy(update={"status": "partial"})])
    assert summary_figures(changed)["summary_removed.png"] != first["summary_removed.png"]


def test_empty_summary_renders_everywhere():
    summary = _summary([])
    text = render_summary_markdown(summary, figure_names={"summary_removed.png": "summary_removed.png"})
    assert "0 models: 0 exact, 0 partial, 0 failed · neurons 0 → 0 (0.0% removed)" in text and "_No models._" in text
    page = render_summary_html(summary)
    assert "No models." in page and not _embedded_pngs(page)
    figures = summary_figures(summary)
    assert set(figures) == FIGURES and all(png.startswith(PNG_MAGIC) for png in figures.values())
    assert render_summary_table(summary).splitlines()[0].split() == ["model", "status", "neurons", "%", "removed", "seconds"]


def test_two_hundred_models_with_awkward_names_give_bounded_figures():
    models = [
        _model(f"net-{index:03d}$^$", status=("exact", "partial", "failed")[index % 3], seconds=0.01 * (index + 1) ** 2,
               settled_by={"bounds": index % 7, "witnesses": 50, "future-step": 1})
        for index in range(200)
    ]
    summary = _summary(models)
    figures = summary_figures(summary)
    for png in figures.values():
        width_px = int.from_bytes(png[16:20], "big")
        assert width_px == 7 * 110  # distributions, not one bar per model
    assert len(_table_rows(render_summary_markdown(summary))) == 200
    assert "future-step 1" in render_summary_markdown(summary)


def test_terminal_table_shortens_errors_and_has_one_line_per_model():
    summary = _mixed()
    lines = render_summary_table(summary).splitlines()
    assert lines[0].split() == ["model", "status", "neurons", "%", "removed", "undecided", "seconds", "error"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split()[:5] == ["mnist-a", "exact", "100", "→", "40"]
    assert lines[2].split()[5:] == ["60.0", "0", "2.50"]
    assert lines[3].startswith("pipe|name<b>  partial") and lines[3].split()[5:8] == ["30.0", "9", "600.00"]
    failed = lines[4]
    assert failed.split()[:2] == ["broken", "failed"] and "load failed | <script>" in failed
    assert failed.endswith("…") and "second line" in failed and len(failed.split("load failed")[1]) == 60 - len("load failed")
    assert len(lines) == 7 and lines[5] == "" and lines[6].startswith("3 models: 1 exact, 1 partial, 1 failed")


def test_manifest_source_and_per_feature_domain_are_described():
    summary = _mixed().model_copy(update={"spec": ZooJobSpec(
        source=ManifestSource(manifest="s3://zoo-in/manifest.yaml"), output=OUTPUT,
        domain={"lower": [0.0, 0.0, 0.0], "upper": 1.0}, time_limit_s=None,
    )})
    text = render_summary_markdown(summary)
    assert "| source | manifest s3://zoo-in/manifest.yaml |" in text
    assert "| domain | box: lower 3 per-feature values, upper 1 |" in text
    assert "| time limit | none |" in text


def _zoo(count: int) -> ZooSummary:
    return _summary([
        _model(f"family-{index % 7}/a-rather-long-model-name-{index:04d}", status=("exact", "partial", "failed")[index % 5 // 3],
               seconds=0.1 * (1 + index % 50) ** 2, neurons_before=100 + 10 * (index % 40),
               neurons_after=40 + index % 60, settled_by={"bounds": index % 7, "witnesses": 50, "bab": index % 3})
        for index in range(count)
    ])


def test_a_thousand_model_summary_has_distribution_figures_and_a_sortable_filterable_table():
    small, large = summary_figures(_zoo(40)), summary_figures(_zoo(1000))
    assert all(int.from_bytes(png[16:20], "big") == 7 * 110 for png in large.values())
    assert int.from_bytes(small["summary_removed.png"][16:20], "big") > 7 * 110  # per-model bars below the limit
    page = render_summary_html(_zoo(1000))
    assert page.count('<tr><td class="') + page.count("<tr><td>") >= 1000
    assert '<table id="models" class="models">' in page and 'id="filter"' in page and "<script>" in page
    assert "http://" not in page and "https://" not in page  # no CDN: the page works offline
    assert len(page) < 3_000_000


@pytest.mark.slow
def test_a_thousand_model_summary_loads_in_a_real_headless_browser(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (make setup installs it where apt-get can)")
    page = tmp_path / "summary.html"
    page.write_text(render_summary_html(_zoo(1000)), encoding="utf-8")
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert '<span id="shown">1000 of 1000 shown</span>' in dom  # the table's script ran to its end
    assert dom.count("a-rather-long-model-name-") >= 1000
    assert "Uncaught" not in result.stderr and "SyntaxError" not in result.stderr


def test_notes_list_leases_of_other_runs_and_redone_models_with_why():
    summary = _summary([_model("a")]).model_copy(update={
        "leases_elsewhere": [LeaseElsewhere(source_key="s3://zoo-in/models/held.pt", holder="run-7f3",
                                            expires_at=1_800_000_000.0)],
        "redone": [RedoneModel(source_key="s3://zoo-in/models/a.pt", report_key=f"{OUTPUT}/runs/x/report.json",
                               reason="compressed.pt is missing")]})
    for text in (render_summary_markdown(summary), render_summary_html(summary)):
        assert "Notes" in text and "held.pt" in text and "run-7f3" in text and "2027-01-15 08:00:00 UTC" in text
        assert "compressed.pt is missing" in text
    assert "Notes" not in render_summary_markdown(_summary([_model("a")]))


def test_a_channels_column_appears_only_when_the_zoo_holds_a_cnn():
    mlps = _summary([_model("a"), _model("b")])
    assert "channels" not in render_summary_markdown(mlps) and "channels" not in render_summary_html(mlps)
    mixed = _summary([_model("mlp"), _model("cnn", channels_before=24, channels_after=20)])
    for text in (render_summary_markdown(mixed), render_summary_html(mixed)):
        assert "channels" in text and "24 → 20" in text
    header = render_summary_markdown(mixed).split("## Models")[1].strip().splitlines()[0]
    assert header.index("neurons") < header.index("channels") < header.index("% removed")


def test_the_undecided_column_says_what_settling_them_could_remove_where_the_report_says():
    models = [_model("old", status="partial", undecided=3),  # a report before schema 1.9: the count only
              _model("more", status="partial", undecided=4, neurons_after=70, neurons_after_if_settled=66),
              _model("same", status="partial", undecided=1, neurons_after=70, neurons_after_if_settled=70)]
    rows = _table_rows(render_summary_markdown(_summary(models)))
    assert "4 (at best 4 fewer neurons)" in render_summary_table(_summary(models))
    assert "| 3 |" in rows[0]
    assert "| 4 (at best 4 fewer neurons) |" in rows[1]
    assert "| 1 (cannot shrink the model) |" in rows[2]


def test_the_settings_name_the_jobs_domain_a_default_where_models_override_it():
    plain = _summary([_model("a"), _model("b")])
    assert "| domain | box: lower 0, upper 1 |" in render_summary_markdown(plain)
    for keys, note in ((["s3://zoo-in/models/b.pt"], "1 model overrides it"),
                       (["s3://zoo-in/models/a.pt", "s3://zoo-in/models/b.pt"], "2 models override it")):
        summary = plain.model_copy(update={"domain_overrides": keys})
        assert f"| domain | box: lower 0, upper 1 (job default; {note}) |" in render_summary_markdown(summary)
        assert f"<td>box: lower 0, upper 1 (job default; {note})</td>" in render_summary_html(summary)
