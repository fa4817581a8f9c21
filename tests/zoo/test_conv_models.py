"""A CNN state dict in a zoo: its architecture file is not a model, and it travels with its model."""

from __future__ import annotations

import json
from pathlib import Path

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
