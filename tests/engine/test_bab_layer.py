"""Branch and bound inside the engine: every open question of a layer, answered and fanned out; the
``bab`` method and ``auto`` agree with the per-neuron MILPs and a dense grid; budgets and devices."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
import torch
from nets import grid_extremes, random_net
from test_bab import make_net, milp_max

import exactcompress.engine.analyze as analyze_module
from exactcompress.engine.analyze import SETTLERS, analyze
from exactcompress.engine.bounds import LayerBounds, propagate
from exactcompress.engine.domain import Box
from exactcompress.engine.network import Network
from exactcompress.engine.prove import bab as bab_module
from exactcompress.engine.prove import bab_bounds
from exactcompress.engine.prove import bab_layer as bab_layer_module
from exactcompress.engine.prove.bab_layer import bab_layer, resolve_device
from exactcompress.engine.prove.parallel import thread_map
from exactcompress.engine.prove.per_neuron import solve_layer
from exactcompress.errors import InputError
from exactcompress.io import from_sequential, to_sequential
from exactcompress.io.domain_files import scalar_box
from exactcompress.pipeline import compress_model
from exactcompress.tolerances import WITNESS_MARGIN

NETS = [(1, [6, 5]), (2, [8, 6, 4]), (3, [5, 5, 5, 3])]


def _no_witness_search(monkeypatch) -> None:
    """Every sign question reaches branch and bound: the witness search finds nothing."""
    monkeypatch.setattr(analyze_module, "search", lambda network, box, witnesses, **kwargs: witnesses)


@pytest.mark.parametrize("seed,hidden", NETS)
def test_bab_alone_settles_what_the_per_neuron_milps_settle(seed, hidden, monkeypatch):
    network = random_net(seed, 2, hidden, bias_shift=2.0)
    domain = scalar_box(-1.0, 1.0).broadcast(2)
    baseline = analyze(network, domain, method="per-neuron")
    _no_witness_search(monkeypatch)
    bab = analyze(network, domain, method="bab")
    assert bab.bab.questions > 0 and bab.bab.undecided == 0
    for layer, (grid_max, grid_min) in enumerate(grid_extremes(network, -1.0, 1.0)):
        assert np.array_equal(bab.stably_inactive[layer], baseline.stably_inactive[layer])
        assert np.array_equal(bab.stably_active[layer], baseline.stably_active[layer])
        assert np.all(grid_max[bab.stably_inactive[layer]] <= 0) and np.all(grid_min[bab.stably_active[layer]] >= 0)
        assert not bab.undecided[layer].any()
        # every unstable neuron has two witnesses, re-checked in float64
        g = network.preactivations(bab.witnesses.points)[layer] if len(bab.witnesses.points) else None
        for neuron in np.flatnonzero(bab.unstable[layer]):
            assert g[bab.witnesses.positive[layer][neuron], neuron] > 0 > g[bab.witnesses.negative[layer][neuron], neuron]
    codes = np.concatenate(bab.settled_by)
    assert np.all(codes >= 0) and SETTLERS.index("bab") in codes


def test_a_question_layer_fans_out_over_workers_with_the_same_answers(monkeypatch):
    network = random_net(2, 2, [8, 6, 4], bias_shift=2.0)
    box = Box(-np.ones(2), np.ones(2))
    bounds = propagate(network, box)
    ask = np.ones(6, bool)
    alone = bab_layer(network, box, bounds, 1, ask_max=ask, ask_min=ask)
    fanned = bab_layer(network, box, bounds, 1, ask_max=ask, ask_min=ask, workers=2,
                       parallel_map=lambda function, arguments: [function(*a) for a in arguments])
    assert alone.questions == fanned.questions == 12
    assert np.array_equal(alone.proved_inactive, fanned.proved_inactive)
    assert np.array_equal(alone.proved_active, fanned.proved_active)
    assert alone.witnessed == fanned.witnessed and alone.undecided == fanned.undecided == 0


def test_questions_answered_at_once_in_threads_get_the_answers_of_one_at_a_time(monkeypatch):
    """The whole-layer net's 12 questions (6 proved, 6 witnessed) on 3 threads: the same answers, domains and
    witnesses as on one, in question order, and questions really ran at the same time."""
    network, layer = _whole_layer_stable_net(), 2
    box = Box(-np.ones(4), np.ones(4))
    bounds = propagate(network, box)
    ask = np.ones(6, bool)
    torch_threads = torch.get_num_threads()
    one = bab_layer(network, box, bounds, layer, ask_max=ask, ask_min=ask)
    running, most, lock, real_prove = [0], [0], threading.Lock(), bab_layer_module.prove_sign

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)  # each question lasts long enough for the others to start, also on a busy machine
            return real_prove(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(bab_layer_module, "prove_sign", counted)
    heard = []
    threaded = bab_layer(network, box, bounds, layer, ask_max=ask, ask_min=ask, threads=3,
                         progress=lambda label, done, total: heard.append((label, done, total)))
    assert most[0] == 3 and torch.get_num_threads() == torch_threads  # restored
    assert one.proved_inactive.all() and one.witnessed == 6
    for field in ("proved_inactive", "proved_active", "candidates"):
        assert np.array_equal(getattr(one, field), getattr(threaded, field)), field
    assert (one.questions, one.domains, one.undecided) == (threaded.questions, threaded.domains, threaded.undecided)
    assert heard[-1][1:] == (12, 12) and "3 threads" in heard[-1][0]


def test_rounds_of_short_questions_answer_one_at_a_time_and_long_ones_in_threads(monkeypatch):
    """With ``threads=3``, rounds whose questions get less than THREADED_QUESTION_SECONDS (shortened here) answer
    one question at a time, longer rounds and rounds without a limit three at once."""
    calls, real_bab_layer = [], analyze_module.bab_layer

    def recorded(*args, **kwargs):
        calls.append((kwargs["question_limit"], kwargs["threads"]))
        return real_bab_layer(*args, **kwargs)

    monkeypatch.setattr(analyze_module, "bab_layer", recorded)
    monkeypatch.setattr(analyze_module, "BAB_FIRST_ROUND_LIMIT", 0.2)
    monkeypatch.setattr(analyze_module, "THREADED_QUESTION_SECONDS", 0.4)
    _no_witness_search(monkeypatch)
    analyze(_hard_questions_then_an_easy_one(), scalar_box(0, 1).broadcast(64), method="bab", time_limit=3.0,
            threads=3)
    assert calls[0] == (0.2, 1) and (0.4, 3) in calls
    assert all(threads == (3 if limit >= 0.4 else 1) for limit, threads in calls)
    calls.clear()
    analyze(random_net(2, 2, [8, 6, 4], bias_shift=2.0), scalar_box(-1, 1).broadcast(2), method="bab", threads=3)
    assert calls and all(call == (None, 3) for call in calls)


@pytest.mark.parametrize("spare_thread", [False, True])
def test_auto_sweeps_one_question_at_a_time_and_answers_its_first_round_in_threads(spare_thread, monkeypatch):
    """auto with ``threads=3`` on five hard questions: the sweep answers one at a time, the first round (whose
    limit is THREADED_QUESTION_SECONDS, as in the engine) three at once, or two beside the spare thread's sign
    solves."""
    calls, real_bab_layer = [], analyze_module.bab_layer

    def recorded(*args, **kwargs):
        calls.append((kwargs["question_limit"], kwargs["threads"]))
        return real_bab_layer(*args, **kwargs)

    monkeypatch.setattr(analyze_module, "bab_layer", recorded)
    assert analyze_module.THREADED_QUESTION_SECONDS == analyze_module.BAB_FIRST_ROUND_LIMIT
    for name, value in (("BAB_SWEEP_LIMIT", 0.1), ("BAB_FIRST_ROUND_LIMIT", 0.2), ("THREADED_QUESTION_SECONDS", 0.2),
                        ("PER_NEURON_MAX_QUESTIONS", 0),
                        ("COMPANION_MAX_AFTER_SWEEP", 8 if spare_thread else 0), ("COMPANION_MAX_AFTER_ROUND", 0)):
        monkeypatch.setattr(analyze_module, name, value)
    _no_witness_search(monkeypatch)
    result = analyze(_hard_questions_then_an_easy_one(), scalar_box(0, 1).broadcast(64), method="auto",
                     time_limit=4.0, threads=3)
    first_round = (0.2, 2 if spare_thread else 3)
    assert (0.1, 1) in calls and first_round in calls and calls.index(first_round) > calls.index((0.1, 1))
    assert {threads for limit, threads in calls if limit == 0.1} == {1}
    assert ("spare thread" in result.policy) == spare_thread


def _whole_layer_stable_net() -> Network:
    """4 inputs in [-1, 1], hidden 10, 8, 6: every neuron of the third hidden layer can be negative, none can be
    positive (by 1e-3, which interval bounds do not see)."""
    weights, biases = make_net(5, [4, 10, 8, 6, 1])
    for neuron in range(6):
        biases[2][neuron] -= milp_max(weights, biases, -np.ones(4), np.ones(4), 2, neuron, 1) + 1e-3
    return Network.from_arrays(weights, biases, dtype="float64")


def test_questions_stopped_by_their_limit_go_on_where_they_stopped():
    """The 12 questions of a layer where half the signs are impossible by 1e-3 (test_bab's whole-layer net),
    given 20 ms each, round after round, each round resuming the searches the one before stopped: the same
    answers as in one go, and searches were resumed."""
    network, layer = _whole_layer_stable_net(), 2
    box = Box(-np.ones(4), np.ones(4))
    bounds = propagate(network, box)
    ask = np.ones(6, bool)
    alone = bab_layer(network, box, bounds, layer, ask_max=ask, ask_min=ask)
    assert alone.proved_inactive.all() and alone.witnessed == 6 and alone.timed_out == 0
    ask_max, ask_min, proved, resumed = ask.copy(), ask.copy(), np.zeros(6, bool), 0
    resume = {}
    for _ in range(200):
        resumed += len(resume)
        part = bab_layer(network, box, bounds, layer, ask_max=ask_max, ask_min=ask_min, question_limit=0.02,
                         resume=resume)
        assert not resume  # every search went on: bab_layer took each out
        proved |= part.proved_inactive
        assert not part.proved_active.any()
        ask_max &= ~part.proved_inactive
        ask_min &= ~(network.preactivations(part.candidates)[layer] < 0).any(0) if len(part.candidates) else True
        assert set(part.suspended) <= {(n, s) for n in range(6) for s, asked in ((1, ask_max), (-1, ask_min)) if asked[n]}
        resume = dict(part.suspended)
        if not part.timed_out:
            break
    assert proved.all() and not ask_min.any() and resumed > 0


def test_stopped_searches_kept_within_a_budget_as_they_stop():
    """The searches a round stops are kept smallest first within ``suspended_budget`` bytes, together with the
    earlier round's searches still waiting to go on: none with 0, every one without a cap, and with room for
    about half of them exactly those that fit, the largest dropped."""
    network, layer = _whole_layer_stable_net(), 2
    box = Box(-np.ones(4), np.ones(4))
    bounds = propagate(network, box)
    ask = np.ones(6, bool)

    def stopped(budget, limit):
        return bab_layer(network, box, bounds, layer, ask_max=ask, ask_min=ask, question_limit=limit,
                         suspended_budget=budget)

    for limit in 0.005 * 2.0 ** np.arange(8):  # a limit that stops searches after their root, on any machine
        every = stopped(None, limit).suspended
        if len(every) >= 2:
            break
    else:
        pytest.fail("no limit stopped two searches after their root")
    assert stopped(0, limit).suspended == {}
    sizes = sorted(search.nbytes() for search in every.values())
    budget = sum(sizes[: len(sizes) // 2])
    kept = bab_layer_module._KeptSearches(budget, {})
    for key, search in every.items():
        kept.add(key, search)
    assert sorted(search.nbytes() for search in kept.searches.values()) == sizes[: len(sizes) // 2]
    # the last round's searches still waiting to go on share the budget: with room for all but the smallest, the
    # smallest stopping beside them drops the largest, a waiting one (its question will start afresh)
    (smallest_key, smallest), *others = sorted(every.items(), key=lambda item: item[1].nbytes())
    waiting = dict(others)
    kept = bab_layer_module._KeptSearches(sum(sizes[1:]), waiting)
    kept.add(smallest_key, smallest)
    assert list(kept.searches) == [smallest_key] and len(waiting) == len(others) - 1
    held = [search.nbytes() for search in [*kept.searches.values(), *waiting.values()]]
    assert sorted(held + [sizes[-1]]) == sizes
    for key in list(waiting):  # a search that goes on leaves waiting
        assert kept.take(key) is every[key] and key not in waiting
    assert kept.take(smallest_key) is None


def test_auto_names_a_settler_for_every_settled_neuron(tmp_path, monkeypatch):
    network = random_net(3, 2, [5, 5, 5, 3], bias_shift=2.0)
    _no_witness_search(monkeypatch)
    info = from_sequential(to_sequential(network, "float64"), name="random")[1]
    report = compress_model((network, info), tmp_path, domain=scalar_box(-1, 1), method="auto")
    assert report.status == "exact" and report.bab.questions > 0
    for layer in report.layers:
        settled = sorted(n for neurons in layer.settled_by.values() for n in neurons)
        assert settled == sorted(layer.stably_active + layer.stably_inactive + layer.unstable)
    assert "branch and bound" in report.policy and "Branch and bound" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("max_weights", [10**6, 0])
def test_auto_asks_few_questions_by_sign_solves_first_only_on_networks_with_few_weights(monkeypatch, max_weights):
    network = random_net(3, 2, [5, 5, 5, 3], bias_shift=2.0)  # 75 nonzero hidden weights
    _no_witness_search(monkeypatch)
    monkeypatch.setattr(analyze_module, "PER_NEURON_MAX_QUESTIONS", 10**6)  # every count of questions is "few"
    monkeypatch.setattr(analyze_module, "SIGN_SOLVES_FIRST_MAX_WEIGHTS", max_weights)
    result = analyze(network, scalar_box(-1, 1).broadcast(2), method="auto")
    assert not any(mask.any() for mask in result.undecided)
    settlers = {SETTLERS[code] for codes in result.settled_by for code in codes if code >= 0}
    second_step = result.policy.split("; ")[1]
    if max_weights:
        assert second_step.startswith("per-neuron sign solves") and result.milp.solves > 0 and "per-neuron" in settlers
    else:
        assert second_step == "75 hidden weights: no sign solves first (seconds each at this size)"
        assert result.milp.solves == 0 and result.bab.questions > 0 and "per-neuron" not in settlers


def test_an_exhausted_budget_leaves_questions_undecided_and_the_model_exact(tmp_path, monkeypatch):
    network = random_net(2, 2, [8, 6, 4], bias_shift=0.5)
    _no_witness_search(monkeypatch)
    info = from_sequential(to_sequential(network, "float64"), name="random")[1]
    report = compress_model((network, info), tmp_path, domain=scalar_box(-1, 1), method="bab", time_limit=1e-9)
    assert report.status == "partial" and report.counts()["undecided"] > 0 and report.time_limit_reached
    assert report.verification.passed


def test_rounds_end_when_no_question_was_stopped_by_its_limit(monkeypatch):
    """Searches that give up for memory (not for time) are not asked again round after round until the
    deadline: another round would only repeat them."""
    network = _whole_layer_stable_net()
    _no_witness_search(monkeypatch)
    monkeypatch.setattr(bab_module, "MAX_POOL_BYTES", 0)  # every search with open domains gives up at once
    start = time.monotonic()
    result = analyze(network, scalar_box(-1, 1).broadcast(4), method="bab", time_limit=60.0)
    assert time.monotonic() - start < 20.0
    assert result.bab.undecided > 0 and not result.timed_out
    assert result.bab.questions == result.bab.proved + result.bab.witnessed + result.bab.undecided


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_input_error(tmp_path):
    assert resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("cuda")
    network = random_net(1, 2, [6, 5])
    info = from_sequential(to_sequential(network, "float64"), name="random")[1]
    report = compress_model((network, info), tmp_path, device="cuda")
    assert report.status == "failed" and report.error_kind == "input" and "no CUDA device" in report.error


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bounds_give_the_same_answers_as_cpu():
    network = random_net(2, 2, [8, 6, 4], bias_shift=2.0)
    box = Box(-np.ones(2), np.ones(2))
    bounds = propagate(network, box)
    ask = np.ones(6, bool)
    cpu = bab_layer(network, box, bounds, 1, ask_max=ask, ask_min=ask, device="cpu")
    cuda = bab_layer(network, box, bounds, 1, ask_max=ask, ask_min=ask, device="cuda")
    assert np.array_equal(cpu.proved_inactive, cuda.proved_inactive)
    assert np.array_equal(cpu.proved_active, cuda.proved_active)


def _hard_questions_then_an_easy_one() -> Network:
    """64 inputs in [0, 1], hidden 100 then 6: "can it be positive?" of second-layer neurons 0-4 is hard (their
    bias 0.02 below the best value a gradient search finds, as in test_bab's deadline test), of neuron 5 easy
    (2.0 below)."""
    weights, biases = make_net(7, [64, 100, 6, 1])
    lower, upper = np.zeros(64), np.ones(64)
    starts = np.random.default_rng(0).random((64, 64))
    for neuron in range(6):
        target = bab_bounds.Net([weights[0]], [biases[0]], weights[1][neuron], biases[1][neuron], lower, upper,
                                torch.float64, torch.device("cpu"))
        best = target.forward(torch.as_tensor(bab_module._attack(target, starts, 200, 0.05, None))).max()
        biases[1][neuron] -= float(best) + (0.02 if neuron < 5 else 2.0)
    return Network.from_arrays(weights, biases, dtype="float64")


def test_a_quick_question_behind_hard_ones_is_reached(monkeypatch):
    """auto under a 12 s limit: a 20 s round would spend it all on the five hard questions ahead of the easy
    one; the sweep (1 s per question here) reaches the easy one first, and proves it (in 0.3-0.5 s of its 1 s,
    about 5.5 s into the run on an idle 2-core machine: a 0.5 s sweep missed it now and then)."""
    network = _hard_questions_then_an_easy_one()
    _no_witness_search(monkeypatch)
    monkeypatch.setattr(analyze_module, "BAB_SWEEP_LIMIT", 1.0)
    result = analyze(network, scalar_box(0, 1).broadcast(64), method="auto", time_limit=12.0)
    assert result.stably_inactive[1][5] and result.settled_by[1][5] == SETTLERS.index("bab")
    assert result.undecided[1][:5].any()  # the hard ones were hard


def _second_layer_times(network: Network, sign: int) -> Network:
    """``network`` with its second hidden layer (weights and biases) multiplied by ``sign``."""
    weights, biases = [layer.weight for layer in network.layers], [layer.bias for layer in network.layers]
    weights[1], biases[1] = sign * weights[1], sign * biases[1]
    return Network.from_arrays(weights, biases, dtype="float64")


@pytest.mark.parametrize("sign", [1, -1])
def test_questions_left_open_come_with_valid_tighter_bounds(sign):
    """Hard questions stopped after 0.3 s each: each comes back with a bound on max sign * g that every sampled
    input respects and that is tighter than the bounds branch and bound started from (sign -1: the same net with
    the second layer negated, so "can it be negative?" is the hard question)."""
    network = _second_layer_times(_hard_questions_then_an_easy_one(), sign)
    box = Box(np.zeros(64), np.ones(64))
    bounds = propagate(network, box)
    ask = np.array([True] * 5 + [False])
    none = np.zeros(6, bool)
    answers = bab_layer(network, box, bounds, 1, ask_max=ask if sign > 0 else none, ask_min=ask if sign < 0 else none,
                        question_limit=0.3)
    assert answers.undecided == len(answers.best_bounds) > 0  # a fast machine may settle some of them
    assert set(answers.best_bounds) <= {(neuron, sign) for neuron in range(5)}
    samples = np.random.default_rng(1).random((20000, 64))
    seen = (sign * network.preactivations(samples)[1]).max(0)
    start = bounds[1].upper if sign > 0 else -bounds[1].lower
    for (neuron, _), bound in answers.best_bounds.items():
        assert seen[neuron] <= bound < start[neuron]


def test_the_report_gives_the_range_of_g_found_at_undecided_neurons(tmp_path, monkeypatch):
    """With the witness search on, each undecided neuron's entry carries the range of g at the inputs the engine
    evaluated: inside the proved interval, below 0 on the side of the open "can it be positive?", and covering g
    at the neuron's negative witness; report.md shows it."""
    network = _hard_questions_then_an_easy_one()
    monkeypatch.setattr(analyze_module, "BAB_SWEEP_LIMIT", 0.3)
    info = from_sequential(to_sequential(network, "float64"), name="hard")[1]
    report = compress_model((network, info), tmp_path, domain=scalar_box(0, 1), method="auto", time_limit=4.0)
    items = report.layers[1].undecided_bounds
    assert report.status == "partial" and items
    witnesses = np.load(tmp_path / "witnesses.npz")
    g = network.preactivations(witnesses["points"])[1]
    for item in items:
        assert item.open == "positive"
        assert item.lower <= item.smallest_found <= item.largest_found <= min(item.upper, WITNESS_MARGIN)
        assert item.smallest_found <= g[witnesses["layer1_negative"][item.neuron], item.neuron]
    assert "g found at inputs tried" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("sign", [1, -1])
def test_auto_keeps_and_reports_the_bounds_of_undecided_neurons(tmp_path, monkeypatch, sign):
    """An undecided neuron's report entry gives the interval of g that branch and bound tightened (inside the
    propagated bounds), containing every sampled value, and the sign still open; report.md lists it (sign -1:
    the second layer negated, so "can it be negative?" is the hard question)."""
    network = _second_layer_times(_hard_questions_then_an_easy_one(), sign)
    _no_witness_search(monkeypatch)
    monkeypatch.setattr(analyze_module, "BAB_SWEEP_LIMIT", 0.3)
    info = from_sequential(to_sequential(network, "float64"), name="hard")[1]
    report = compress_model((network, info), tmp_path, domain=scalar_box(0, 1), method="auto", time_limit=4.0)
    layer = report.layers[1]
    assert report.status == "partial" and [item.neuron for item in layer.undecided_bounds] == layer.undecided
    propagated = propagate(network, Box(np.zeros(64), np.ones(64)))[1]
    g = network.preactivations(np.random.default_rng(2).random((20000, 64)))[1]
    witnesses = np.load(tmp_path / "witnesses.npz")
    opposite_witness = witnesses["layer1_negative" if sign > 0 else "layer1_positive"] >= 0
    for item in layer.undecided_bounds:
        assert item.lower <= g[:, item.neuron].min() and g[:, item.neuron].max() <= item.upper
        assert item.open == (("positive" if sign > 0 else "negative") if opposite_witness[item.neuron] else "both")
    assert any(item.upper < propagated.upper[item.neuron] if sign > 0 else item.lower > propagated.lower[item.neuron]
               for item in layer.undecided_bounds)
    assert "Undecided neurons" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("seed,hidden", NETS)
def test_the_spare_thread_settles_its_questions_like_the_per_neuron_milps(seed, hidden, monkeypatch):
    """``auto``'s companion on every question bounds leave open: once absorbed, the same stable sets as the
    per-neuron method, each proof by "per-neuron" and true on a dense grid, and ``settled`` set."""
    network = random_net(seed, 2, hidden, bias_shift=2.0)
    box = scalar_box(-1.0, 1.0).broadcast(2).boxes[0]
    baseline = analyze(network, scalar_box(-1.0, 1.0).broadcast(2), method="per-neuron")
    _no_witness_search(monkeypatch)
    state = analyze_module._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), lambda *a: None)
    companion = analyze_module._Companion(network, box, state, None)
    assert companion.asked
    companion.wait()
    companion.absorb(network, box, state)
    assert companion.settled.is_set() and analyze_module._count_open(state) == 0
    per_neuron = SETTLERS.index("per-neuron")
    for layer, (grid_max, grid_min) in enumerate(grid_extremes(network, -1.0, 1.0)):
        assert np.array_equal(state.proved_inactive[layer], baseline.stably_inactive[layer])
        assert np.array_equal(state.proved_active[layer], baseline.stably_active[layer])
        assert np.all(grid_max[state.proved_inactive[layer]] <= 0) and np.all(grid_min[state.proved_active[layer]] >= 0)
        bounds_proved = state.settled_by[layer] == SETTLERS.index("bounds")
        assert np.all(state.settled_by[layer][~bounds_proved] == per_neuron) or not (~bounds_proved).any()


