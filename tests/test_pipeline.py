"""The engine end to end on small nets: soundness and completeness against a dense grid, exact
compression, the time-limit path, union-of-balls domains, and report files that validate."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from nets import grid_extremes, random_net

from exactcompress.engine.analyze import SETTLERS, Analysis, analyze
from exactcompress.engine.compression import compress
from exactcompress.engine.domain import Box, Domain
from exactcompress.engine.network import Network
from exactcompress.engine.verify import verify
from exactcompress.engine.witnesses import WitnessSet
from exactcompress.errors import SolverError, SoundnessError
from exactcompress.io import from_sequential
from exactcompress.io.domain_files import scalar_box
from exactcompress.pipeline import compress_model, settled_as_asked
from exactcompress.schema import CompressionReport

CLEAR = 0.05  # grid extremes further than this from 0 are conclusive for these Lipschitz-1-ish nets

NETS = [
    (1, [6, 5]),
    (2, [8, 6, 4]),
    (3, [5, 5, 5, 3]),
]


def _check_witnesses(network, witnesses: WitnessSet, unstable) -> None:
    fresh = network.preactivations(witnesses.points) if len(witnesses.points) else None
    for layer, mask in enumerate(unstable):
        for neuron in np.flatnonzero(mask):
            positive, negative = witnesses.positive[layer][neuron], witnesses.negative[layer][neuron]
            assert fresh[layer][positive, neuron] > 0 > fresh[layer][negative, neuron]


@pytest.mark.parametrize("method", ["auto", "per-neuron", "milp"])
@pytest.mark.parametrize("seed,hidden", NETS)
def test_states_match_dense_grid(seed, hidden, method):
    network = random_net(seed, 2, hidden, bias_shift=2.0)
    domain = scalar_box(-1.0, 1.0).broadcast(2)
    analysis = analyze(network, domain, method=method)
    extremes = grid_extremes(network, -1.0, 1.0)
    for layer, (grid_max, grid_min) in enumerate(extremes):
        inactive, active = analysis.stably_inactive[layer], analysis.stably_active[layer]
        # soundness: a proof never contradicts a grid point
        assert np.all(grid_max[inactive] <= 0), f"layer {layer}: false stably-inactive claim"
        assert np.all(grid_min[active] >= 0), f"layer {layer}: false stably-active claim"
        # completeness where the grid is conclusive
        assert np.all(inactive[grid_max < -CLEAR]) and np.all(active[grid_min > CLEAR])
        clearly_unstable = (grid_max > CLEAR) & (grid_min < -CLEAR)
        assert np.all(analysis.unstable[layer][clearly_unstable])
        assert not analysis.undecided[layer].any()
    _check_witnesses(network, analysis.witnesses, analysis.unstable)


@pytest.mark.parametrize("seed,hidden", NETS)
def test_all_methods_agree(seed, hidden):
    network = random_net(seed, 2, hidden, bias_shift=2.0)
    domain = scalar_box(-1.0, 1.0).broadcast(2)
    baseline = analyze(network, domain, method="per-neuron")
    for method in ("auto", "milp"):
        other = analyze(network, domain, method=method)
        for layer in range(len(hidden)):
            assert np.array_equal(other.stably_active[layer], baseline.stably_active[layer]), method
            assert np.array_equal(other.stably_inactive[layer], baseline.stably_inactive[layer]), method


def test_the_single_milp_reports_who_settled_what(tmp_path, monkeypatch):
    # A deeper net on 6 inputs with many neurons that bounds cannot settle; witness search switched off
    # (no samples, no gradient steps) so that the MILP must do the work.
    import exactcompress.engine.analyze as stability

    real_search = stability.search
    monkeypatch.setattr(stability, "search", lambda *a, **k: real_search(*a, **{**k, "n_samples": 0, "gradient_steps": 0}))
    network = random_net(7, 6, [16, 16, 12], bias_shift=1.5)
    report = compress_model((network, _info(network)), tmp_path, domain=scalar_box(-1, 1), method="milp")
    assert report.status == "exact"
    assert report.milp.single_milp_finished is not None and report.milp.dual_trace
    assert report.milp.solutions_harvested + report.milp.lp_points_harvested > 0
    settled = {name for layer in report.layers for name, neurons in layer.settled_by.items() if neurons}
    assert "single-milp" in settled
    for layer in report.layers:
        claimed = sorted(n for neurons in layer.settled_by.values() for n in neurons)
        decided = sorted(layer.stably_active + layer.stably_inactive + layer.unstable)
        assert claimed == decided
    assert (tmp_path / "report_dual_bound.png").is_file()


def test_compress_model_writes_an_exact_smaller_model(tmp_path):
    network = random_net(4, 3, [12, 10, 8], bias_shift=3.0)
    report = compress_model((network, _info(network)), tmp_path, domain=scalar_box(-1, 1), formats=["torch", "safetensors", "onnx"])
    assert report.status == "exact" and report.if_undecided_settled is None
    assert report.neurons_after < report.neurons_before
    assert report.verification.passed and report.verification.n_inputs >= 100_000
    for name in ("report.json", "report.md", "report.html", "witnesses.npz", "compressed.pt", "compressed.safetensors", "compressed.onnx"):
        assert (tmp_path / name).is_file(), name
    on_disk = CompressionReport.model_validate_json((tmp_path / "report.json").read_text())
    assert on_disk.layers == report.layers
    for entry in report.layers:  # what compression did reaches the report
        assert entry.compression.removed_inactive == len(entry.stably_inactive)
        assert entry.compression.folded_active + entry.compression.skipped_folds <= len(entry.stably_active)
        assert entry.compression.merged == (len(entry.stably_active) + len(entry.stably_inactive) == entry.width)
    assert on_disk.tolerances.verify_tolerance == report.verification.tolerance
    assert on_disk.tolerances.sign_primal_threshold and on_disk.tolerances.rounding_widening
    state = torch.load(tmp_path / "compressed.pt", weights_only=True)
    x = np.random.default_rng(0).uniform(-1, 1, size=(5000, 3))
    y = _torch_forward(state, x)
    assert np.max(np.abs(y - network.forward(x))) <= 1e-9 * (1 + np.max(np.abs(network.forward(x))))
    witnesses = np.load(tmp_path / "witnesses.npz")
    for layer, entry in enumerate(report.layers):
        for neuron in entry.unstable:
            g = network.preactivations(witnesses["points"])[layer][:, neuron]
            assert g[witnesses[f"layer{layer}_positive"][neuron]] > 0 > g[witnesses[f"layer{layer}_negative"][neuron]]


def test_merged_weights_past_float16s_range_are_written_in_float32_not_as_inf(tmp_path):
    """A float16 layer stably active on the box merges into the next: 300 · 300 = 90,000 is past float16's 65,504,
    so written in float16 the file held inf and computed NaN while the report said exact with a saved error 0."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2), torch.nn.ReLU(),
                                torch.nn.Linear(2, 2)).to(torch.float16).eval()
    weights = ([[300.0, 0.0], [0.0, 1.0]], [[300.0, 1.0], [-1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    biases = ([1.0, 1.0], [-100.0, 0.0], [0.0, 0.0])
    with torch.no_grad():
        for linear, weight, bias in zip(model[::2], weights, biases):
            linear.weight.copy_(torch.tensor(weight))
            linear.bias.copy_(torch.tensor(bias))
    report = compress_model(model, tmp_path, domain=scalar_box(0.0, 0.001))
    assert report.status == "exact" and report.layers[0].compression.merged
    assert report.verification.passed and report.verification.saved_dtype == "float32"
    assert report.verification.max_abs_error_saved_dtype is not None
    assert np.isfinite(report.verification.max_abs_error_saved_dtype)
    state = torch.load(tmp_path / "compressed.pt", weights_only=True)
    assert all(tensor.dtype == torch.float32 and torch.isfinite(tensor).all() for tensor in state.values())
    x = np.random.default_rng(0).uniform(0.0, 0.001, size=(100, 2))
    original = model.double()(torch.as_tensor(x)).detach().numpy()
    assert np.allclose(_torch_forward(state, x), original, rtol=1e-6, atol=1e-3)


def test_a_rerun_into_the_same_folder_leaves_none_of_the_earlier_runs_files(tmp_path, small_model_file):
    """A failed rerun used to leave the earlier run's compressed model beside its report saying none was written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    first = compress_model(small_model_file, out, formats=["torch", "onnx"], verify_samples=100)
    assert first.status == "exact" and (out / "compressed.onnx").exists()
    second = compress_model(small_model_file, out, verify_samples=100)
    assert second.status == "exact" and (out / "compressed.pt").exists()
    assert not (out / "compressed.onnx").exists()
    failed = compress_model(small_model_file, out, domain=tmp_path / "missing.json")
    assert failed.status == "failed" and failed.error_kind == "input"
    left = sorted(path.name for path in out.iterdir())
    assert left == ["notes.txt", "report.html", "report.json", "report.md", "report_layers.png"], left


def test_a_fold_within_tolerance_that_moves_the_outputs_is_left_out_instead_of_failing_the_model(tmp_path):
    """Rows [1e6, 1] and [1e6, 1.0001] are independent, but at this scale the rank test calls them dependent and
    the residual 1e-4 passes the fold's tolerance; the fold moved the output by 1e-4 and the model failed."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)).double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1e6, 1.0], [1e6, 1.0001], [1.0, -1.0]]))
        model[0].bias.copy_(torch.tensor([1.0, 1.0, 0.0]))
        model[2].weight.copy_(torch.tensor([[1.0, -1.0, 1.0]]))
        model[2].bias.zero_()
    report = compress_model(model, tmp_path, verify_samples=1000)
    assert report.status == "exact" and report.verification.passed, report.error
    assert report.layers[0].stably_active == [0, 1]
    assert report.layers[0].compression.folded_active == 0 and report.layers[0].compression.skipped_folds == 1


def test_a_written_file_that_does_not_hold_the_verified_model_fails_the_model_and_is_removed(tmp_path,
                                                                                         small_model_file, monkeypatch):
    """Verification compares networks in memory; the files as written are read back and compared with them."""
    import exactcompress.pipeline
    from exactcompress.io.save import save_network
    from exactcompress.pipeline import reload_mismatch

    def transposing_save(network, out_dir, formats):  # a writer that swaps two hidden rows
        weight = np.array(network.layers[0].weight)
        weight[[0, 1]] = weight[[1, 0]]
        wrong = Network((replace(network.layers[0], weight=weight), *network.layers[1:]), dtype=network.dtype)
        return save_network(wrong, out_dir, formats)

    monkeypatch.setattr(exactcompress.pipeline, "save_network", transposing_save)
    report = compress_model(small_model_file, tmp_path / "out", verify_samples=100)
    assert report.status == "failed" and report.error_kind == "verification"
    assert "compressed.pt: the weight of affine layer 0 differs" in report.error
    assert not (tmp_path / "out" / "compressed.pt").exists()
    network = random_net(4, 3, [6, 5])
    save_network(network, tmp_path / "good", ["torch", "safetensors", "onnx"])
    assert reload_mismatch(network, tmp_path / "good", ["compressed.pt", "compressed.safetensors",
                                                         "compressed.onnx"]) is None


def test_pruned_columns_remove_their_neurons_without_a_proof(tmp_path):
    network = random_net(4, 3, [8, 6], bias_shift=0.0)
    weights = [np.array(layer.weight) for layer in network.layers]
    weights[2][:, :4] = 0.0  # unstructured pruning left four last-layer neurons feeding nothing
    pruned = Network.from_arrays(weights, [layer.bias for layer in network.layers], dtype="float64")
    report = compress_model((pruned, _info(pruned)), tmp_path, domain=scalar_box(-1, 1), verify_samples=1000)
    assert report.verification.passed and report.layers[1].compression.removed_unused >= 4
    assert report.hidden_widths_after[1] <= 2 and report.neurons_after == sum(report.hidden_widths_after)
    assert "unread" in (tmp_path / "report.md").read_text()


def test_verification_fails_on_a_compressed_output_that_is_not_a_number():
    network = random_net(1, 3, [6], bias_shift=0.0)
    broken = Network.from_arrays([layer.weight for layer in network.layers],
                                 [layer.bias for layer in network.layers[:-1]] + [np.full(network.output_dim, np.nan)],
                                 dtype="float64")
    check = verify(network, broken, Domain("box", (Box(-np.ones(3), np.ones(3)),)), n_samples=1000,
                   rng=np.random.default_rng(0), saved_dtype="float16")
    assert not check.passed and check.max_abs_error == np.inf and check.max_abs_error_saved_dtype == np.inf


def test_a_network_with_nothing_stable_is_reported_unchanged_without_the_uniform_draws(tmp_path):
    # every hidden neuron is 0 at the box's centre with a non-zero gradient: all unstable, nothing to compress
    weights = [np.array([[1.0, -1.0], [-1.0, 2.0], [0.5, 1.0]]), np.array([[1.0, -2.0, 0.5]])]
    network = Network.from_arrays(weights, [np.zeros(3), np.array([0.25])], dtype="float64")
    report = compress_model((network, _info(network)), tmp_path, domain=scalar_box(-1, 1))
    assert report.status == "exact" and report.neurons_after == report.neurons_before == 3
    check = report.verification
    assert check.passed and check.identical and check.max_abs_error == 0.0
    assert check.n_samples == 100_000 and check.n_inputs < 100_000  # corners and witnesses only
    assert "equal outputs by construction" in (tmp_path / "report.md").read_text()


def test_a_time_limit_already_spent_is_partial_and_still_exact(tmp_path):
    network = random_net(5, 2, [10, 10, 10], bias_shift=0.5)
    report = compress_model((network, _info(network)), tmp_path, domain=scalar_box(-1, 1), time_limit=1e-9)
    assert report.status == "partial"
    counts = report.counts()
    assert counts["undecided"] > 0
    assert report.neurons_after >= counts["undecided"]
    assert report.verification.passed
    state = torch.load(tmp_path / "compressed.pt", weights_only=True)
    x = np.random.default_rng(1).uniform(-1, 1, size=(5000, 2))
    assert np.max(np.abs(_torch_forward(state, x) - network.forward(x))) < 1e-9
    # the best case a longer run could reach: every undecided neuron settled as its open question asks,
    # rebuilt here from the report's own lists
    active, inactive = ([np.zeros(width, bool) for width in network.hidden_widths] for _ in range(2))
    for entry in report.layers:
        active[entry.index][entry.stably_active] = True
        inactive[entry.index][entry.stably_inactive] = True
        for item in entry.undecided_bounds:
            (active if item.open == "negative" else inactive)[entry.index][item.neuron] = True
    best, _ = compress(network, active, inactive)
    settled = report.if_undecided_settled
    assert (settled.neurons_after, settled.parameters_after) == (best.n_neurons, best.n_params)
    assert settled.hidden_widths_after == best.hidden_widths and settled.neurons_after < report.neurons_after
    assert f"| undecided neurons | settling them could remove at most {report.neurons_after - best.n_neurons} more " \
        "neurons" in (tmp_path / "report.md").read_text()


def test_undecided_neurons_are_settled_as_their_open_question_asks():
    # layer 0: neuron 0 proved inactive, 1 undecided with g > 0 witnessed ("can g be negative?" open: active),
    # 2 undecided with nothing witnessed (both open: inactive), 3 undecided with g < 0 witnessed (inactive)
    flags = [np.array(values) for values in ([False] * 4, [True, False, False, False])]
    undecided = np.array([False, True, True, True])
    witnesses = WitnessSet(points=np.zeros((2, 1)), positive=(np.array([-1, 0, -1, -1]),),
                           negative=(np.array([-1, -1, -1, 1]),))
    analysis = Analysis(stably_active=(flags[0],), stably_inactive=(flags[1],), unstable=(np.zeros(4, bool),),
                        undecided=(undecided,), settled_by=(np.full(4, -1),), witnesses=witnesses, milp=None,
                        bounds=())
    active, inactive = settled_as_asked(analysis)
    assert active[0].tolist() == [False, True, False, False]
    assert inactive[0].tolist() == [True, False, True, True]


def test_union_of_balls_requires_stability_on_every_ball():
    # One neuron g = x: stably active on a ball around +1, stably inactive around -1, unstable on the union.
    network = Network.from_arrays([np.array([[1.0]]), np.array([[1.0]])], [np.zeros(1), np.zeros(1)], dtype="float64")
    right = Domain("linf-balls", (Box(np.array([0.5]), np.array([1.5])),), epsilon=0.5)
    both = Domain("linf-balls", (Box(np.array([0.5]), np.array([1.5])), Box(np.array([-1.5]), np.array([-0.5]))), epsilon=0.5)
    assert analyze(network, right).stably_active[0][0]
    union = analyze(network, both)
    assert union.unstable[0][0] and not union.stably_active[0][0] and not union.stably_inactive[0][0]
    # each ball proves it stable by bounds, but on the union it is unstable: the witnesses settled it
    assert union.settled_by[0][0] == SETTLERS.index("witnesses")


def _kink_net() -> Network:
    """g = relu(x1) - relu(x1 - 0.5) + relu(x2) - 0.6 (second layer): at most -0.1 where x2 <= 0, which interval
    and linear bounds cannot show (they allow +0.4), and at least 0.4 where x2 >= 1."""
    first = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([0.0, -0.5, 0.0])
    second = np.array([[1.0, -1.0, 1.0]]), np.array([-0.6])
    return Network.from_arrays([first[0], second[0], np.array([[1.0]])], [first[1], second[1], np.zeros(1)],
                               dtype="float64")


@pytest.mark.parametrize("method", ["auto", "bab", "milp"])
def test_a_sign_witnessed_in_one_box_is_asked_in_no_other(method):
    network = _kink_net()
    quiet = Box(np.array([-1.0, -1.0]), np.array([1.0, 0.0]))  # g < 0 here: a proof is needed, bounds fall short
    alone = analyze(network, Domain("box", (quiet,)), method=method)
    assert alone.stably_inactive[1][0] and alone.bab.questions + alone.milp.solves > 0
    loud = Box(np.array([-1.0, 1.0]), np.array([1.0, 2.0]))  # g > 0 at every point: sampling shows it
    union = analyze(network, Domain("box", (quiet, loud)), method=method)
    assert union.unstable[1][0] and union.settled_by[1][0] == SETTLERS.index("witnesses")
    # the quiet box's question (can g be positive?) is answered by the loud box's witnesses, and the loud box's
    # (can g be negative?) by the quiet box's: no proof is attempted in either
    assert union.bab.questions == 0 and union.milp.solves == 0, union.policy


def test_boxes_share_the_time_and_pass_on_what_they_leave():
    import time

    from exactcompress.engine.analyze import _boxes_in_turn

    network = _kink_net()
    boxes = (Box(np.array([-1.0, -1.0]), np.array([1.0, 0.0])), Box(np.array([-1.0, -2.0]), np.array([1.0, -1.0])))
    granted = []  # (box index, seconds granted)

    def prove(box, state, box_deadline):  # the first box never settles (its share cuts it), the second at once
        index = next(i for i, candidate in enumerate(boxes) if candidate is box)
        granted.append((index, box_deadline - time.monotonic()))
        if index == 0:
            time.sleep(max(0.0, box_deadline - time.monotonic()))
            state.timed_out = True
        else:
            state.proved_inactive[1][:] = True

    total = 1.0
    states = _boxes_in_turn(network, boxes, None, time.monotonic() + total, np.random.default_rng(0),
                            lambda *args: None, prove)
    assert [index for index, _ in granted] == [0, 1, 0]  # the first box's second turn takes what the second left
    assert granted[0][1] < 0.6 * total  # half of the time, not all of it: the second box is asked too
    assert states[1].proved_inactive[1][0] and not states[0].proved_inactive[1][0]
    assert states[0].timed_out and not states[1].timed_out


def test_a_box_holds_its_stopped_searches_only_while_it_may_get_another_turn(monkeypatch):
    import time

    import exactcompress.engine.analyze as analyze_module

    network = _kink_net()
    boxes = tuple(Box(np.array([-1.0, low]), np.array([1.0, low + 0.5])) for low in (-1.0, -2.0, -3.0))
    states, bounds_and_witnesses = [], analyze_module._bounds_and_witnesses
    monkeypatch.setattr(analyze_module, "_bounds_and_witnesses",
                        lambda *args, **kwargs: states.append(bounds_and_witnesses(*args, **kwargs)) or states[-1])
    held = []  # per turn: which boxes hold stopped searches as it starts

    def prove(box, state, box_deadline):  # the first box is cut by its share, the others settle at once
        held.append([bool(other.suspended) for other in states])
        state.suspended = {(1, 0, 1): object()}
        if box is boxes[0]:
            time.sleep(max(0.0, box_deadline - time.monotonic()))
            state.timed_out = True
        else:
            state.proved_inactive[1][:] = True

    analyze_module._boxes_in_turn(network, boxes, None, time.monotonic() + 0.9, np.random.default_rng(0),
                                  lambda *args: None, prove)
    # turns: box 0 (cut short), box 1, box 2, box 0 again: a settled box's searches are gone before the next turn
    assert held == [[False, False, False], [True, False, False], [True, False, False], [True, False, False]]
    assert not any(state.suspended for state in states)


@pytest.mark.parametrize("time_limit", [None, 5.0])
def test_a_box_left_open_but_not_cut_short_gets_no_second_turn(time_limit):
    # g = relu(x) - relu(x) is 0 everywhere: inside the tolerance band, so it stays undecided however long a prover
    # works; no box's turn is cut by its share, so none is proved twice
    network = Network.from_arrays([np.array([[1.0], [1.0]]), np.array([[1.0, -1.0]]), np.array([[1.0]])],
                                  [np.zeros(2), np.zeros(1), np.zeros(1)], dtype="float64")
    domain = Domain("box", (Box(np.array([-1.0]), np.array([1.0])), Box(np.array([2.0]), np.array([3.0]))))
    for method in ("auto", "bab", "milp"):
        analysis = analyze(network, domain, method=method, time_limit=time_limit)
        assert analysis.undecided[1][0] and not analysis.timed_out
        assert analysis.policy is None or ("None" not in analysis.policy and "other boxes left" not in analysis.policy)


def test_a_box_cut_short_whose_question_another_box_answers_is_not_left_timed_out(monkeypatch):
    import time

    import exactcompress.engine.analyze as analyze_module
    from exactcompress.engine.witnesses import record

    network = _kink_net()
    quiet = Box(np.array([-1.0, -1.0]), np.array([1.0, 0.0]))  # g < 0: "can g be positive?" needs a proof here
    loud = Box(np.array([-1.0, 1.0]), np.array([1.0, 2.0]))  # g > 0 everywhere
    search = analyze_module.search
    # the loud box's witness stage finds nothing, so its sign turns up only during its proofs, after the quiet box
    # has had its turn
    monkeypatch.setattr(analyze_module, "search",
                        lambda network, box, witnesses, **kwargs: witnesses if box is loud
                        else search(network, box, witnesses, **kwargs))

    def prove(box, state, box_deadline):
        if box is quiet:  # its share cuts it with the question open
            time.sleep(max(0.0, box_deadline - time.monotonic()))
            state.timed_out = True
            state.policy = "cut"
        else:
            state.witnesses = record(network, state.witnesses, (loud.lower + loud.upper)[None] / 2)

    states = analyze_module._boxes_in_turn(network, (quiet, loud), None, time.monotonic() + 0.6,
                                           np.random.default_rng(0), lambda *args: None, prove)
    assert not states[0].timed_out and "answered by another box's witnesses" in states[0].policy
    union = analyze_module._combine(network, states)
    assert union.unstable[1][0] and not union.timed_out


def test_the_report_of_a_union_of_balls_states_its_rule(tmp_path):
    from exactcompress.engine.domain import UNION_SEMANTICS

    network = Network.from_arrays([np.array([[1.0]]), np.array([[1.0]])], [np.zeros(1), np.zeros(1)], dtype="float64")
    both = Domain("linf-balls", (Box(np.array([0.5]), np.array([1.5])), Box(np.array([2.5]), np.array([3.5]))),
                  epsilon=0.5)
    compress_model((network, _info(network)), tmp_path, domain=both, verify_samples=10)
    assert UNION_SEMANTICS in (tmp_path / "report.md").read_text()
    assert UNION_SEMANTICS in (tmp_path / "report.html").read_text()


def test_milp_without_a_time_limit_never_reports_one(tmp_path):
    # g = relu(x) - 2 relu(x - 0.5) - 0.5 - 1e-7 on [-1, 1] peaks at -1e-7 (x = 0.5), inside the tolerance
    # band, while its bounds allow +0.5: neither witnessable nor provable, so it stays undecided; no time
    # limit was set, so none was reached.
    network = Network.from_arrays([np.array([[1.0], [1.0]]), np.array([[1.0, -2.0]]), np.array([[1.0]])],
                                  [np.array([0.0, -0.5]), np.array([-0.5 - 1e-7]), np.zeros(1)], dtype="float64")
    report = compress_model((network, _info(network)), tmp_path, domain=scalar_box(-1, 1), method="milp")
    assert report.status == "partial" and report.layers[1].undecided == [0]
    assert not report.time_limit_reached


def test_errors_are_filed_by_kind(tmp_path, monkeypatch):
    import exactcompress.pipeline as pipeline

    network = random_net(4, 3, [6, 5])
    for error, kind in ((SoundnessError("hidden layer 0", "neurons [1] are proven stable and witnessed unstable"),
                         "soundness"),
                        (SolverError("single MILP", "SCIP failed: error in LP solver"), "solver"),
                        (ZeroDivisionError("oops"), "internal")):
        def fail(*args, **kwargs):
            raise error

        monkeypatch.setattr(pipeline, "analyze", fail)
        report = compress_model((network, _info(network)), tmp_path / kind)
        assert report.status == "failed" and report.error_kind == kind and str(error) in report.error
        assert not (tmp_path / kind / "compressed.pt").exists()
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    assert compress_model(bad, tmp_path / "input").error_kind == "input"


def test_failed_input_gets_a_failed_report(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    report = compress_model(bad, tmp_path / "out")
    assert report.status == "failed" and "broken.pt" in report.error and "\n" not in report.error
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["status"] == "failed"
    assert not (tmp_path / "out" / "compressed.pt").exists()


REPORT_FILES = {"report.json", "report.md", "report.html", "report_layers.png"}


@pytest.fixture
def small_model_file(tmp_path):
    """A 3-input ReLU net as a torch state dict file, as the command line takes it."""
    from exactcompress.io import to_sequential

    path = tmp_path / "a.pt"
    torch.save(to_sequential(random_net(4, 3, [6, 5]), "float64").state_dict(), path)
    return path


@pytest.mark.parametrize("setting,value", [
    ("method", "bogus"), ("formats", ["bogus"]), ("formats", []), ("formats", 7), ("verify_samples", -1),
    ("time_limit", 0), ("time_limit", -5), ("time_limit", float("nan")), ("time_limit", float("inf")),
    ("time_limit", "60"), ("threads", 0), ("threads", 1.5), ("workers", 0), ("device", "tpu"), ("seed", -1),
    ("seed", "0"), ("input_shape", "3"), ("progress", "loud"), ("parallel_map", 1),
])
def test_a_bad_setting_fails_as_input_before_anything_is_loaded_analysed_or_written(tmp_path, small_model_file,
                                                                                     monkeypatch, setting, value):
    import exactcompress.pipeline as pipeline

    def never(*args, **kwargs):
        raise AssertionError("reached past the settings' checks")

    monkeypatch.setattr(pipeline, "_loaded", never)
    monkeypatch.setattr(pipeline, "analyze", never)
    out = tmp_path / "api_bogus"
    report = compress_model(small_model_file, out, **{setting: value})
    assert report.status == "failed" and report.error_kind == "input", report.error
    assert report.error.startswith(f"{setting}: ") and "\n" not in report.error
    assert {path.name for path in out.iterdir()} <= REPORT_FILES  # no compressed model, no witnesses
    on_disk = CompressionReport.model_validate_json((out / "report.json").read_text())
    assert on_disk.status == "failed" and on_disk.error == report.error and on_disk.model_path == str(small_model_file)


def test_settings_that_pass_are_recorded_in_the_failed_report_of_another(tmp_path, small_model_file):
    report = compress_model(small_model_file, tmp_path / "out", method="bogus", time_limit=30, workers=2, threads=3)
    assert report.error == "method: 'bogus' is not one of auto, per-neuron, milp, bab"
    assert (report.method, report.time_limit_s, report.workers, report.threads) == ("auto", 30.0, 2, 3)


def test_formats_takes_one_name_and_numpy_numbers_pass(tmp_path, small_model_file):
    report = compress_model(small_model_file, tmp_path / "out", formats="safetensors", verify_samples=np.int64(100),
                            threads=np.int32(1), time_limit=np.float32(60), seed=np.int64(3))
    assert report.status == "exact", report.error
    assert report.outputs.compressed == ["compressed.safetensors"] and report.time_limit_s == 60.0


def test_a_domain_may_be_given_as_a_domain_file(tmp_path, small_model_file):
    domain_file = tmp_path / "dom.json"
    domain_file.write_text(json.dumps({"lower": -1, "upper": 1}))
    for given in (str(domain_file), domain_file):
        report = compress_model(small_model_file, tmp_path / "out", domain=given, verify_samples=100)
        assert report.status == "exact", report.error
        assert report.domain.source == str(domain_file)
        assert (report.domain.scalar_lower, report.domain.scalar_upper) == (-1.0, 1.0)
    missing = compress_model(small_model_file, tmp_path / "missing", domain=str(tmp_path / "nowhere.json"))
    assert missing.status == "failed" and missing.error_kind == "input" and "domain file not found" in missing.error
    other = compress_model(small_model_file, tmp_path / "other", domain=[0, 1])
    assert other.status == "failed" and other.error_kind == "input" and other.error.startswith("domain: is a list")
    assert {path.name for path in (tmp_path / "other").iterdir()} <= REPORT_FILES


@pytest.mark.parametrize("data,message", [
    (np.zeros((4, 5)), "data: points have 5 features but the network takes 3 inputs"),
    (np.array([[0.0, np.nan, 0.0]]), "data: array contains NaN or Inf"),
    (np.zeros((0, 3)), "data: array of shape (0, 3) holds no points"),
    (np.array([["a", "b", "c"]]), "data: array has non-numeric dtype <U1"),
    ([[0.0, 0.0, 0.0]], "data: is a list; expected an array"),
])
def test_bad_data_points_fail_as_input(tmp_path, small_model_file, data, message):
    report = compress_model(small_model_file, tmp_path / "out", data=data)
    assert report.status == "failed" and report.error_kind == "input" and report.error.startswith(message)
    assert {path.name for path in (tmp_path / "out").iterdir()} <= REPORT_FILES


def test_an_out_dir_that_cannot_be_created_fails_without_raising(tmp_path, small_model_file):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    report = compress_model(small_model_file, blocker / "out")
    assert report.status == "failed" and report.error_kind == "input" and "cannot create the output folder" in report.error
    wrong = compress_model(small_model_file, None)
    assert wrong.status == "failed" and wrong.error == "out_dir: is a NoneType; expected a folder path"
    pair = compress_model((1, 2), tmp_path / "pair")
    assert pair.status == "failed" and pair.error == "model: is a tuple but not a loaded (Network, ModelInfo) pair"


def test_an_out_dir_that_cannot_be_written_fails_as_input_before_the_analysis(tmp_path, small_model_file,
                                                                               monkeypatch):
    import exactcompress.pipeline as pipeline

    def never(*args, **kwargs):
        raise AssertionError("analysed into a folder that cannot be written")

    monkeypatch.setattr(pipeline, "analyze", never)
    report = compress_model(small_model_file, "/sys/kernel")  # sysfs refuses new files, even to root
    assert report.status == "failed" and report.error_kind == "input", report.error
    assert report.error.startswith("/sys/kernel: cannot write into the output folder (PermissionError")


@pytest.mark.parametrize("step,error", [
    ("save_network", RuntimeError("File /out/compressed.pt cannot be opened.")),  # torch.save on a full disk
    ("save_witnesses", OSError(28, "No space left on device")),
])
def test_a_failed_write_of_the_outputs_is_a_failed_report_not_an_exception(tmp_path, small_model_file, monkeypatch,
                                                                           step, error):
    import exactcompress.pipeline as pipeline

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(pipeline, step, fail)
    out = tmp_path / "out"
    report = compress_model(small_model_file, out, verify_samples=10)
    assert report.status == "failed" and report.error_kind == "internal", report.error
    assert report.error.startswith(f"{out}: cannot write the outputs ({type(error).__name__}: ")
    assert {path.name for path in out.iterdir()} <= REPORT_FILES  # nothing of the model is left
    assert CompressionReport.model_validate_json((out / "report.json").read_text()).error == report.error

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "write_reports", disk_full)  # nor where the failed report cannot be written
    assert compress_model(small_model_file, tmp_path / "full", verify_samples=10).error_kind == "internal"


def test_a_failed_safetensors_write_is_a_failed_report_and_leaves_no_model(tmp_path, small_model_file, monkeypatch):
    """safetensors raises its own SafetensorError on a full disk; it escaped compress_model and left compressed.pt."""
    import safetensors.torch
    from safetensors import SafetensorError

    def disk_full(tensors, path, *args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    out = tmp_path / "out"
    report = compress_model(small_model_file, out, formats=["torch", "safetensors"], verify_samples=10)
    assert report.status == "failed" and report.error_kind == "internal", report.error
    assert "No space left on device" in report.error
    assert {path.name for path in out.iterdir()} <= REPORT_FILES


def _info(network):
    from exactcompress.io import from_sequential, to_sequential

    return from_sequential(to_sequential(network, "float64"), name="random")[1]


def _torch_forward(state: dict, x: np.ndarray) -> np.ndarray:
    keys = sorted({int(k.split(".")[0]) for k in state})
    h = torch.as_tensor(x, dtype=torch.float64)
    for position, index in enumerate(keys):
        h = h @ state[f"{index}.weight"].double().T + state[f"{index}.bias"].double()
        if position < len(keys) - 1:
            h = torch.relu(h)
    return h.numpy()


def test_auto_leaves_the_single_milp_out_and_its_sign_solves_settle_what_branch_and_bound_leaves(monkeypatch):
    # auto's steps after bounds and witnesses are branch and bound and per-neuron sign solves; the single MILP proves
    # nothing until it refutes every open question at once, so it is not one of them (benchmarks/README.md)
    import exactcompress.engine.analyze as stability

    def no_single_milp(*args, **kwargs):
        raise AssertionError("auto ran the single MILP")

    real_search = stability.search
    monkeypatch.setattr(stability, "search", lambda *a, **k: real_search(*a, **{**k, "n_samples": 0, "gradient_steps": 0}))
    monkeypatch.setattr(stability, "solve_network", no_single_milp)
    monkeypatch.setattr(stability, "_bab", lambda *args: None)  # leave the questions to the sign solves
    network = random_net(7, 6, [16, 16, 12], bias_shift=1.5)
    analysis = analyze(network, scalar_box(-1, 1).broadcast(6), method="auto")
    assert "per-neuron sign solves" in analysis.policy and "single MILP" not in analysis.policy
    assert not any(mask.any() for mask in analysis.undecided)
    per_neuron = stability.SETTLERS.index("per-neuron")
    assert any((codes == per_neuron).any() for codes in analysis.settled_by)


def test_compress_model_takes_a_sequential_or_a_network_and_refuses_anything_else(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    report = compress_model(module, tmp_path / "sequential", verify_samples=100)
    assert report.status == "exact" and report.model.format == "sequential" and not report.model.activation_assumed
    network, _ = from_sequential(module)
    again = compress_model(network, tmp_path / "network", verify_samples=100)
    assert again.status == "exact" and again.model.format == "network" and again.model.sha256 == report.model.sha256
    sigmoid = compress_model(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 2)),
                             tmp_path / "sigmoid")
    assert sigmoid.status == "failed" and sigmoid.error_kind == "input" and "Sigmoid" in sigmoid.error
    other = compress_model(42, tmp_path / "other")
    assert other.status == "failed" and "expected a file path, an nn.Sequential" in other.error

    class Doubled(torch.nn.Sequential):
        def forward(self, x):
            return 2 * super().forward(x)

    doubled = compress_model(Doubled(*module).eval(), tmp_path / "doubled")  # was 'exact' on the undoubled function
    assert doubled.status == "failed" and doubled.error_kind == "input" and "its forward is its own" in doubled.error
    dropout = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    training = compress_model(dropout.train(), tmp_path / "training")
    assert training.status == "failed" and training.error_kind == "input" and "training mode" in training.error
    plain = compress_model(module.train(), tmp_path / "plain", verify_samples=100)  # Linear and ReLU: either mode
    assert plain.status == "exact"


@pytest.mark.parametrize("method", ["per-neuron", "bab"])
def test_progress_counts_every_question_of_a_stage(method):
    events = []
    network = random_net(7, 6, [16, 16, 12], bias_shift=1.5)
    analyze(network, scalar_box(-1, 1).broadcast(6), method=method,
            progress=lambda message, done=None, total=None: events.append((message, done, total)))
    counted = [(message, done, total) for message, done, total in events if total is not None]
    prefix = "per-neuron MILPs, layer" if method == "per-neuron" else "branch and bound, layer"
    stages = {message for message, _, _ in counted if message.startswith(prefix)}
    assert stages, events
    for stage in stages:
        done = [value for message, value, _ in counted if message == stage]
        total = {value for message, _, value in counted if message == stage}
        assert len(total) == 1 and done == sorted(done) and done[-1] == total.pop()


def test_a_failed_single_milp_leaves_its_questions_undecided_not_the_model_failed(monkeypatch, tmp_path):
    # SCIP's LP solver can fail on hard numerics (seen on a 3072-input 5x100 net): the milp method then claims
    # nothing from the solve, keeps its questions undecided and still writes an exact-by-construction model
    import exactcompress.engine.analyze as stability

    def failing_solve(*args, **kwargs):
        raise SolverError("single MILP", "SCIP failed: SCIP: error in LP solver!")

    real_search = stability.search
    monkeypatch.setattr(stability, "search", lambda *a, **k: real_search(*a, **{**k, "n_samples": 0, "gradient_steps": 0}))
    monkeypatch.setattr(stability, "solve_network", failing_solve)
    network = random_net(7, 6, [16, 16, 12], bias_shift=1.5)
    report = compress_model(network, tmp_path / "out", domain=scalar_box(-1, 1), method="milp", verify_samples=1000)
    assert report.status == "partial" and report.verification.passed
    assert "single MILP failed (SCIP failed: SCIP: error in LP solver!)" in report.policy
    assert sum(len(layer.undecided) for layer in report.layers) > 0
    assert not any(layer.settled_by["single-milp"] for layer in report.layers)


@pytest.mark.parametrize("method", ["auto", "bab", "milp", "per-neuron"])
def test_pruned_neurons_and_sums_of_nonpositive_terms_are_removed_by_every_method(method):
    """A zero row with zero bias (g = 0 everywhere) and a neuron of the second layer whose weights from the ReLUs
    below are all <= 0 with bias 0 (max g = 0, reached): no margin can prove them, their term signs do; each is
    stably inactive, settled by "bounds", and the compressed network equals the original."""
    rng = np.random.default_rng(0)
    first = np.vstack([np.eye(3), rng.normal(size=(3, 3)), np.zeros((1, 3))])  # rows 0-2: h_i = relu(x_i)
    first_bias = np.concatenate([np.zeros(3), rng.normal(size=3), [0.0]])
    second = rng.normal(size=(4, 7))
    second[0] = [-1.0, -2.0, -0.5, 0.0, 0.0, 0.0, 3.0]  # g = -(h0 + 2 h1 + h2 / 2) (the 3 multiplies a zero row)
    second[1] = 0.0
    second_bias = np.concatenate([[0.0, 0.0], rng.normal(size=2)])
    network = Network.from_arrays([first, second, rng.normal(size=(1, 4))], [first_bias, second_bias, np.zeros(1)],
                                  dtype="float64")
    domain = Domain("box", (Box(-np.ones(3), np.ones(3)),))
    analysis = analyze(network, domain, method=method, time_limit=60)
    bounds_code = SETTLERS.index("bounds")
    for layer, neuron in ((0, 6), (1, 0), (1, 1)):
        assert analysis.stably_inactive[layer][neuron] and not analysis.stably_active[layer][neuron]
        assert analysis.settled_by[layer][neuron] == bounds_code
    compressed, _ = compress(network, analysis.stably_active, analysis.stably_inactive)
    assert sum(compressed.hidden_widths) <= sum(network.hidden_widths) - 3
    points = domain.sample(20_000, rng)
    np.testing.assert_allclose(compressed.forward(points), network.forward(points), rtol=1e-12, atol=1e-12)


def test_compress_model_leaves_a_folder_holding_someone_elses_report_alone(tmp_path):
    """A folder with the user's own report.md (no report.json of an earlier run) was overwritten, even by a run
    refused for a bad setting; now it is bad input and nothing there changes. An earlier run's folder is replaced."""
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "report.md").write_text("my notes")
    for method in ("auto", "typo"):
        report = compress_model(module, folder, method=method, verify_samples=100)
        assert report.status == "failed" and report.error_kind == "input" and "holds report.md" in report.error
        assert sorted(path.name for path in folder.iterdir()) == ["report.md"]
        assert (folder / "report.md").read_text() == "my notes"
    earlier = tmp_path / "earlier"
    assert compress_model(module, earlier, verify_samples=100).status == "exact"
    assert compress_model(module, earlier, verify_samples=100).status == "exact"
