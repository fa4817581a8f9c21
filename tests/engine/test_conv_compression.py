"""Exact channel removal on hand-built CNNs where the answer is known, through the real engine (bounds,
witnesses, SCIP) and the whole pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cnn_nets import IN, box_inputs, known_cnn

from exactcompress.engine.compression import compress
from exactcompress.engine.network import Network
from exactcompress.io import from_sequential, load_network, to_sequential
from exactcompress.pipeline import compress_model
from exactcompress.schema import REPORT_SCHEMA_VERSION, CompressionReport


@pytest.mark.parametrize("method", ["auto", "per-neuron"])
def test_the_engine_removes_the_channel_inactive_everywhere_and_keeps_the_others(tmp_path: Path, method) -> None:
    module = known_cnn()
    report = compress_model(module, tmp_path, input_shape=IN, method=method, formats=("torch", "onnx"),
                            verify_samples=2000)
    assert report.status == "exact", report.error
    assert report.schema_version == REPORT_SCHEMA_VERSION and report.model.input_shape == list(IN)
    conv = report.layers[0].conv
    states = {channel.channel: channel for channel in conv.channels}
    assert states[1].state == "inactive_everywhere" and states[1].removed and states[1].stably_inactive == 16
    assert (states[0].state, states[0].stably_inactive, states[0].unstable, states[0].removed) == ("mixed", 4, 12, False)
    assert states[2].state == "active_everywhere" and states[2].stably_active == 16 and not states[2].removed
    assert conv.channels_removed == [1] and conv.channels_after == 2
    assert (conv.parameters_before, conv.parameters_after) == (3 * 10, 2 * 10)
    assert report.layers[0].compression.removed_inactive == 16
    assert report.layers[1].conv.parameters_after == 2 * (2 * 4 + 1)  # conv2 lost the input channel
    assert report.parameters_after < report.parameters_before and report.verification.passed
    # the compressed model, rebuilt as a real Conv2d network, computes what the original computes on the box
    compressed, info = load_network(tmp_path / "compressed.pt")
    rebuilt = to_sequential(compressed, "float64")
    assert rebuilt[0].out_channels == 2 and rebuilt[2].in_channels == 2
    x = box_inputs(2000, seed=1)
    original = module(x).detach().numpy()
    assert np.ptp(original) > 1e-3
    np.testing.assert_allclose(rebuilt(x).detach().numpy(), original, rtol=1e-9, atol=1e-9)
    from_onnx, _ = load_network(tmp_path / "compressed.onnx")
    assert "Conv" in [node.op_type for node in onnx.load(tmp_path / "compressed.onnx").graph.node]
    np.testing.assert_allclose(from_onnx.forward(x.reshape(len(x), -1).numpy()), original, rtol=1e-5, atol=1e-5)


def _flags(network: Network, inactive_channels: dict[int, list[int]]):
    active = [np.zeros(width, dtype=bool) for width in network.hidden_widths]
    inactive = [np.zeros(width, dtype=bool) for width in network.hidden_widths]
    for layer, channels in inactive_channels.items():
        shape = network.layers[layer].conv
        for channel in channels:
            inactive[layer][channel * shape.positions:(channel + 1) * shape.positions] = True
    return active, inactive


def test_removing_a_channel_slices_the_next_convolutions_input_channels() -> None:
    network, _ = from_sequential(known_cnn(), input_shape=IN)
    active, inactive = _flags(network, {0: [1]})
    inactive[0][0] = True  # one position of channel 0 only: the channel stays, its row stays
    compressed, log = compress(network, active, inactive)
    assert log.removed_channels == ((1,), (), ())
    assert compressed.layers[0].conv.out_channels == 2 and compressed.layers[1].conv.in_channels == 2
    assert compressed.hidden_widths == [32, 8, 3]
    rebuilt = to_sequential(compressed, "float64")
    kernel = known_cnn()[2].weight.detach()
    assert torch.equal(rebuilt[2].weight.detach(), kernel[:, [0, 2]])  # the kernel's in-channel slice
    # channel 1 of conv1 is really inactive on the box, so the function is unchanged there
    x = box_inputs(500, seed=2)
    np.testing.assert_allclose(compressed.forward(x.reshape(500, -1).numpy()),
                               known_cnn()(x).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_a_layer_whose_channels_are_all_removable_keeps_one() -> None:
    network, _ = from_sequential(known_cnn(), input_shape=IN)
    active, inactive = _flags(network, {0: [0, 1, 2]})
    compressed, log = compress(network, active, inactive)
    assert log.removed_channels[0] == (1, 2) and compressed.layers[0].conv.out_channels == 1


def test_a_channel_with_an_undecided_position_is_kept_and_reported_undecided(tmp_path: Path) -> None:
    module = known_cnn()
    report = compress_model(module, tmp_path, input_shape=IN, method="milp", time_limit=1e-6, formats=("torch",),
                            verify_samples=100)
    saved = CompressionReport.model_validate_json((tmp_path / "report.json").read_text())
    assert saved.layers[0].conv is not None and report.layers[0].conv == saved.layers[0].conv
    states = {channel.channel: channel.state for channel in saved.layers[0].conv.channels}
    # no time for witnesses or solves: channel 0's unstable positions stay open; bounds alone settle channels 1
    # and 2 (interval bounds are exact for the first layer on a box)
    assert saved.status == "partial" and states[0] == "undecided"
    assert states[1] == "inactive_everywhere" and states[2] == "active_everywhere"
    assert saved.layers[0].conv.channels_removed == [1]
    for layer in saved.layers:
        if layer.conv:
            for channel in layer.conv.channels:
                counts = channel.stably_inactive + channel.stably_active + channel.unstable + channel.undecided
                assert counts == layer.conv.out_shape[1] * layer.conv.out_shape[2]
                assert channel.removed == (channel.state == "inactive_everywhere")


def test_three_convolutions_with_a_removed_first_channel_verify(tmp_path: Path) -> None:
    # verification screens the dropped first-layer channel and runs the layers after it as plain affine maps,
    # also when a convolution follows the second one
    torch.manual_seed(1)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.Conv2d(2, 2, 2, stride=2), torch.nn.ReLU(),
                                 torch.nn.Flatten(), torch.nn.Linear(8, 2)).double().eval()
    with torch.no_grad():
        module[0].weight[1] = -torch.rand(1, 3, 3, dtype=torch.float64) - 0.1
        module[0].bias[1] = -0.1
    report = compress_model(module, tmp_path, input_shape=IN, verify_samples=2000)
    assert report.status == "exact", report.error
    assert report.verification.passed and report.verification.first_layer_shared
    assert report.layers[0].conv.channels_removed == [1]


def _pooled_cnn(*pools: torch.nn.Module, features: int) -> torch.nn.Sequential:
    """``known_cnn``'s first convolution (channel 1 inactive everywhere on the box), then ``pools``, a Flatten and
    a Linear on the pooled tensor (``features`` inputs), ReLU, Linear."""
    torch.manual_seed(2)
    return torch.nn.Sequential(known_cnn()[0], torch.nn.ReLU(), *pools, torch.nn.Flatten(),
                               torch.nn.Linear(features, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double().eval()


@pytest.mark.parametrize("pools, features, kept", [
    ((torch.nn.AvgPool2d(2),), 12, True),
    ((torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), torch.nn.AvgPool2d(2)), 12, True),
    ((torch.nn.AvgPool2d(2, ceil_mode=True),), 12, True),  # ceil mode that changes no output size
    ((torch.nn.AvgPool2d(3, stride=2, ceil_mode=True),), 12, False),  # it does here: written composed
    ((torch.nn.AvgPool2d(2, divisor_override=3),), 12, False),  # ONNX cannot say it: written composed
])
def test_a_pooled_cnns_compressed_files_keep_the_pools(tmp_path: Path, pools, features, kept) -> None:
    # before, the compressed files held the Linear composed with the pools: a Linear on the un-pooled tensor
    # with more weights than the original's (here 4 x 32 + 4 = 132 instead of 4 x 12 + 4 = 52)
    module = _pooled_cnn(*pools, features=features)
    report = compress_model(module, tmp_path, input_shape=IN, formats=("torch", "safetensors", "onnx"),
                            verify_samples=2000)
    assert report.status == "exact" and report.verification.passed, report.error
    assert report.layers[0].conv.channels_removed == [1]
    # counted as the files hold them: the original module's parameters, then the compressed file's (fewer where
    # the pools are kept; a Linear composed with its pools takes the un-pooled tensor)
    assert report.parameters_before == sum(parameter.numel() for parameter in module.parameters())
    assert (report.parameters_after < report.parameters_before) == kept
    x = box_inputs(1000, seed=3)
    original = module(x).detach().numpy()
    for name in ("compressed.pt", "compressed.safetensors", "compressed.onnx"):
        compressed, _ = load_network(tmp_path / name)
        assert compressed.n_params == report.parameters_after
        assert (compressed.layers[1].pooled is not None) == kept
        rebuilt = to_sequential(compressed, "float64")
        names = [type(child).__name__ for child in rebuilt]
        assert names.count("AvgPool2d") == (len(pools) if kept else 0)
        np.testing.assert_allclose(rebuilt(x).detach().numpy(), original, rtol=1e-5, atol=1e-5)
    if kept:  # as written: 2 of 3 channels, the Linear on the pooled tensor
        linear = next(child for child in to_sequential(load_network(tmp_path / "compressed.pt")[0])
                      if isinstance(child, torch.nn.Linear))
        assert linear.in_features == 2 * features // 3
        graph = onnx.load(tmp_path / "compressed.onnx").graph
        assert [node.op_type for node in graph.node].count("AveragePool") == len(pools)
        from onnx.reference import ReferenceEvaluator  # the ONNX file as ONNX's own semantics run it

        ran = ReferenceEvaluator(str(tmp_path / "compressed.onnx")).run(None, {"input": x.float().numpy()})[0]
        np.testing.assert_allclose(ran, original, rtol=1e-5, atol=1e-5)


def test_a_pooled_linear_keeps_its_pools_through_removal_and_merging() -> None:
    from exactcompress.engine.network import compose_pool

    module = _pooled_cnn(torch.nn.AvgPool2d(2), features=12)
    network, _ = from_sequential(module, input_shape=IN)
    active, inactive = _flags(network, {0: [1]})
    inactive[1][3] = True  # one Linear neuron removed
    active[1][:] = ~inactive[1]  # the others all active: the layer merges into the output layer
    compressed, log = compress(network, active, inactive)
    assert log.removed_channels[0] == (1,) and log.merged_layers == (1,)
    merged = compressed.layers[1]
    assert merged.pooled is not None and merged.pooled.weight.shape == (2, 8) and merged.pooled.channels == 2
    np.testing.assert_array_equal(merged.weight, compose_pool(merged.pooled.weight, merged.pooled.matrix))
    linear, output = network.layers[1], network.layers[2]
    kept_columns = np.repeat([True, False, True], 4)
    expected = output.weight[:, :3] @ linear.pooled.weight[:3][:, kept_columns]
    np.testing.assert_allclose(merged.pooled.weight, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool, features, kept", [
    (torch.nn.AdaptiveAvgPool2d(1), 3, True),  # global average pooling: written as AvgPool2d(4)
    (torch.nn.AdaptiveAvgPool2d((2, None)), 24, True),
    (torch.nn.AdaptiveAvgPool2d(3), 27, False),  # 3 does not divide 4: overlapping windows, written composed
])
def test_an_adaptive_average_pool_is_read_and_written_back_as_a_pool(tmp_path: Path, pool, features, kept) -> None:
    # before, AdaptiveAvgPool2d (and ONNX GlobalAveragePool, the export of a global one) was refused as unsupported
    module = _pooled_cnn(pool, features=features)
    x = box_inputs(500, seed=4)
    original = module(x).detach().numpy()
    given_as = [module]
    if features == 3:  # torch exports only the global one with a free batch size: as GlobalAveragePool
        torch.onnx.export(module.float(), (x[:1].float(),), str(tmp_path / "net.onnx"), dynamo=False,
                          input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}})
        assert "GlobalAveragePool" in [node.op_type for node in onnx.load(tmp_path / "net.onnx").graph.node]
        given_as.append(tmp_path / "net.onnx")
    module.double()
    for given in given_as:
        out = tmp_path / ("from_module" if given is module else "from_onnx")
        report = compress_model(given, out, input_shape=IN if given is module else None,
                                formats=("torch", "onnx"), verify_samples=2000)
        assert report.status == "exact" and report.verification.passed, report.error
        assert report.layers[0].conv.channels_removed == [1]
        for name in ("compressed.pt", "compressed.onnx"):
            compressed, _ = load_network(out / name)
            assert (compressed.layers[1].pooled is not None) == kept
            rebuilt = to_sequential(compressed, "float64")
            np.testing.assert_allclose(rebuilt(x).detach().numpy(), original, rtol=1e-5, atol=1e-5)