def test_the_spare_thread_drops_a_question_settled_elsewhere():
    """The spare thread on one hard question ("can neuron 0 of the second layer be positive?", over 30 s for
    SCIP): once the state says it is settled (as a branch-and-bound proof would), ``drop_settled`` interrupts the
    running solve; the thread ends within seconds and counts the question settled."""
    network = _hard_questions_then_an_easy_one()
    box = Box(np.zeros(64), np.ones(64))
    state = analyze_module._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), lambda *a: None)
    state.proved_inactive[1][1:] = True  # leave one question open
    assert analyze_module._count_open(state) == 1
    companion = analyze_module._Companion(network, box, state, time.monotonic() + 120)
    assert companion.asked == [(1, 0, 1)]
    time.sleep(1.0)
    assert companion.thread.is_alive()
    state.proved_inactive[1][0] = True
    until = time.monotonic() + 10.0
    while companion.thread.is_alive() and time.monotonic() < until:  # auto calls it after every layer it answers
        companion.drop_settled(state)
        companion.thread.join(0.05)
    assert not companion.thread.is_alive() and companion.settled.is_set()
    ((layer, solved),) = companion.solved
    assert layer == 1 and solved.timed_out[0] and not solved.proved_inactive.any()


def test_the_spare_thread_asks_with_the_bound_left_first_then_with_the_pre_activation_free(monkeypatch):
    """A question the spare thread does not settle in COMPANION_CAPPED_SECONDS with the bound the steps before left
    on its layer (which the model puts on the objective) is asked again for the time left with the bounds of the
    layers below only (the objective free); neither solve loosens the bound the state had."""
    network = _hard_questions_then_an_easy_one()
    box = Box(np.zeros(64), np.ones(64))
    state = analyze_module._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), lambda *a: None)
    state.proved_inactive[1][1:] = True  # leave one question open (over 30 s for SCIP)
    before = state.bounds[1].upper[0]
    calls = []

    def recording(network, box, bounds, layer, **kwargs):
        calls.append((len(bounds), kwargs["solve_limit"], kwargs["aggressive_separation"]))
        return solve_layer(network, box, bounds, layer, **kwargs)

    monkeypatch.setattr(analyze_module, "solve_layer", recording)
    monkeypatch.setattr(analyze_module, "COMPANION_CAPPED_SECONDS", 0.5)
    companion = analyze_module._Companion(network, box, state, time.monotonic() + 3.0)
    companion.wait()
    assert calls == [(len(state.bounds), 0.5, False), (1, None, True)]
    assert not companion.settled.is_set()
    line = companion.absorb(network, box, state)
    assert not state.proved_inactive[1][0] and state.bounds[1].upper[0] <= before
    assert re.fullmatch(r"the spare thread's sign solves: 0 settled there first \[layer 2 neuron 0 active\? "
                        r"0\.\d s with its bound → open, then \d\.\d s free, separators aggressive → open\]",
                        line), line


