"""Job specs refuse what would fail late or corrupt a run: checked before any work starts (exit 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exactcompress.errors import InputError
from exactcompress.schema import ZooJobSpec
from exactcompress.schema.specfile import parse_spec

SCRIPT = shutil.which("exactcompress", path=str(Path(sys.executable).parent))
BASE = "source: s3://zoo-bucket/models\noutput: s3://zoo-bucket/results\n"


@pytest.mark.parametrize("extra, message", [
    ("domain: {lower: 1, upper: 0}", "field 'domain': Value error, lower must not exceed upper"),
    ("domain: {lower: [0, 0], upper: [1, 1, 1]}", "lower has 2 entries but upper has 3"),
    ("domain: {lower: .nan}", "field 'domain.lower'"),
    ("time_limit_s: .inf", "field 'time_limit_s': Input should be a finite number"),
    ("time_limit_s: 1e308", "field 'time_limit_s': Input should be less than or equal to 2592000"),
    ("lease_s: .inf", "field 'lease_s': Input should be a finite number"),
    ("output: s3://Bad_Bucket/out", "'Bad_Bucket' is not a valid S3 bucket name"),
])
def test_bad_values_are_refused_with_one_line_naming_the_field(extra, message):
    text = BASE.replace("output: s3://zoo-bucket/results\n", "") + extra if extra.startswith("output") else BASE + extra
    with pytest.raises(InputError) as caught:
        parse_spec("zoo.yaml", text, ZooJobSpec)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_spec_nested_absurdly_deep_is_one_line():
    with pytest.raises(InputError, match="zoo.yaml: nested too deeply to be a spec"):
        parse_spec("zoo.yaml", "[" * 100_000 + "]" * 100_000, ZooJobSpec)


def test_duplicate_manifest_keys_are_refused(tmp_path):
    from exactcompress.schema import Manifest

    with pytest.raises(InputError, match=r"keys listed more than once: \['a.pt'\]"):
        parse_spec("manifest.yaml", "models: [{key: a.pt}, {key: b.pt}, {key: a.pt}]", Manifest)


def test_the_cli_refuses_a_bad_spec_before_starting_anything(tmp_path):
    spec = tmp_path / "zoo.yaml"
    spec.write_text(BASE.replace("s3://zoo-bucket/results", "s3://Bad_Bucket/results") + "domain: {lower: 1, upper: 0}\n")
    result = subprocess.run([SCRIPT, "zoo", "run", str(spec)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "Bad_Bucket" in result.stderr and "lower must not exceed upper" in result.stderr


def _models(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"PK not really a model")  # planning reads names, not bytes


def test_an_unsafe_model_name_stops_planning_naming_it_locally_and_on_s3(tmp_path, s3_storage):
    from exactcompress.zoo.plan import plan_tasks

    _models(tmp_path / "zoo", "good.pt", "space name.pt")
    with pytest.raises(InputError, match=r"zoo/space name.pt': character ' ' not allowed.*rename the file"):
        plan_tasks(ZooJobSpec(source=str(tmp_path / "zoo"), output=str(tmp_path / "out")))
    s3_storage.put_bytes("zoo/good.pt", b"x")
    # a key the tool would never write, put there by another client
    s3_storage._client().put_object(Bucket=s3_storage.bucket, Key=f"{s3_storage.prefix}/zoo/space name.pt", Body=b"x")
    with pytest.raises(InputError, match=r"zoo/space name.pt': character ' ' not allowed"):
        plan_tasks(ZooJobSpec(source=s3_storage.url("zoo"), output=s3_storage.url("out")))
    assert s3_storage.child("zoo").list_keys() == ["good.pt"]  # other listings keep to safe keys


def test_every_model_suffix_is_planned_and_nothing_else(tmp_path):
    from exactcompress.zoo.plan import plan_tasks

    _models(tmp_path / "zoo", "a.pt", "b.pth", "lightning.ckpt", "c.safetensors", "d.onnx", "notes.txt", "e.npy")
    tasks = plan_tasks(ZooJobSpec(source=str(tmp_path / "zoo"), output=str(tmp_path / "out")))
    assert sorted(task.key for task in tasks) == ["a.pt", "b.pth", "c.safetensors", "d.onnx", "lightning.ckpt"]


def test_a_model_name_with_a_newline_is_named_escaped_on_one_line(tmp_path):
    from exactcompress.zoo.plan import plan_tasks

    _models(tmp_path / "zoo", "good.pt", "a\nb.pt")
    with pytest.raises(InputError) as caught:
        plan_tasks(ZooJobSpec(source=str(tmp_path / "zoo"), output=str(tmp_path / "out")))
    assert "\n" not in str(caught.value) and "zoo/a\\nb.pt'" in str(caught.value)


@pytest.mark.parametrize("spelling", ["{root}", "{root}/", "file://{root}", "file://{root}/", "{root}/sub/..",
                                      "{link}"])
def test_output_equal_to_the_source_is_refused_however_spelled(tmp_path, spelling):
    from exactcompress.zoo.plan import plan_tasks

    _models(tmp_path / "zoo", "a.pt")
    (tmp_path / "link").symlink_to(tmp_path / "zoo")
    with pytest.raises(InputError, match=r"^job spec: field 'output': .* is the job's source too"):
        plan_tasks(ZooJobSpec(source=str(tmp_path / "zoo"),
                              output=spelling.format(root=tmp_path / "zoo", link=tmp_path / "link")))


def test_results_inside_the_source_are_not_read_as_models(tmp_path):
    from exactcompress.zoo.plan import plan_tasks

    _models(tmp_path / "zoo", "a.pt", "out/runs/abc/auto-1/compressed.pt")
    spec = ZooJobSpec(source=f"file://{tmp_path / 'zoo'}/", output=str(tmp_path / "zoo" / "out"))
    assert [task.key for task in plan_tasks(spec)] == ["a.pt"]
    spec = ZooJobSpec(source=str(tmp_path / "zoo"), output=str(tmp_path / "zoo" / "sub" / ".." / "out"))
    assert [task.key for task in plan_tasks(spec)] == ["a.pt"]  # the same place, spelled with '..'

