"""Verification of a compressed network against the original on inputs from the domain."""

from __future__ import annotations

import numpy as np
import pytest

from exactcompress.engine.domain import Box, Domain
from exactcompress.engine.network import Network
from exactcompress.engine.verify import (
    CHUNK_ROWS,
    MAX_TOTAL_CORNERS,
    SAVED_DTYPE_SAMPLES,
    _draw_chunk,
    _fill_uniform,
    chunk_rows,
    shared_first_rows,
    verify,
)
from exactcompress.io.domain_files import scalar_box


def random_net(input_dim: int = 3, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    widths = [input_dim, 8, 6, 2]
    weights = [rng.normal(size=(out, inp)) for inp, out in zip(widths, widths[1:])]
    return Network.from_arrays(weights, [rng.normal(size=w) for w in widths[1:]], dtype="float32")


def cube(dim: int, lower: float = -1.0, upper: float = 1.0) -> Domain:
    return Domain("box", (Box(np.full(dim, lower), np.full(dim, upper)),))


def shifted_output(net: Network, shift: float) -> Network:
    layers = [(layer.weight, layer.bias) for layer in net.layers]
    layers[-1] = (layers[-1][0], layers[-1][1] + shift)
    return Network.from_arrays(*zip(*layers), dtype=net.dtype)


def twin(net: Network) -> Network:
    """``net`` with its output bias moved by 1e-12: equal outputs within the tolerance, not bitwise the same."""
    return shifted_output(net, 1e-12)


def test_equal_networks_pass_with_zero_error():
    net = random_net()
    same_outputs = Network.from_arrays([layer.weight for layer in net.layers], [layer.bias for layer in net.layers])
    report = verify(net, same_outputs, cube(3), n_samples=500, rng=np.random.default_rng(0))
    assert report.passed and report.max_abs_error == 0.0 and report.max_rel_error == 0.0
    assert report.identical and report.n_inputs == 8  # all corners of a 3-d box; the draws could not differ
    assert report.n_samples == 500  # the setting, as the zoo's integrity check compares it
    assert report.saved_dtype == "float64" and report.max_abs_error_saved_dtype is None
    report = verify(net, twin(net), cube(3), n_samples=500, rng=np.random.default_rng(0))
    assert report.passed and not report.identical and report.n_inputs == 500 + 8  # samples + corners
    assert 0 < report.max_abs_error <= 1e-11


def test_an_unchanged_network_still_gets_its_saved_dtype_comparison():
    net = random_net()
    report = verify(net, net, cube(3), n_samples=100_000, rng=np.random.default_rng(0), saved_dtype="float16")
    assert report.identical and report.passed and report.n_samples == 100_000
    assert report.n_inputs == report.n_saved_dtype_inputs == SAVED_DTYPE_SAMPLES + 8
    assert report.max_abs_error == 0.0 < report.max_abs_error_saved_dtype


def test_weights_the_saved_dtype_holds_exactly_need_no_saved_dtype_inputs():
    net = random_net()
    as_float32 = Network.from_arrays([layer.weight.astype(np.float32) for layer in net.layers],
                                     [layer.bias.astype(np.float32) for layer in net.layers], dtype="float32")
    report = verify(net, as_float32, cube(3), n_samples=500, rng=np.random.default_rng(0), saved_dtype="float32")
    assert report.passed and not report.identical and report.n_inputs == 500 + 8
    assert report.max_abs_error_saved_dtype == 0.0 and report.n_saved_dtype_inputs == 0
    unchanged = verify(as_float32, as_float32, cube(3), n_samples=500, rng=np.random.default_rng(0),
                       saved_dtype="float32")
    assert unchanged.identical and unchanged.n_inputs == 8 and unchanged.n_saved_dtype_inputs == 0
    inexact = verify(net, twin(net), cube(3), n_samples=500, rng=np.random.default_rng(0), saved_dtype="float32")
    assert inexact.n_saved_dtype_inputs == 500 + 8 and inexact.max_abs_error_saved_dtype > 0


def test_perturbed_network_fails():
    net = random_net()
    report = verify(net, shifted_output(net, 1e-3), cube(3), n_samples=500, rng=np.random.default_rng(0))
    assert not report.passed
    assert report.max_abs_error == pytest.approx(1e-3)
    assert 0 < report.max_rel_error <= 1e-3


def test_error_within_relative_tolerance_passes():
    net = random_net()
    report = verify(net, shifted_output(net, 1e-7), cube(3), n_samples=500, rng=np.random.default_rng(0))
    assert report.passed and report.max_abs_error == pytest.approx(1e-7)


def test_extra_points_outside_the_domain_are_ignored():
    # one input, one hidden neuron relu(x - 2): inactive on [-1, 1], so removing it is exact there only
    net = Network.from_arrays([np.array([[1.0]]), np.array([[1.0]])], [np.array([-2.0]), np.array([0.0])])
    compressed = Network.from_arrays([np.zeros((1, 1))], [np.zeros(1)])
    inside = np.array([[0.5], [-1.0]])
    outside = np.array([[3.0], [10.0], [np.nan]])
    points = np.concatenate([inside, outside])
    report = verify(net, compressed, cube(1), extra_points=points, n_samples=100, rng=np.random.default_rng(0))
    assert report.passed and report.n_inputs == 100 + 2 + 2
    wider = cube(1, -1.0, 4.0)
    assert not verify(net, compressed, wider, extra_points=points, n_samples=0, rng=np.random.default_rng(0)).passed


def test_extra_points_are_compared():
    # a tent of height 0.1 on [0.4, 0.6], zero at the corners 0 and 1; the compressed net is 0
    weights = [np.ones((3, 1)), np.array([[1.0, -2.0, 1.0]])]
    net = Network.from_arrays(weights, [np.array([-0.4, -0.5, -0.6]), np.zeros(1)])
    compressed = Network.from_arrays([np.zeros((1, 1))], [np.zeros(1)])
    corners_only = verify(net, compressed, cube(1, 0.0, 1.0), n_samples=0, rng=np.random.default_rng(0))
    assert corners_only.passed and corners_only.n_inputs == 2
    rng = np.random.default_rng(0)
    report = verify(net, compressed, cube(1, 0.0, 1.0), extra_points=np.array([0.5]), n_samples=0, rng=rng)
    assert not report.passed and report.n_inputs == 3
    assert report.max_abs_error == pytest.approx(0.1)


def test_corners_of_every_box_are_checked():
    # relu(x - 0.999) + relu(-x - 0.999): only corners of [-1, 1] reach it; 0 samples
    net = Network.from_arrays([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.full(2, -0.999), np.zeros(1)])
    compressed = Network.from_arrays([np.zeros((1, 1))], [np.zeros(1)])
    report = verify(net, compressed, cube(1), n_samples=0, rng=np.random.default_rng(0))
    assert report.n_inputs == 2 and not report.passed
    assert report.max_abs_error == pytest.approx(1e-3)


def test_scalar_domain_is_widened_and_unions_get_corners_per_box():
    net = random_net(input_dim=4)
    report = verify(net, twin(net), scalar_box(0.0, 1.0), n_samples=10, rng=np.random.default_rng(0))
    assert report.passed and report.n_inputs == 10 + 16
    union = Domain("linf-balls", tuple(Box(np.full(4, c) - 0.1, np.full(4, c) + 0.1) for c in (0.0, 1.0, 2.0)))
    assert verify(net, twin(net), union, n_samples=9, rng=np.random.default_rng(0)).n_inputs == 9 + 3 * 16


def test_corner_count_stays_bounded():
    net = random_net(input_dim=12)
    report = verify(net, net, cube(12), n_samples=0, rng=np.random.default_rng(0))
    assert report.n_inputs == 2**10
    many = Domain("linf-balls", tuple(Box(np.full(12, c), np.full(12, c) + 0.01) for c in np.linspace(0, 1, 300)))
    report = verify(net, net, many, n_samples=0, rng=np.random.default_rng(0))
    assert report.n_inputs == 300 * (MAX_TOTAL_CORNERS // 300) <= MAX_TOTAL_CORNERS


def test_saved_dtype_float32_error_is_small_but_nonzero_and_informational():
    net = random_net()
    report = verify(net, net, cube(3), n_samples=2000, rng=np.random.default_rng(0), saved_dtype="float32")
    assert report.passed and report.saved_dtype == "float32"
    assert 0 < report.max_abs_error_saved_dtype < 1e-5
    half = verify(net, net, cube(3), n_samples=2000, rng=np.random.default_rng(0), saved_dtype="float16")
    assert half.passed and half.max_abs_error_saved_dtype > report.max_abs_error_saved_dtype
    brain = verify(net, net, cube(3), n_samples=2000, rng=np.random.default_rng(0), saved_dtype="bfloat16")
    assert brain.max_abs_error_saved_dtype > half.max_abs_error_saved_dtype


def test_nan_outputs_fail():
    net = random_net()
    broken = shifted_output(net, np.nan)
    assert not verify(net, broken, cube(3), n_samples=10, rng=np.random.default_rng(0)).passed


def test_networks_of_different_shape_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        verify(random_net(3), random_net(4), cube(3), n_samples=10, rng=np.random.default_rng(0))


def band_net(dim: int = 12) -> Network:
    """y = relu(0.1 - |x0 - 0.5|): non-zero only for x0 in (0.4, 0.6), zero at every corner of [0, 1]^dim."""
    first = np.zeros((2, dim))
    first[0, 0], first[1, 0] = 1.0, -1.0
    return Network.from_arrays([first, np.array([[-1.0, -1.0]]), np.array([[1.0]])],
                               [np.array([-0.5, 0.5]), np.array([0.1]), np.array([0.0])])


def test_uniform_draws_find_a_difference_that_corners_miss():
    # the "compressed" net drops the band: wrong only inside the box, so only the uniform draws can see it;
    # more draws than one chunk exercise the reused sample buffer
    net = band_net()
    wrong = Network.from_arrays([net.layers[0].weight, np.zeros((1, 2)), np.array([[1.0]])],
                                [net.layers[0].bias, np.array([-1.0]), np.array([0.0])])
    box = cube(12, 0.0, 1.0)
    assert verify(net, wrong, box, n_samples=0, rng=np.random.default_rng(0)).passed
    report = verify(net, wrong, box, n_samples=CHUNK_ROWS + 100, rng=np.random.default_rng(0))
    assert not report.passed and report.max_abs_error == pytest.approx(0.1, abs=1e-3)
    assert report.n_samples == CHUNK_ROWS + 100 and report.n_inputs == CHUNK_ROWS + 100 + 2**10


def test_a_shared_first_layer_is_used_only_when_bitwise_equal_and_later_layers_are_still_checked():
    net = random_net(input_dim=5)
    first, rest = net.layers[0], net.layers[1:]
    keep = np.array([0, 2, 3, 7])
    subset = Network.from_arrays([first.weight[keep], rest[0].weight[:, keep], rest[1].weight],
                                 [first.bias[keep], rest[0].bias, rest[1].bias])
    assert shared_first_rows(net, subset).tolist() == keep.tolist()
    nudged = first.weight[keep].copy()
    nudged[1, 2] = np.nextafter(nudged[1, 2], np.inf)
    other = Network.from_arrays([nudged, rest[0].weight[:, keep], rest[1].weight],
                                [first.bias[keep], rest[0].bias, rest[1].bias])
    assert shared_first_rows(net, other) is None
    report = verify(net, subset, cube(5), n_samples=2000, rng=np.random.default_rng(0))
    assert report.first_layer_shared and not report.passed  # the dropped neurons mattered: later layers differ
    assert verify(net, net, cube(5), n_samples=10, rng=np.random.default_rng(0)).first_layer_shared


def test_union_draws_stay_inside_their_boxes():
    boxes = (Box(np.zeros(3), np.full(3, 0.1)), Box(np.full(3, 5.0), np.full(3, 6.0)))
    domain = Domain("linf-balls", boxes)
    points = _fill_uniform(np.empty((1001, 3)), domain, 0, 1001, np.random.default_rng(0))
    assert domain.contains(points).all()
    assert boxes[0].contains(points[:501]).all() and boxes[1].contains(points[501:]).all()


def test_every_box_gets_its_share_of_draws_when_boxes_outnumber_the_rows_of_a_pass():
    boxes = tuple(Box(np.full(2, 10.0 * k), np.full(2, 10.0 * k + 1)) for k in range(9))
    domain = Domain("linf-balls", boxes)
    draws = np.concatenate([_draw_chunk(np.empty((min(4, 18 - start), 2)), domain, start, 18, 3)
                            for start in range(0, 18, 4)])
    owner = np.floor(draws[:, 0] / 10.0).astype(int)
    assert np.bincount(owner, minlength=9).tolist() == [2] * 9  # passes of 4 rows, yet every box drawn twice
    assert all(boxes[k].contains(point[None])[0] for k, point in zip(owner, draws))


def test_a_chunk_of_draws_is_the_same_whichever_thread_draws_it_and_in_whatever_order():
    domain = Domain("linf-balls", (Box(np.zeros(5), np.ones(5)), Box(np.full(5, 3.0), np.full(5, 3.5))))
    starts = range(0, 1003, 64)
    in_order = [_draw_chunk(np.empty((min(64, 1003 - start), 5)), domain, start, 1003, 7) for start in starts]
    backwards = [_draw_chunk(np.empty((min(64, 1003 - start), 5)), domain, start, 1003, 7) for start in starts[::-1]]
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(in_order, backwards[::-1]))
    assert not np.array_equal(in_order[0], in_order[1])  # each chunk its own stream, not one stream restarted
    assert domain.contains(np.concatenate(in_order)).all()
    other_seed = _draw_chunk(np.empty((64, 5)), domain, 0, 1003, 8)
    assert not np.array_equal(in_order[0], other_seed)


@pytest.mark.parametrize("saved_dtype", [None, "float16"])
def test_chunks_compared_in_several_threads_give_the_one_thread_report(monkeypatch, saved_dtype):
    import exactcompress.engine.verify as verify_module

    monkeypatch.setattr(verify_module, "CHUNK_ARRAY_BYTES", 8 * 12 * 100)  # passes of 100 rows
    monkeypatch.setattr(verify_module, "SAVED_DTYPE_SAMPLES", 250)  # ends inside the third pass of draws
    net = band_net()
    wrong = Network.from_arrays([net.layers[0].weight, np.zeros((1, 2)), np.array([[1.0]])],
                                [net.layers[0].bias, np.array([-1 / 3]), np.array([0.0])])  # float16 rounds -1/3
    reports = {}
    for threads in (1, 3):
        reports[threads] = verify(net, wrong, cube(12, 0.0, 1.0), extra_points=np.full((150, 12), 0.45),
                                  n_samples=3050, rng=np.random.default_rng(0), saved_dtype=saved_dtype,
                                  threads=threads)
    assert reports[1] == reports[3]  # the same draws: the largest error (a draw's, near x0 = 0.5) is the same float
    assert not reports[3].passed and 0.05 < reports[3].max_abs_error < 0.1  # beyond the extra points' 0.05
    assert reports[3].n_inputs == 2**10 + 150 + 3050
    if saved_dtype:
        assert reports[3].n_saved_dtype_inputs == 2**10 + 150 + 250


def test_threads_run_that_many_passes_at_once_on_a_one_thread_blas_and_one_thread_runs_them_in_turn(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    import exactcompress.engine.verify as verify_module

    pools, blas_threads = [], []
    monkeypatch.setattr(verify_module, "ThreadPoolExecutor",
                        lambda workers, **kwargs: pools.append(workers) or ThreadPoolExecutor(workers, **kwargs))
    plain = verify_module._Comparison.__call__
    monkeypatch.setattr(verify_module._Comparison, "__call__", lambda self, *args: blas_threads.append(
        min(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")) or plain(self, *args))
    net = random_net()
    assert verify(net, twin(net), cube(3), n_samples=100, rng=np.random.default_rng(0), threads=3).passed
    assert pools == [3] and set(blas_threads) == {1}
    pools.clear()
    assert verify(net, twin(net), cube(3), n_samples=100, rng=np.random.default_rng(0)).passed
    assert pools == []  # one pass after the other in the caller's thread


def test_wide_layers_get_fewer_rows_per_pass_and_every_chunk_of_every_kind_is_checked(monkeypatch):
    import exactcompress.engine.verify as verify_module

    assert chunk_rows(random_net()) == CHUNK_ROWS
    wide = Network.from_arrays([np.zeros((4, 3072)), np.zeros((1, 4))], [np.zeros(4), np.zeros(1)])
    assert chunk_rows(random_net(), wide) == verify_module.CHUNK_ARRAY_BYTES // (8 * 3072) == 1024
    # a pass of 5 rows (widest array: 8 neurons): corners (8), extra points (12) and uniform draws (23) each
    # span several passes; a difference that only the last extra point shows is still caught
    monkeypatch.setattr(verify_module, "CHUNK_ARRAY_BYTES", 8 * 8 * 5)
    net = random_net()
    assert chunk_rows(net) == 5
    report = verify(net, twin(net), cube(3), extra_points=np.zeros((12, 3)), n_samples=23,
                    rng=np.random.default_rng(0))
    assert report.passed and report.n_inputs == 8 + 12 + 23
    band = band_net(dim=3)
    wrong = Network.from_arrays([band.layers[0].weight, np.zeros((1, 2)), np.array([[1.0]])],
                                [band.layers[0].bias, np.array([-1.0]), np.array([0.0])])
    extra = np.zeros((12, 3))
    extra[-1, 0] = 0.5  # the band's peak: the original gives 0.1, the wrong net 0
    monkeypatch.setattr(verify_module, "CHUNK_ARRAY_BYTES", 8 * 3 * 5)  # widest array: the 3 inputs
    assert chunk_rows(band, wrong) == 5
    report = verify(band, wrong, cube(3, 0.0, 1.0), extra_points=extra, n_samples=0, rng=np.random.default_rng(0))
    assert report.n_inputs == 8 + 12 and not report.passed and report.max_abs_error == pytest.approx(0.1)


def _net_dropping_corner_neurons(top, seed: int = 0):
    """An original with one hidden layer on [0, 1]^64: 10 random neurons and 20 neurons each maximal at its own
    box corner with maximum ``top`` there (a float, or one per neuron) (output weights 1e4 on them), and the compressed net that drops those
    20. Returns (original, compressed, the 20 corners)."""
    rng = np.random.default_rng(seed)
    dim, kept, dropped = 64, 10, 20
    corners = (rng.random((dropped, dim)) < 0.5).astype(np.float64)
    corner_weight = np.where(corners > 0, 1.0, -1.0) * (0.5 + rng.random((dropped, dim)))
    corner_bias = top - np.einsum("jd,jd->j", corner_weight, corners)
    first_weight = np.concatenate([rng.normal(size=(kept, dim)) / 8, corner_weight])
    first_bias = np.concatenate([rng.normal(size=kept), corner_bias])
    out_weight = np.concatenate([rng.normal(size=(2, kept)), np.full((2, dropped), 1e4)], axis=1)
    out_bias = rng.normal(size=2)
    original = Network.from_arrays([first_weight, out_weight], [first_bias, out_bias], dtype="float64")
    compressed = Network.from_arrays([first_weight[:kept], out_weight[:, :kept]], [first_bias[:kept], out_bias],
                                     dtype="float64")
    return original, compressed, corners


@pytest.mark.parametrize("threads", [1, 2])
def test_progress_counts_the_inputs_compared_after_each_pass(monkeypatch, threads):
    import exactcompress.engine.verify as verify_module

    monkeypatch.setattr(verify_module, "CHUNK_ARRAY_BYTES", 8 * 8 * 5)  # passes of 5 rows
    heard = []
    net = random_net()
    report = verify(net, twin(net), cube(3), extra_points=np.zeros((12, 3)), n_samples=23,
                    rng=np.random.default_rng(0), threads=threads,
                    progress=lambda message, done=None, total=None: heard.append((message, done, total)))
    total = 8 + 12 + 23
    assert report.n_inputs == total
    assert {message for message, _, _ in heard} == {"verifying"} and {t for _, _, t in heard} == {total}
    done = [d for _, d, _ in heard]
    assert done[-1] == total and done == sorted(done) and len(done) == 2 + 3 + 5  # corners, extra points, draws


def test_an_error_in_the_fixed_points_compares_no_draws(monkeypatch):
    import threading

    import exactcompress.engine.verify as verify_module

    compared, lock = {True: 0, False: 0}, threading.Lock()

    class Failing(verify_module._Comparison):
        def __call__(self, points, uniform, saved_rows):
            with lock:
                compared[uniform] += 1
            if not uniform:
                raise RuntimeError("a failing pass")
            return super().__call__(points, uniform, saved_rows)

    monkeypatch.setattr(verify_module, "_Comparison", Failing)
    monkeypatch.setattr(verify_module, "CHUNK_ARRAY_BYTES", 8 * 8 * 5)  # passes of 5 rows: 400 passes of draws
    net = random_net()
    with pytest.raises(RuntimeError, match="a failing pass"):
        verify(net, twin(net), cube(3), n_samples=2000, rng=np.random.default_rng(0), threads=2)
    assert compared[True] == 0  # the draws were never submitted


def test_dropped_first_layer_neurons_screened_in_float32_give_the_float64_verdict(monkeypatch):
    import exactcompress.engine.verify as verify_module

    original, compressed, corners = _net_dropping_corner_neurons(top=-1e-3)  # truly inactive on the box
    domain = cube(64, 0.0, 1.0)
    report = verify(original, compressed, domain, extra_points=corners, n_samples=5000, rng=np.random.default_rng(1))
    monkeypatch.setattr(verify_module, "_DroppedNeuronScreen", lambda original, rows, domain: None)
    unscreened = verify(original, compressed, domain, extra_points=corners, n_samples=5000,
                        rng=np.random.default_rng(1))
    assert report.passed and unscreened.passed and report.first_layer_shared
    assert report.n_inputs == unscreened.n_inputs == 5000 + 1024 + 20
    assert abs(report.max_abs_error - unscreened.max_abs_error) < 1e-9


def test_a_dropped_neuron_active_by_less_than_float32_rounding_fails_verification():
    # each dropped neuron reaches +1e-9 at its corner only; float32 rounds that to either sign (errors ~1e-7),
    # so only the rounding bound sends the 20 corners through the float64 pass, where 1e4 * 1e-9 shows
    original, compressed, corners = _net_dropping_corner_neurons(top=1e-9)
    report = verify(original, compressed, cube(64, 0.0, 1.0), extra_points=corners, n_samples=5000,
                    rng=np.random.default_rng(1))
    assert not report.passed and report.max_abs_error == pytest.approx(1e-5, rel=1e-3)


@pytest.mark.parametrize("top", [1e-9, -1e-9])
def test_the_screen_clears_only_rows_whose_dropped_neurons_are_certainly_inactive(top):
    from exactcompress.engine.verify import _DroppedNeuronScreen

    original, compressed, corners = _net_dropping_corner_neurons(top=top)
    points = np.concatenate([corners, np.random.default_rng(2).random((1000, 64))])
    screen = _DroppedNeuronScreen(original, np.arange(10), cube(64, 0.0, 1.0))
    outputs, full = screen.outputs(points, compressed.layers[0](points))
    assert screen.cleared == 0  # within float32 rounding of 0 on the box: checked per row
    assert full[:20].all()  # a dropped neuron within float32 rounding of 0: the float64 pass decides
    assert not full[20:].any()  # far from their corners the dropped neurons are < -1: cleared in float32
    assert np.allclose(outputs, original.forward(points), rtol=0, atol=1e-9)


def test_the_screen_is_used_only_where_its_rounding_bound_holds():
    from exactcompress.engine.verify import _DroppedNeuronScreen

    def screen(dim):
        net = Network.from_arrays([np.ones((2, dim)), np.ones((1, 2))], [np.zeros(2), np.zeros(1)], dtype="float64")
        return _DroppedNeuronScreen(net, np.array([0]), cube(dim, 0.0, 1.0))

    assert screen(3072).usable and screen(3072).factor < 1.1 * 3080 * 2.0**-24
    assert not screen(170_000).usable  # n u above 0.01: the linear bound (d + 8) u no longer holds


def test_dropped_neurons_inactive_on_the_whole_box_are_cleared_once_and_the_rest_row_by_row():
    from exactcompress.engine.verify import _DroppedNeuronScreen

    tops = np.where(np.arange(20) < 10, -0.1, -1e-9)  # 10 clearly inactive on the box, 10 within rounding of 0
    original, compressed, corners = _net_dropping_corner_neurons(top=tops)
    screen = _DroppedNeuronScreen(original, np.arange(10), cube(64, 0.0, 1.0))
    assert screen.cleared == 10 and len(screen.slack) == 10  # only the 10 near 0 need a float32 product per row
    points = np.concatenate([corners, np.random.default_rng(2).random((1000, 64))])
    outputs, full = screen.outputs(points, compressed.layers[0](points))
    assert full[10:20].all() and not full[:10].any() and not full[20:].any()
    assert np.allclose(outputs, original.forward(points), rtol=0, atol=1e-9)


def test_a_dropped_neuron_is_cleared_on_the_domain_only_if_inactive_on_every_box():
    from exactcompress.engine.verify import _DroppedNeuronScreen

    # neuron 1 (dropped) is x0 - 0.5: inactive on the first box, active on the second
    original = Network.from_arrays([np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[1.0, 1.0]])],
                                   [np.array([0.0, -0.5]), np.array([0.0])], dtype="float64")
    compressed = Network.from_arrays([np.array([[0.0, 1.0]]), np.array([[1.0]])], [np.array([0.0]), np.array([0.0])],
                                     dtype="float64")
    left, right = Box(np.zeros(2), np.array([0.4, 1.0])), Box(np.array([0.6, 0.0]), np.ones(2))
    assert _DroppedNeuronScreen(original, np.array([0]), Domain("linf-balls", (left,))).cleared == 1
    assert _DroppedNeuronScreen(original, np.array([0]), Domain("linf-balls", (left, right))).cleared == 0
    report = verify(original, compressed, Domain("linf-balls", (left, right)), n_samples=100,
                    rng=np.random.default_rng(0))
    assert report.first_layer_shared and not report.passed and report.max_abs_error == pytest.approx(0.5)


def test_the_screen_stops_after_a_pass_of_draws_where_most_rows_need_the_float64_pass(monkeypatch):
    import exactcompress.engine.verify as verify_module

    # the 20 dropped neurons are active everywhere (a wrong compression): every row goes through the float64
    # pass, so after the first pass of uniform draws the screen is not consulted again
    original, compressed, corners = _net_dropping_corner_neurons(top=100.0)
    calls = []
    screened = verify_module._DroppedNeuronScreen.outputs
    monkeypatch.setattr(verify_module._DroppedNeuronScreen, "outputs",
                        lambda self, points, kept: calls.append(len(points)) or screened(self, points, kept))
    monkeypatch.setattr(verify_module, "CHUNK_ARRAY_BYTES", 8 * 64 * 1000)  # passes of 1000 rows
    report = verify(original, compressed, cube(64, 0.0, 1.0), n_samples=5000, rng=np.random.default_rng(0))
    assert not report.passed and report.n_inputs == 1024 + 5000
    assert calls == [1000, 24, 1000]  # the corners (two passes), then one pass of draws