def test_a_free_solve_with_aggressive_separators_that_ends_inside_its_margin_is_followed_by_the_engines(monkeypatch):
    """g = 100 (relu(x0 - x1) + relu(x0 + x1 - 1)) - 100 - 5e-4 on [0, 1]^2: max -5e-4 (its triangle relaxations allow
    +50), row size 300, so the margins are 3e-4 and, with aggressive separators, 3e-3. The free solve with them
    ends without a proof or a witness; the engine's settings then prove it."""
    network = Network.from_arrays([np.array([[1.0, -1.0], [1.0, 1.0]]), np.array([[100.0, 100.0]]), np.ones((1, 1))],
                                  [np.array([0.0, -1.0]), np.array([-100.0 - 5e-4]), np.zeros(1)], dtype="float64")
    box = Box(np.zeros(2), np.ones(2))
    state = analyze_module._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), lambda *a: None)
    assert analyze_module._open_questions(state, 1)[0][0] and state.bounds[1].upper[0] > 1.0
    state.bounds[1] = LayerBounds(state.bounds[1].lower, np.full(1, 1.0))  # the first solve gets a loose bound
    monkeypatch.setattr(analyze_module, "COMPANION_CAPPED_SECONDS", 0.0)  # the first solve, with the bound, ends at once
    companion = analyze_module._Companion(network, box, state, time.monotonic() + 60.0)
    companion.wait()
    assert companion.settled.is_set()
    line = companion.absorb(network, box, state)
    assert state.proved_inactive[1][0]
    assert re.fullmatch(r"the spare thread's sign solves: 1 settled there first \[layer 2 neuron 0 active\? "
                        r"0\.0 s with its bound → open, then \d\.\d s free, separators aggressive → open, then "
                        r"\d\.\d s free → proved\]", line), line


