"""A CNN state dict in a zoo: its architecture file is not a model, and it travels with its model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cnn_nets import known_cnn

from exactcompress.schema import ZooJobSpec
from exactcompress.storage import open_storage
from exactcompress.zoo.plan import plan_tasks
from exactcompress.zoo.task import run_model_task

ARCH = {"input_shape": [1, 4, 4], "layers": [
    {"kind": "conv2d", "key": "0", "padding": 1}, {"kind": "relu"},
    {"kind": "conv2d", "key": "2", "stride": 2}, {"kind": "relu"}, {"kind": "flatten"},
    {"kind": "linear", "key": "5"}, {"kind": "relu"}, {"kind": "linear", "key": "7"}]}


def test_a_zoo_task_loads_a_cnn_state_dict_with_the_architecture_file_beside_it(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo" / "cnns"
    zoo.mkdir(parents=True)
    torch.save(known_cnn().float().state_dict(), zoo / "tiny.pt")
    (zoo / "tiny.arch.json").write_text(json.dumps(ARCH))
    torch.save(known_cnn().float().state_dict(), zoo / "orphan.pt")  # no architecture file: refused, one line
    spec = ZooJobSpec(source=str(tmp_path / "zoo"), output=str(tmp_path / "out"), time_limit_s=60,
                      verify_samples=1000)
    tasks = plan_tasks(spec)
    assert [task.key for task in tasks] == ["cnns/orphan.pt", "cnns/tiny.pt"]  # the .arch.json is no model
    orphan, tiny = (run_model_task(task).result for task in tasks)
    assert orphan.status == "failed" and "architecture file is needed" in orphan.error
    assert tiny.status == "exact", tiny.error
    assert (tiny.channels_before, tiny.channels_after) == (3 + 2, 2 + 2)  # conv1 loses its inactive channel
    assert orphan.channels_before is None
    output = open_storage(spec.output)
    keys = output.list_keys()
    arch_keys = [key for key in keys if key.endswith("/compressed.arch.json")]
    assert len(arch_keys) == 1
    assert json.loads(output.get_bytes(arch_keys[0]))["layers"][0]["out_channels"] == 2  # channel 1 removed


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return open_storage(str(tmp_path / "root"))
    return request.getfixturevalue("s3_storage")


def test_an_incremental_plan_skips_a_done_cnn_state_dict_without_a_task_until_its_architecture_file_changes(
        storage, tmp_path: Path) -> None:
    from exactcompress.zoo.incremental import plan_incremental
    from exactcompress.zoo.leases import lease_terms

    source, output = storage.child("zoo"), storage.child("out")
    torch.save(known_cnn().float().state_dict(), tmp_path / "tiny.pt")
    (tmp_path / "tiny.arch.json").write_text(json.dumps(ARCH))
    source.upload(tmp_path / "tiny.pt", "tiny.pt")
    source.upload(tmp_path / "tiny.arch.json", "tiny.arch.json")
    spec = ZooJobSpec(source=source.url(), output=output.url(), time_limit_s=60, verify_samples=1000)
    [task] = plan_tasks(spec)
    first = run_model_task(task, lease=lease_terms(spec, "first"))
    assert first.result.status == "exact" and first.analysed
    plan = plan_incremental(spec, plan_tasks(spec), "second")
    assert plan.tasks == [] and [row.status for row in plan.unchanged] == ["exact"]  # no download, no task
    changed = dict(ARCH, layers=[dict(ARCH["layers"][0], padding=0), *ARCH["layers"][1:]])
    (tmp_path / "tiny.arch.json").write_text(json.dumps(changed))  # another architecture: another model
    source.upload(tmp_path / "tiny.arch.json", "tiny.arch.json")
    plan = plan_incremental(spec, plan_tasks(spec), "third")
    assert [task.key for task in plan.tasks] == ["tiny.pt"] and plan.unchanged == []


def test_points_of_another_shape_fail_a_cnn_in_a_zoo(tmp_path: Path) -> None:
    """The zoo rebuilt a domain file's domain without the points' shape, so images in another layout than the
    CNN's were read as other inputs."""
    import numpy as np

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    torch.save(known_cnn().float().state_dict(), zoo / "tiny.pt")
    (zoo / "tiny.arch.json").write_text(json.dumps(ARCH))
    np.save(tmp_path / "wrong.npy", np.random.default_rng(0).random((6, 2, 8)))  # 16 values in another shape
    (tmp_path / "balls.json").write_text(json.dumps({"points": str(tmp_path / "wrong.npy"), "epsilon": 0.1}))
    [task] = plan_tasks(ZooJobSpec(source=str(zoo), output=str(tmp_path / "out"), time_limit_s=60,
                                   verify_samples=1000, domain={"file": str(tmp_path / "balls.json")}))
    failed = run_model_task(task).result
    assert failed.status == "failed" and "holds points of shape (2, 8)" in failed.error
