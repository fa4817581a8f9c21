"""``exactcompress compress`` end to end on a tiny CNN, given as ONNX and as a state dict with its architecture
file: report.json has the per-channel fields and every output loads back as the same function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cnn_nets import IN, box_inputs, known_cnn

from exactcompress.io import load_network
from exactcompress.schema import REPORT_SCHEMA_VERSION, CompressionReport

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess:
    """The CLI of this checkout (``python -m exactcompress``), whatever the venv has installed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "exactcompress", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)


ARCH = {"input_shape": list(IN), "layers": [
    {"kind": "conv2d", "key": "0", "out_channels": 3, "kernel_size": 3, "stride": 1, "padding": 1},
    {"kind": "relu"},
    {"kind": "conv2d", "key": "2", "out_channels": 2, "kernel_size": 2, "stride": 2, "padding": 0},
    {"kind": "relu"}, {"kind": "flatten"}, {"kind": "linear", "key": "5"}, {"kind": "relu"},
    {"kind": "linear", "key": "7"}]}


@pytest.mark.parametrize("given_as", ["pt", "onnx"])
def test_compress_a_cnn_end_to_end(tmp_path: Path, given_as: str) -> None:
    module = known_cnn().float()
    if given_as == "pt":
        model = tmp_path / "tiny_cnn.pt"
        torch.save(module.state_dict(), model)
        (tmp_path / "tiny_cnn.arch.json").write_text(json.dumps(ARCH))
    else:
        model = tmp_path / "tiny_cnn.onnx"
        torch.onnx.export(module, (torch.zeros(1, *IN),), str(model), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}})
    out = tmp_path / "out"
    result = run("compress", str(model), "--out", str(out), "--format", "torch", "--format", "safetensors",
                 "--format", "onnx", "--verify-samples", "5000", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "conv channels: 4 of 5 kept (1 removed: inactive at every position; 1 active everywhere, 3 mixed, " \
        "0 undecided)" in result.stdout
    assert "ReLU was assumed" not in result.stderr  # the architecture file (or the ONNX graph) names the ReLUs
    raw = json.loads((out / "report.json").read_text())
    assert raw["schema_version"] == REPORT_SCHEMA_VERSION and raw["model"]["input_shape"] == list(IN)
    channels = raw["layers"][0]["conv"]["channels"]
    assert [channel["state"] for channel in channels] == ["mixed", "inactive_everywhere", "active_everywhere"]
    assert [channel["removed"] for channel in channels] == [False, True, False]
    report = CompressionReport.model_validate(raw)
    assert report.status == "exact" and report.layers[0].conv.channels_removed == [1]
    assert report.outputs.architecture == "compressed.arch.json" and "compressed.arch.json" in report.outputs.files
    assert "| conv layer" in (out / "report.md").read_text()
    x = box_inputs(1000, seed=3).float()
    expected = module(x).detach().double().numpy()
    for name in ("compressed.pt", "compressed.safetensors", "compressed.onnx"):
        network, info = load_network(out / name)
        assert network.layers[0].conv.out_channels == 2 and info.input_shape == list(IN)
        np.testing.assert_allclose(network.forward(x.double().reshape(len(x), -1).numpy()), expected,
                                   rtol=1e-5, atol=1e-5)


def test_a_cnn_state_dict_without_its_architecture_file_ends_with_one_line(tmp_path: Path) -> None:
    model = tmp_path / "tiny_cnn.pt"
    torch.save(known_cnn().float().state_dict(), model)
    result = run("compress", str(model), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert str(model) in message and "architecture file is needed" in message and "tiny_cnn.arch.json" in message
    assert not (tmp_path / "out").exists()