def test_auto_interrupts_the_spare_thread_once_branch_and_bound_settles_its_question(monkeypatch):
    """One question that branch and bound proves in 3-4 s and a sign solve in about 15 s (2 cores): with two
    threads, the sweep stops it (10 ms: past its root, never proved there), the spare thread takes it up beside
    the first round, the proof is branch and bound's, and the run does not wait for the 90 s time limit (the
    interrupt itself: ``test_the_spare_thread_drops_a_question_settled_elsewhere``)."""
    network = _hard_questions_then_an_easy_one()
    weights, biases = [layer.weight for layer in network.layers], [layer.bias for layer in network.layers]
    network = Network.from_arrays([weights[0], weights[1][5:], weights[2][:, 5:]], [biases[0], biases[1][5:],
                                                                                    biases[2]], dtype="float64")
    _no_witness_search(monkeypatch)
    monkeypatch.setattr(analyze_module, "BAB_SWEEP_LIMIT", 0.01)
    monkeypatch.setattr(analyze_module, "FIRST_ROUND_SOLVE_LIMIT", 0.3)
    start = time.monotonic()
    result = analyze(network, scalar_box(0, 1).broadcast(64), method="auto", threads=2, time_limit=90.0)
    assert time.monotonic() - start < 30.0
    assert result.stably_inactive[1][0] and result.settled_by[1][0] == SETTLERS.index("bab")
    assert "spare thread" in result.policy


def test_sign_solves_without_workers_run_in_threads_and_settle_what_one_thread_does(monkeypatch):
    """``auto``'s per-neuron sign solves with ``threads`` 2 and no ``workers`` processes: each layer's questions in
    two chunks through ``thread_map``; the same neurons settled as with one thread."""
    network = random_net(7, 6, [16, 16, 12], bias_shift=1.5)
    box = scalar_box(-1.0, 1.0).broadcast(6).boxes[0]
    _no_witness_search(monkeypatch)
    calls, real_solve_layer = [], analyze_module.solve_layer

    def recorded(*args, **kwargs):
        calls.append((kwargs["workers"], kwargs["parallel_map"]))
        return real_solve_layer(*args, **kwargs)

    monkeypatch.setattr(analyze_module, "solve_layer", recorded)
    states = []
    for threads in (1, 2):
        state = analyze_module._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0),
                                                     lambda *a: None)
        assert analyze_module._count_open(state)
        analyze_module._per_neuron_signs(network, box, state, None, analyze_module.Fanout(threads=threads),
                                         lambda *a, **k: None)
        assert analyze_module._count_open(state) == 0
        states.append(state)
    one_thread = [call for call in calls if call[0] == 1]
    assert one_thread and all(parallel_map is None for _, parallel_map in one_thread)
    assert len(one_thread) < len(calls) and all(call == (2, thread_map) for call in calls[len(one_thread):])
    for field in ("proved_inactive", "proved_active"):
        for one, two in zip(getattr(states[0], field), getattr(states[1], field)):
            np.testing.assert_array_equal(one, two)


def test_a_failure_on_the_spare_thread_reaches_the_analysis(monkeypatch):
    """An error inside the spare thread (here a stand-in solver that raises) is not lost in the thread: ``absorb``
    raises it in the analysing thread; a SolverError is reported in the policy line instead."""
    network = random_net(1, 2, [6, 5], bias_shift=2.0)
    box = scalar_box(-1.0, 1.0).broadcast(2).boxes[0]
    _no_witness_search(monkeypatch)
    state = analyze_module._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), lambda *a: None)
    assert analyze_module._count_open(state)

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(analyze_module, "solve_layer", failing)
    error = ValueError("a bug")
    companion = analyze_module._Companion(network, box, state, None)
    companion.wait()
    with pytest.raises(ValueError, match="a bug"):
        companion.absorb(network, box, state)
    error = analyze_module.SolverError("MILP of hidden layer 0", "SCIP failed")
    companion = analyze_module._Companion(network, box, state, None)
    companion.wait()
    assert "failed (SCIP failed)" in companion.absorb(network, box, state) and not companion.settled.is_set()


def test_a_round_resumes_the_search_closest_to_a_proof_first():
    """Five hard questions stopped after 0.3 s each, then a round with time for one question on one thread: it
    goes on with the search whose bound is lowest (the nearest to a proof), and the others wait untouched."""
    network = _hard_questions_then_an_easy_one()
    box = Box(np.zeros(64), np.ones(64))
    bounds = propagate(network, box)
    ask = np.array([True] * 5 + [False])
    none = np.zeros(6, bool)
    first = bab_layer(network, box, bounds, 1, ask_max=ask, ask_min=none, question_limit=0.3)
    waiting = dict(first.suspended)
    assert len(waiting) >= 2  # a fast machine may settle some of them
    nearest = min(waiting, key=lambda key: waiting[key].best_bound)
    assert len({search.best_bound for search in waiting.values()}) == len(waiting)
    bab_layer(network, box, bounds, 1, ask_max=ask, ask_min=none, question_limit=0.5,
              deadline=time.monotonic() + 0.5, resume=waiting, nearest_first=True)
    assert set(waiting) == set(first.suspended) - {nearest}
