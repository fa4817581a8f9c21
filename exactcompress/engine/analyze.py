"""Decide the state of every hidden neuron on a domain: bounds → witnesses → MILPs.

A neuron is
- *stably inactive* only with a proof that max g <= 0 (a bound ``U <= -BOUND_MARGIN``, a per-neuron MILP
  dual bound ``<= -m``, or the single MILP's dual bound < 1 proving that no input reaches ``g >= -m``;
  ``m``: the neuron's margin, ``prove.encoding.proof_margins``, at least MILP_MARGIN), *stably active*
  only with the mirror-image proof that min g >= 0;
- *unstable* only with two witness inputs whose float64 forward pass shows ``g > WITNESS_MARGIN`` and
  ``g < -WITNESS_MARGIN``;
- *undecided* otherwise (time limit, or an extreme pre-activation inside the tolerance band): kept.

Methods: ``per-neuron`` (the 2020 baseline: two full MILPs per neuron, layer by layer, no sampling),
``milp`` (bounds, witnesses, then one MILP over the whole network that harvests every point it meets),
``bab`` (bounds, witnesses, then branch and bound on ReLU splits per question), ``auto`` (bounds and witnesses,
then per question branch and bound and per-neuron sign solves; see ``_auto``).
Domains that are unions of boxes are analysed box by box and combined (``domain.UNION_SEMANTICS``): bounds and
witnesses on every box first, then the proofs box by box, each asking only the sign questions that no box has
witnessed (``_boxes_in_turn``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence, get_args

import numpy as np

from ..allocator import release_free_memory
from ..errors import SolverError, SoundnessError
from ..schema import BabStats, Device, Method, Settler, SolverStats
from ..tolerances import BOUND_MARGIN, WITNESS_MARGIN
from . import bounds as bounds_mod
from .bounds import LayerBounds
from .deadline import expired, seconds_left
from .domain import Box, Domain
from .network import Network
from .progress import Progress, ignore
from .prove.bab import SuspendedSearch
from .prove.bab_layer import bab_layer, resolve_device
from .prove.parallel import ParallelMap, thread_map
from .prove.per_neuron import LayerSolve, solve_layer
from .prove.single_milp import solve_network
from .prove.stop import StopSignal
from .witnesses import Masks, WitnessSet, record, search

#: ``auto`` asks per-neuron sign solves directly when at most this many sign questions are open
PER_NEURON_MAX_QUESTIONS = 4
#: ... and the hidden layers hold at most this many nonzero weights. A sign solve builds and solves SCIP's model of
#: every layer below its neuron, at about 2-6 us a nonzero weight; branch and bound's root costs far less on wide
#: inputs. 3 questions of d3072-2x800-l1_2e-4 (3.1M weights): sign solves 19 s, branch and bound 2.6 s; on the
#: 64- and 784-input bench nets (<= 0.5M) sign solves take 0.1-1.8 s and branch and bound 0.5-3.2 s
SIGN_SOLVES_FIRST_MAX_WEIGHTS = 1_000_000
#: the spare thread's sign solves (``_Companion``) first give a question this many seconds with the bound that the
#: steps before left on its pre-activation in the model, then the time left with the pre-activation free: a bound
#: on the objective caps every LP value, which helps SCIP find a witness near it but, once the bound is below the
#: root LP value, leaves most nodes with the same LP value and its branching blind (``benchmarks/README.md``).
#: The free solve runs with SCIP's separators aggressive (proofs beyond the wider margin of
#: ``tolerances.MILP_AGGRESSIVE_RELATIVE_MARGIN``): on the question that decided whether d3072-5x100-l1_2e-4 ends
#: exact, default settings proved it at the root under 4 of 8 random seeds, aggressive ones under 4 of 4 in
#: 16-27 s. A free solve that ends without settling its question (its maximum inside the wider margin) is followed
#: by one with the engine's settings for the time left
COMPANION_CAPPED_SECONDS = 20.0
#: ``auto`` starts the spare thread after branch and bound's sweep when at most COMPANION_MAX_AFTER_SWEEP questions
#: are open: the first round that follows then answers one question fewer at once (on 2 CPUs, one at a time), hardest
#: question first, and drops the others as the round settles them (d3072-5x100-l1_1e-4
#: leaves 5 after its 22 s sweep; started only after the first round, at 76 s, its last question's sign solves,
#: about 20 s + 200 s, did not fit into a 300 s run). After the first round it starts only when at most
#: COMPANION_MAX_AFTER_ROUND are open: the later rounds answer two questions at once, and the thread takes one of
#: their threads (d64-2x200-l1_0, 6 open after its first round: 5 undecided at 300 s with the thread, 4 without)
COMPANION_MAX_AFTER_SWEEP = 8
COMPANION_MAX_AFTER_ROUND = 4
#: seconds each sign question may take in the first MILP round of ``auto`` (the second round has no cap)
FIRST_ROUND_SOLVE_LIMIT = 10.0
#: seconds each question may take in ``auto``'s first round of branch and bound
BAB_FIRST_ROUND_LIMIT = 20.0
#: seconds each question gets in a sweep over all of them before that round (searches it stops go on in the
#: round), so that a question far down the list that settles quickly is reached even when the hard ones
#: before it would take the whole time limit
BAB_SWEEP_LIMIT = 2.0
#: share of the time left that ``auto``'s later rounds of branch and bound may use (the MILPs get the rest; beside
#: the spare thread, whose sign solves go on meanwhile, they use all of it: at 80% the analysing thread sat idle for
#: the last fifth)
BAB_SECOND_ROUND_SHARE = 0.8
#: rounds of branch and bound with at least this many seconds per question (or no limit) answer ``Fanout.threads``
#: questions at once (one fewer beside the spare thread); shorter ones, one: ``auto``'s 2 s sweep (threaded,
#: d64-5x100-l1_0's sweep and first round under a 120 s cap used 63 more CPU seconds for 1% more domains; the sweep
#: alone in threads gave the same verdicts within a question on the four unpenalised d64 nets at 300 s, and 400 MiB
#: more on the 5x100 one).
#: From the 20 s first round on, the searches take the time, and two threads bound 1.06-1.48x the domains of one
#: in 300 s runs with the same verdicts (the first round of 40 s and more before; ``benchmarks/README.md``)
THREADED_QUESTION_SECONDS = BAB_FIRST_ROUND_LIMIT
#: memory that stopped branch-and-bound searches may hold between rounds (bytes of open domains; the
#: largest are dropped first and start afresh if asked again), enforced as each search stops and counting the
#: searches still waiting to go on: a round holds no more besides its running searches (checked only after a
#: layer's round before: a 20 s round of d64-2x400-l1_0's 46 questions kept about 1.2 GiB; ``benchmarks/README.md``)
MAX_SUSPENDED_BYTES = 512 * 2**20
#: codes for the step that settled a neuron (index into SETTLERS); -1 = not settled
SETTLERS = get_args(Settler)


@dataclass(frozen=True)
class Analysis:
    """Per hidden layer boolean masks (width,) of the four states, what settled each neuron and the tightest
    valid bounds on the pre-activations."""

    stably_active: tuple[np.ndarray, ...]
    stably_inactive: tuple[np.ndarray, ...]
    unstable: tuple[np.ndarray, ...]
    undecided: tuple[np.ndarray, ...]
    settled_by: tuple[np.ndarray, ...]  # int codes into SETTLERS, -1 where undecided
    witnesses: WitnessSet
    milp: SolverStats
    bounds: tuple[LayerBounds, ...]  # per hidden layer, valid pre-activation bounds on the whole domain
    bab: BabStats = field(default_factory=BabStats)
    seconds: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    policy: str | None = None


@dataclass
class _BoxState:
    """Mutable bookkeeping while one box is analysed (never leaves this module)."""

    proved_inactive: list[np.ndarray]
    proved_active: list[np.ndarray]
    settled_by: list[np.ndarray]
    witnesses: WitnessSet
    bounds: list[LayerBounds]
    stats: SolverStats = field(default_factory=SolverStats)
    bab: BabStats = field(default_factory=BabStats)
    seconds: dict[str, float] = field(default_factory=lambda: {"bounds": 0.0, "witnesses": 0.0, "prove": 0.0})
    timed_out: bool = False
    policy: str | None = None
    suspended: dict[tuple[int, int, int], SuspendedSearch] = field(default_factory=dict)  # (layer, neuron, sign)
    #: per hidden layer, masks (width,) of the neurons whose positive / negative sign a witness in another box of the
    #: domain shows: that question is answered for the union, so this box does not ask it (None: no other box)
    elsewhere: Masks | None = None

    def mark_unstable(self, code: int) -> None:
        for layer, settled in enumerate(self.settled_by):
            newly = self.witnesses.unstable(layer) & (settled < 0)
            settled[newly] = code


@dataclass(frozen=True)
class Fanout:
    """How the independent questions of one layer are split (per-neuron MILPs, branch and bound):
    ``workers`` chunks through ``parallel_map``; branch and bound in this process answers ``threads`` questions at
    once in its rounds of long questions (``_bab``); ``device`` places branch and bound's batched bounds."""

    workers: int = 1
    threads: int = 1
    parallel_map: ParallelMap | None = None
    device: Device = "auto"


def analyze(
    network: Network,
    domain: Domain,
    *,
    method: Method = "auto",
    data: np.ndarray | None = None,
    time_limit: float | None = None,
    workers: int = 1,
    threads: int = 1,
    parallel_map: ParallelMap | None = None,
    seed: int = 0,
    device: Device = "auto",
    progress: Progress | None = None,
) -> Analysis:
    """Classify every hidden neuron of ``network`` on ``domain`` (already broadcast to its input size) with
    ``method`` (one of ``Method``; ValueError otherwise).

    ``time_limit`` is in wall seconds for the whole analysis; neurons not settled in time are undecided.
    ``data`` (n, input_dim) adds witness candidates (rows outside the domain are ignored). Per-neuron
    solves and branch-and-bound questions are split over ``workers`` chunks run through ``parallel_map``
    (default: local processes); branch and bound in this process answers ``threads`` questions at once (threads,
    one torch thread each) in rounds that give each question THREADED_QUESTION_SECONDS or more, or no limit, and
    computes its batched bounds on ``device`` (``"auto"``: CUDA when torch sees a
    GPU), its proofs in float64 either way. After each round of branch and bound, the single MILP and the whole
    analysis, the free heap goes back to the kernel (``allocator.release_free_memory``).
    """
    if method not in get_args(Method):
        raise ValueError(f"method must be one of {', '.join(get_args(Method))}, got {method!r}")
    fanout = Fanout(workers, threads, parallel_map, device)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    rng = np.random.default_rng(seed)
    say = progress or ignore
    if method == "per-neuron":
        per_box = []
        for index, box in enumerate(domain.boxes):
            if len(domain.boxes) > 1:
                say(f"box {index + 1}/{len(domain.boxes)}")
            per_box.append(_per_neuron(network, box, deadline, fanout, say))
    else:
        prove = {"milp": _milp, "bab": _bab_only, "auto": _auto}[method]
        per_box = _boxes_in_turn(network, domain.boxes, data, deadline, rng, say,
                                 lambda box, state, box_deadline: prove(network, box, state, box_deadline, fanout, say),
                                 "bounds and witnesses settled every neuron; no MILP" if method == "auto" else None)
    release_free_memory()  # a long-lived worker analyses the next model with what it holds now
    return _combine(network, per_box)


def _boxes_in_turn(network: Network, boxes: Sequence[Box], data, deadline, rng, say: Progress,
                   prove: Callable[[Box, _BoxState, float | None], None],
                   settled_policy: str | None = None) -> list[_BoxState]:
    """Bounds and witnesses on every box, then ``prove(box, state, box_deadline)`` box by box. Before its turn a
    box learns the signs that the other boxes' witnesses show (``_BoxState.elsewhere``): a sign shown anywhere in
    the domain answers its question for the union, so no box spends time on it (a fuzz net of two boxes left a
    neuron undecided: the first box's branch and bound spent the whole limit on a sign that a sign solve shows in
    0.2 s in the second). Each box with questions left gets an equal share of the time left (the others pass
    theirs on), so a hard first box cannot leave the later ones unasked; the time that boxes settled early leave
    goes, in a second turn, to the boxes whose share ran out with questions open (their searches resume where they
    stopped). ``settled_policy``: the policy of a box that bounds and witnesses settle."""
    states = []
    for index, box in enumerate(boxes):
        if len(boxes) > 1:
            say(f"box {index + 1}/{len(boxes)}: bounds and witnesses")
        states.append(_bounds_and_witnesses(network, box, data, deadline, rng, say))
    for state in states:
        if len(boxes) > 1:
            _learn_elsewhere(states, state)
        if not _count_open(state):
            state.policy = settled_policy
    turns = [index for index, state in enumerate(states) if _count_open(state)]
    for second_turn in (False, True):
        for turn, index in enumerate(turns):
            box, state = boxes[index], states[index]
            if len(boxes) > 1:  # what the other boxes have shown so far, their proofs' witnesses included
                _learn_elsewhere(states, state)
                if not _count_open(state):
                    state.suspended = {}
                    continue
                say(f"box {index + 1}/{len(boxes)}: proofs" + (" (time the other boxes left)" if second_turn else ""))
            sharing = sum(_count_open(states[later]) > 0 for later in turns[turn:])
            box_deadline = None if deadline is None else time.monotonic() + seconds_left(deadline) / sharing
            first_policy = state.policy
            state.timed_out = False  # as the turn that is now the last ends it
            prove(box, state, box_deadline)
            if second_turn:
                state.policy = _joined(first_policy, "with the time the other boxes left", state.policy)
            if second_turn or not state.timed_out or deadline is None:  # its last turn: nothing resumes its searches
                state.suspended = {}  # (up to MAX_SUSPENDED_BYTES a box: freed before the next box's turn)
        # a second turn only for the boxes their share cut short (not for a tolerance band or a failed solver)
        turns = [index for index in turns if states[index].timed_out and _count_open(states[index])]
        if len(boxes) == 1 or deadline is None or not turns or expired(deadline):
            break
    for state in states if len(boxes) > 1 else ():  # what the boxes after it showed
        _learn_elsewhere(states, state)
    return states


def _learn_elsewhere(states: Sequence[_BoxState], state: _BoxState) -> None:
    """Set ``state.elsewhere`` from the other ``states``' witnesses; a box cut short with questions open that these
    witnesses now all answer is no longer timed out (its policy says so)."""
    left = _count_open(state)
    state.elsewhere = _witnessed_elsewhere(states, state)
    if state.timed_out and left and not _count_open(state):
        state.timed_out = False
        state.policy = _joined(state.policy, "its questions left answered by another box's witnesses")


def _joined(*parts: str | None) -> str | None:
    """The parts that are not None, joined by "; " (None when there are none)."""
    return "; ".join(part for part in parts if part) or None


def _witnessed_elsewhere(states: Sequence[_BoxState], state: _BoxState) -> Masks:
    """Per hidden layer, (positive, negative) masks of the signs that the witnesses of the other ``states`` show."""
    others = [other.witnesses for other in states if other is not state]
    return ([np.logical_or.reduce([w.positive[layer] >= 0 for w in others]) for layer in range(len(state.bounds))],
            [np.logical_or.reduce([w.negative[layer] >= 0 for w in others]) for layer in range(len(state.bounds))])


def _new_state(network: Network, box: Box, bounds: list[LayerBounds]) -> _BoxState:
    widths = network.hidden_widths
    return _BoxState(
        proved_inactive=[np.zeros(w, bool) for w in widths],
        proved_active=[np.zeros(w, bool) for w in widths],
        settled_by=[np.full(w, -1) for w in widths],
        witnesses=WitnessSet.empty(network),
        bounds=bounds,
    )


def _mark_proved(state: _BoxState, layer: int, inactive: np.ndarray, active: np.ndarray, code: int) -> None:
    for proved, mask in ((state.proved_inactive, inactive), (state.proved_active, active)):
        newly = mask & ~proved[layer] & (state.settled_by[layer] < 0)
        state.settled_by[layer][newly] = code
        proved[layer] |= mask


def _apply_bound_proofs(network: Network, box: Box, state: _BoxState, layer: int) -> None:
    """Mark what ``layer``'s bounds prove (beyond the margin) and the signs its terms fix (``_apply_term_signs``)."""
    bounds = state.bounds[layer]
    _mark_proved(state, layer, bounds.upper <= -BOUND_MARGIN, bounds.lower >= BOUND_MARGIN, SETTLERS.index("bounds"))
    _apply_term_signs(network, box, state, layer)


def _apply_term_signs(network: Network, box: Box, state: _BoxState, layer: int) -> None:
    """Mark the signs that ``layer``'s terms fix exactly (``bounds.term_signs``; the outputs of the layer below are
    exactly 0 where proven stably inactive): ``g <= 0`` everywhere is stably inactive (so is ``g = 0``
    everywhere), ``g >= 0`` stably active."""
    dead_inputs = None if layer == 0 else state.proved_inactive[layer - 1]
    nonpositive, nonnegative = bounds_mod.term_signs(network.layers[layer], box, dead_inputs)
    inactive = nonpositive & ~state.proved_active[layer]
    _mark_proved(state, layer, inactive, nonnegative & ~inactive & ~state.proved_inactive[layer],
                 SETTLERS.index("bounds"))


def _add_stats(total: SolverStats, more: SolverStats) -> SolverStats:
    """Counters add up; the single-MILP flag and trace are those of the latest single MILP."""
    counters = ("solves", "nodes", "lp_iterations", "seconds", "solutions_harvested", "lp_points_harvested",
                "states_fixed", "open_states")
    summed = {name: getattr(total, name) + getattr(more, name) for name in counters}
    latest = more if more.single_milp_finished is not None else total
    return SolverStats(**summed, single_milp_finished=latest.single_milp_finished, dual_trace=latest.dual_trace)


def _bounds_and_witnesses(network: Network, box: Box, data, deadline, rng, say: Progress) -> _BoxState:
    start = time.monotonic()
    say("bounds")
    state = _new_state(network, box, bounds_mod.propagate(network, box))
    for layer in range(len(network.hidden)):
        _apply_bound_proofs(network, box, state, layer)
    state.seconds["bounds"] += time.monotonic() - start

    start = time.monotonic()
    say("witness search")
    skip = (list(state.proved_inactive), list(state.proved_active))
    state.witnesses = search(network, box, state.witnesses, data=data, bounds=state.bounds, rng=rng, deadline=deadline,
                             skip=skip, progress=say)
    state.mark_unstable(SETTLERS.index("witnesses"))
    state.seconds["witnesses"] += time.monotonic() - start
    return state


def _open_questions(state: _BoxState, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Sign questions still open in ``layer``: (can it be positive?, can it be negative?) masks; a sign that a
    witness shows, in this box or in another (``state.elsewhere``), is no question."""
    missing_positive, missing_negative = state.witnesses.open_signs()
    undecided = ~state.proved_inactive[layer] & ~state.proved_active[layer]
    positive, negative = missing_positive[layer] & undecided, missing_negative[layer] & undecided
    if state.elsewhere is not None:
        positive, negative = positive & ~state.elsewhere[0][layer], negative & ~state.elsewhere[1][layer]
    return positive, negative


def _count_open(state: _BoxState) -> int:
    return sum(int(mask.sum()) for layer in range(len(state.bounds)) for mask in _open_questions(state, layer))


def _auto(network: Network, box: Box, state: _BoxState, deadline, fanout: Fanout, say: Progress) -> None:
    """After bounds and witnesses (``state``, with questions open), per question. A few open questions
    (<= PER_NEURON_MAX_QUESTIONS) on a network of at most SIGN_SOLVES_FIRST_MAX_WEIGHTS nonzero hidden weights first get
    per-neuron sign solves capped at FIRST_ROUND_SOLVE_LIMIT each: a question with a tiny margin that SCIP settles
    in a fraction of a second can take branch and bound many splits (on larger networks each solve costs seconds).
    Then branch and bound on every question for BAB_SWEEP_LIMIT seconds, and a first round that gives the questions
    it stopped BAB_FIRST_ROUND_LIMIT more (the easy ones go quickly, a hard one cannot starve them); then rounds of
    branch and bound with most of the time left, each round doubling the seconds per question and resuming the
    searches the last one stopped; last, per-neuron sign solves without a cap. No single MILP: what these steps
    leave open is a few hard questions, and its dual bound proves nothing until it refutes all of them at once
    (given 60 s there, it settled nothing in any recorded run since the spare thread took the last few questions;
    ``benchmarks/README.md``). When at most COMPANION_MAX_AFTER_SWEEP questions are left after the sweep
    (COMPANION_MAX_AFTER_ROUND after the first round) and ``fanout`` has a thread to spare, a ``_Companion`` gives
    them sign solves in a thread of its own beside the steps after it (until they are settled, or the deadline); the
    rounds of branch and bound beside it then use all the time left, as its sign solves take the place of the last
    step."""
    open_questions = _count_open(state)
    steps = [f"{open_questions} open sign questions"]
    if open_questions <= PER_NEURON_MAX_QUESTIONS:
        weights = sum(int(np.count_nonzero(layer.weight)) for layer in network.hidden)
        if weights <= SIGN_SOLVES_FIRST_MAX_WEIGHTS:
            steps.append(f"per-neuron sign solves ({FIRST_ROUND_SOLVE_LIMIT:.0f} s each)")
            steps += _per_neuron_signs(network, box, state, deadline, fanout, say,
                                       rounds=(FIRST_ROUND_SOLVE_LIMIT,))
        else:
            steps.append(f"{weights:,} hidden weights: no sign solves first (seconds each at this size)")
    companion = None
    try:
        if _count_open(state) and not expired(deadline):
            steps.append(f"{_count_open(state)} left: branch and bound ({BAB_SWEEP_LIMIT:g} s per question, then "
                         f"{BAB_FIRST_ROUND_LIMIT:g} s more where stopped)")
            if _bab(network, box, state, deadline, fanout, say, BAB_SWEEP_LIMIT):
                companion = _Companion.on_spare_thread(network, box, state, deadline, fanout,
                                                       COMPANION_MAX_AFTER_SWEEP)
                _bab(network, box, state, deadline, _beside(fanout, companion), say, BAB_FIRST_ROUND_LIMIT,
                     stop=companion.settled if companion else None, companion=companion)
        if companion is None:
            companion = _Companion.on_spare_thread(network, box, state, deadline, fanout, COMPANION_MAX_AFTER_ROUND)
        else:
            companion.drop_settled(state)
        if companion is not None:
            steps.append(f"{len(companion.asked)} left: per-neuron sign solves on a spare thread beside the steps "
                         "below")
        if _count_open(state) and not expired(deadline) and not (companion and companion.settled.is_set()):
            share = 1.0 if companion is not None else BAB_SECOND_ROUND_SHARE
            steps.append(f"{_count_open(state)} left: branch and bound ({share:.0%} of the time left, "
                         f"{2 * BAB_FIRST_ROUND_LIMIT:.0f} s per question and doubling, resumed nearest to a proof "
                         "first)")
            round_deadline = None if deadline is None else time.monotonic() + share * seconds_left(deadline)
            _bab_rounds(network, box, state, round_deadline, fanout, say, 2 * BAB_FIRST_ROUND_LIMIT, companion)
        if companion is not None and _count_open(state):
            companion.wait()  # it goes on with the time that is left
    finally:
        if companion is not None:
            companion.stop_and_join()
    if companion is not None:
        steps.append(companion.absorb(network, box, state))
    if _count_open(state) and not expired(deadline):
        steps.append(f"{_count_open(state)} left: per-neuron sign solves")
        steps += _per_neuron_signs(network, box, state, deadline, fanout, say, rounds=(None,))
    state.policy = "; ".join(steps) + ("; settled all" if _count_open(state) == 0 else "")
    state.timed_out |= _count_open(state) > 0 and expired(deadline)


def _bab_only(network: Network, box: Box, state: _BoxState, deadline, fanout: Fanout, say: Progress) -> None:
    """After bounds and witnesses (``state``), branch and bound on every open question in rounds (``_bab_rounds``;
    what it leaves is undecided)."""
    _bab_rounds(network, box, state, deadline, fanout, say, BAB_FIRST_ROUND_LIMIT)
    state.timed_out |= _count_open(state) > 0 and expired(deadline)


def _bab_rounds(network: Network, box: Box, state: _BoxState, deadline, fanout: Fanout, say: Progress,
                question_limit: float, companion: _Companion | None = None) -> None:
    """Rounds of branch and bound until ``deadline``, the seconds per question doubling from ``question_limit``;
    a question stopped by its limit goes on in the next round from its open domains (when it ran in this
    process), so a hard question cannot starve the others and the easy ones are settled first; the searches that go
    on are taken nearest to a proof first (``bab_layer.bab_chunk``'s ``nearest_first``: d64-2x200-l1_0 at 300 s,
    3 undecided instead of 4 in three runs; not in ``auto``'s first round, where its spare thread takes the hardest
    question and branch and bound settled it sooner in neuron order: d3072-5x100-l1_2e-4 needed another round in
    2 of 3 runs). The rounds end when no question of the last one was stopped by its limit (another would only
    repeat it). Without a deadline, one round without a limit. Beside a running ``companion`` the rounds use one
    thread fewer, tell it what they settled, and end once it has settled every question (its ``settled`` ends the
    running searches)."""
    fanout, stop = _beside(fanout, companion), None if companion is None else companion.settled
    if deadline is None:
        _bab(network, box, state, None, fanout, say, None, stop, companion)
        return
    while _count_open(state) and not expired(deadline) and not (stop is not None and stop.is_set()):
        if not _bab(network, box, state, deadline, fanout, say, question_limit, stop, companion, nearest_first=True):
            return
        question_limit *= 2


def _beside(fanout: Fanout, companion: _Companion | None) -> Fanout:
    """``fanout`` with one thread fewer (at least one) while ``companion`` runs its sign solves on one."""
    return fanout if companion is None else replace(fanout, threads=max(1, fanout.threads - 1))


def _bab(network: Network, box: Box, state: _BoxState, deadline, fanout: Fanout, say: Progress,
         question_limit: float | None, stop: threading.Event | None = None, companion: _Companion | None = None,
         nearest_first: bool = False) -> int:
    """Branch and bound on every open question, layer by layer; proofs, and the bounds reached on the questions
    left open (``_tighten_undecided``), tighten the bounds of the layers above.
    Searches stopped by their limit are kept in ``state.suspended`` (at most MAX_SUSPENDED_BYTES) and resumed
    when the question is asked again. ``fanout.threads`` questions run at once in rounds of long questions
    (THREADED_QUESTION_SECONDS or no limit), one at a time in shorter ones. Returns how many questions their
    limit or the deadline stopped."""
    start = time.monotonic()
    long_questions = question_limit is None or question_limit >= THREADED_QUESTION_SECONDS
    threads = fanout.threads if long_questions else 1
    code = SETTLERS.index("bab")
    timed_out = 0
    for layer in range(len(network.hidden)):
        ask_max, ask_min = _open_questions(state, layer)
        if not (ask_max.any() or ask_min.any()):
            continue
        settled = _settled_bounds(state)
        # this layer's stopped searches leave state.suspended: bab_layer takes each out of resume as it goes on and
        # frees the ones its share of MAX_SUSPENDED_BYTES cannot keep during the round, not after it
        resume = {(neuron, sign): search for (at, neuron, sign), search in state.suspended.items()
                  if at == layer and (ask_max if sign > 0 else ask_min)[neuron]}
        state.suspended = {key: search for key, search in state.suspended.items() if key[0] != layer}
        elsewhere = sum(search.nbytes() for search in state.suspended.values())
        answers = bab_layer(network, box, settled, layer, ask_max=ask_max, ask_min=ask_min, deadline=deadline,
                            question_limit=question_limit, workers=fanout.workers, threads=threads,
                            parallel_map=fanout.parallel_map, device=fanout.device, progress=say, resume=resume,
                            stop=stop, suspended_budget=max(0, MAX_SUSPENDED_BYTES - elsewhere),
                            nearest_first=nearest_first)
        # within MAX_SUSPENDED_BYTES together: bab_layer kept this layer's within what the others left
        state.suspended = {**state.suspended, **{(layer, *key): search for key, search in answers.suspended.items()}}
        _mark_proved(state, layer, answers.proved_inactive, answers.proved_active, code)
        timed_out += answers.timed_out
        if len(answers.candidates):
            state.witnesses = record(network, state.witnesses, box.clip(answers.candidates))
            state.mark_unstable(code)
        state.bab = BabStats(
            questions=state.bab.questions + answers.questions, proved=state.bab.proved + answers.proved,
            witnessed=state.bab.witnessed + answers.witnessed, undecided=state.bab.undecided + answers.undecided,
            domains=state.bab.domains + answers.domains, seconds=state.bab.seconds + answers.seconds,
            device=resolve_device(fanout.device))
        tightened = _tighten_undecided(network, box, state, layer, answers.best_bounds)
        if answers.proved or tightened:  # the layers above get bounds from the newly settled or tightened ones
            state.bounds[: layer + 1] = _settled_bounds(state)[: layer + 1]
            _tighten_above(network, box, state, layer)
        if companion is not None:
            companion.drop_settled(state)
    state.seconds["bab"] = state.seconds.get("bab", 0.0) + time.monotonic() - start
    release_free_memory()  # the round's freed domains: each thread's arena kept up to the trim threshold
    return timed_out


def _tighten_above(network: Network, box: Box, state: _BoxState, layer: int) -> None:
    """Intersect the bounds of the layers above ``layer`` with those propagated from the settled bounds up to it
    (so that bounds tightened there before are kept), and apply the proofs they give."""
    above = bounds_mod.propagate(network, box, known=_settled_bounds(state)[: layer + 1])
    state.bounds[layer + 1:] = [old.intersect(new) for old, new in zip(state.bounds[layer + 1:], above[layer + 1:])]
    for higher in range(layer + 1, len(network.hidden)):
        _apply_bound_proofs(network, box, state, higher)


def _tighten_undecided(network: Network, box: Box, state: _BoxState, layer: int,
                       best_bounds: Mapping[tuple[int, int], float]) -> bool:
    """Intersect ``layer``'s bounds with the valid bounds branch and bound reached on the questions it left open
    (``g <= B`` for "can g be positive?", ``g >= -B`` for "can g be negative?"), so that the questions of the
    layers above, the MILPs' big-M values and the report use them. Returns whether a bound moved."""
    bounds = state.bounds[layer]
    lower, upper = np.full_like(bounds.lower, -np.inf), np.full_like(bounds.upper, np.inf)
    for (neuron, sign), bound in best_bounds.items():
        (upper if sign > 0 else lower)[neuron] = sign * bound
    tightened = bounds.intersect(LayerBounds(lower, upper))
    if np.array_equal(tightened.lower, bounds.lower) and np.array_equal(tightened.upper, bounds.upper):
        return False
    state.bounds[layer] = tightened
    _apply_bound_proofs(network, box, state, layer)
    return True


def _settled_bounds(state: _BoxState) -> list[LayerBounds]:
    """The bounds with every proven state applied (valid: ``U <= 0`` where stably inactive, ``L >= 0`` where
    stably active)."""
    return [bounds.settled(inactive, active)
            for bounds, inactive, active in zip(state.bounds, state.proved_inactive, state.proved_active)]


def _milp(network: Network, box: Box, state: _BoxState, deadline, fanout: Fanout, say: Progress) -> None:
    """After bounds and witnesses (``state``), the single MILP alone (what it leaves unsettled is undecided; if SCIP
    fails, nothing is claimed from it and its questions stay undecided: the result is partial, not failed)."""
    try:  # a finished solve leaves open only states in the tolerance band (undecided, not timed out)
        state.timed_out |= not _single_milp(network, box, state, deadline, say)
    except SolverError as error:
        state.policy = f"single MILP failed ({error.reason}); its {_count_open(state)} open questions stay undecided"


def _single_milp(network: Network, box: Box, state: _BoxState, deadline, say: Progress) -> bool:
    """One MILP over the whole network that harvests witnesses and proves the open states impossible."""
    start = time.monotonic()
    say(f"single MILP: {_count_open(state)} open sign questions")
    result = solve_network(network, box, state.bounds, state.witnesses, stably_inactive=state.proved_inactive,
                           stably_active=state.proved_active, deadline=deadline)
    state.stats = _add_stats(state.stats, SolverStats(
        solves=1, nodes=result.nodes, lp_iterations=result.lp_iterations, seconds=result.seconds,
        solutions_harvested=result.solutions_harvested, lp_points_harvested=result.lp_points_harvested,
        states_fixed=result.states_fixed, open_states=result.open_states, single_milp_finished=result.finished,
        dual_trace=list(result.dual_trace)))
    release_free_memory()  # what SCIP's search tree held
    state.witnesses = result.witnesses
    code = SETTLERS.index("single-milp")
    state.mark_unstable(code)
    for layer in range(len(state.bounds)):
        _mark_proved(state, layer, result.proved_inactive[layer], result.proved_active[layer], code)
    state.seconds["prove"] += time.monotonic() - start
    return result.finished


def _per_neuron_signs(network: Network, box: Box, state: _BoxState, deadline, fanout: Fanout, say: Progress,
                      rounds: Sequence[float | None] = (FIRST_ROUND_SOLVE_LIMIT, None)) -> list[str]:
    """Per-neuron sign solves with early stopping for every open question, layer by layer, one round per cap
    in ``rounds`` (seconds per solve; None: the time that is left). A capped round first keeps a few hard
    questions from starving the easy ones. Without ``workers`` processes, a layer's questions are solved in
    ``fanout.threads`` interleaved chunks in threads of this process (SCIP solves without the GIL). Returns the
    policy's lines on layers whose solves failed (``_prove_layer``)."""
    if fanout.workers == 1 and fanout.threads > 1:
        fanout = replace(fanout, workers=fanout.threads, parallel_map=thread_map)
    failures = []
    for layer in range(len(network.hidden)):
        for solve_limit in rounds:
            ask_max, ask_min = _open_questions(state, layer)
            if not (ask_max.any() or ask_min.any()):
                break
            failure = _prove_layer(network, box, state, layer, ask_max, ask_min, "sign", deadline, fanout, say,
                                   solve_limit)
            if failure is not None:
                failures.append(failure)
                break
    return failures


def _per_neuron(network: Network, box: Box, deadline, fanout: Fanout, say: Progress) -> _BoxState:
    """The baseline (Serra et al. 2020): two full MILPs per neuron, layer by layer, no sampling pre-filter."""
    start = time.monotonic()
    state = _new_state(network, box, bounds_mod.propagate(network, box))
    state.seconds["bounds"] += time.monotonic() - start
    failures = []
    for layer, width in enumerate(network.hidden_widths):
        _apply_term_signs(network, box, state, layer)  # exact signs no MILP margin can prove (a pruned neuron)
        everything = np.ones(width, bool)
        failures.append(_prove_layer(network, box, state, layer, everything, everything, "optimize", deadline,
                                     fanout, say))
    state.policy = "; ".join(failure for failure in failures if failure) or None
    return state


def _prove_layer(network, box, state: _BoxState, layer: int, ask_max, ask_min, mode, deadline, fanout: Fanout,
                 say: Progress, solve_limit: float | None = None) -> str | None:
    """Per-neuron MILPs of ``layer`` into ``state``. If they fail (``SolverError``: SCIP failed, or the net's scale
    is beyond what it solves reliably), nothing is claimed from them and their questions stay open; returns a line
    for the policy saying so, else None."""
    start = time.monotonic()
    try:
        solved = solve_layer(network, box, state.bounds, layer, ask_max=ask_max, ask_min=ask_min, mode=mode,
                             deadline=deadline, workers=fanout.workers, solve_limit=solve_limit,
                             parallel_map=fanout.parallel_map, progress=say)
    except SolverError as error:
        state.seconds["prove"] += time.monotonic() - start
        return f"per-neuron MILPs of hidden layer {layer} failed ({error.reason}); nothing taken from them"
    state.timed_out |= bool(solved.timed_out.any()) and solve_limit is None
    _absorb_solves(network, box, state, layer, solved)
    # Tighter bounds for this layer come from the dual bounds; the layers above are recomputed with them.
    tightened = LayerBounds(
        np.maximum(state.bounds[layer].lower, solved.lower), np.minimum(state.bounds[layer].upper, solved.upper)
    )
    state.bounds = bounds_mod.propagate(network, box, known=[*state.bounds[:layer], tightened])
    state.seconds["prove"] += time.monotonic() - start
    return None


def _absorb_solves(network: Network, box: Box, state: _BoxState, layer: int, solved: LayerSolve) -> None:
    """Per-neuron solves of ``layer`` into the state: counters, proofs (settler "per-neuron") and candidates,
    confirmed by ``record``."""
    state.stats = _add_stats(state.stats, SolverStats(
        solves=solved.solves, nodes=solved.nodes, lp_iterations=solved.lp_iterations, seconds=solved.seconds))
    code = SETTLERS.index("per-neuron")
    _mark_proved(state, layer, solved.proved_inactive, solved.proved_active, code)
    if len(solved.candidates):
        state.witnesses = record(network, state.witnesses, box.clip(solved.candidates))
        state.mark_unstable(code)


class _Companion:
    """Per-neuron sign solves in a thread of their own on the few questions ``auto`` has left (hardest first: the
    largest bound left relative to its interval), one at a time (first for COMPANION_CAPPED_SECONDS with the bound
    left on its pre-activation, then free with SCIP's separators aggressive and the wider proof margin, then, if that
    ended without settling it, free with the engine's settings), while ``auto`` goes on with branch and bound (one
    thread fewer meanwhile). SCIP solves without the GIL, so both sides run at once on a second CPU. Each side
    stops the other: ``settled`` is set once every question it was given is settled (branch and bound's rounds
    then end);
    ``drop_settled`` interrupts the solve of a question settled elsewhere and skips those not started;
    ``stop_and_join`` ends it. Its proofs are per-neuron MILP proofs on the whole box, valid whenever they arrive;
    its solutions are candidates, confirmed in float64 when absorbed."""

    def __init__(self, network: Network, box: Box, state: _BoxState, deadline: float | None):
        self.asked = _hardest_first(state)
        self.settled = threading.Event()
        self.solved: list[tuple[int, LayerSolve]] = []
        self.tried: list[str] = []
        self.error: SolverError | None = None
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self._stopping, self._dropped, self._current = False, set(), None
        self._question_stop = StopSignal()
        self.thread = threading.Thread(target=self._run, args=(network, box, list(state.bounds), deadline),
                                       daemon=True, name="exactcompress sign solves")
        self.thread.start()

    @classmethod
    def on_spare_thread(cls, network: Network, box: Box, state: _BoxState, deadline: float | None,
                        fanout: Fanout, most: int) -> "_Companion | None":
        """A running companion when 1 to ``most`` questions are open, ``fanout`` has a thread to
        spare and runs the questions in this process (``workers`` 1), and the hidden layers hold at most
        SIGN_SOLVES_FIRST_MAX_WEIGHTS nonzero weights (building a larger model takes seconds of the GIL); else
        None."""
        weights = sum(int(np.count_nonzero(layer.weight)) for layer in network.hidden)
        if (fanout.workers > 1 or fanout.threads < 2 or not 0 < _count_open(state) <= most
                or weights > SIGN_SOLVES_FIRST_MAX_WEIGHTS or expired(deadline)):
            return None
        return cls(network, box, state, deadline)

    def _run(self, network: Network, box: Box, bounds: list[LayerBounds], deadline: float | None) -> None:
        settled_all = True
        try:
            for layer, neuron, sign in self.asked:
                with self._lock:
                    if self._stopping:
                        return
                    if (layer, neuron, sign) in self._dropped:
                        continue
                    self._current, self._question_stop = (layer, neuron, sign), StopSignal()
                ask = np.zeros(network.hidden_widths[layer], bool)
                ask[neuron] = True
                none = np.zeros_like(ask)
                attempts = []
                for given, solve_limit, aggressive, how in (
                        (bounds, COMPANION_CAPPED_SECONDS, False, "with its bound"),
                        (bounds[:layer], None, True, "free, separators aggressive"),
                        (bounds[:layer], None, False, "free")):
                    solved = solve_layer(network, box, given, layer, ask_max=ask if sign > 0 else none,
                                         ask_min=none if sign > 0 else ask, mode="sign", deadline=deadline,
                                         solve_limit=solve_limit, stop=self._question_stop,
                                         aggressive_separation=aggressive)
                    self.solved.append((layer, solved))
                    answer = _answer(network, layer, neuron, sign, solved)
                    answered = answer is not None
                    with self._lock:
                        elsewhere, stopping = (layer, neuron, sign) in self._dropped, self._stopping
                    ended = answer or ("stopped (settled elsewhere, or the steps ended)" if elsewhere or stopping
                                       else "open")
                    attempts.append(f"{solved.seconds:.1f} s {how} → {ended}")
                    if answered or elsewhere or stopping or expired(deadline):
                        break
                question = "active?" if sign > 0 else "inactive?"
                self.tried.append(f"layer {layer + 1} neuron {neuron} {question} {', then '.join(attempts)}")
                with self._lock:
                    self._current = None
                settled_all &= elsewhere or answered
        except SolverError as error:  # nothing is claimed from a failed solve
            self.error, settled_all = error, False
        except BaseException as error:  # any other failure is raised again in the analysing thread (``absorb``)
            self.failure, settled_all = error, False
        if settled_all:
            self.settled.set()

    def drop_settled(self, state: _BoxState) -> None:
        """Skip the questions that ``state`` no longer has open, interrupting the one being solved."""
        gone = {(layer, neuron, sign) for layer, neuron, sign in self.asked
                if not _open_questions(state, layer)[0 if sign > 0 else 1][neuron]}
        with self._lock:
            self._dropped |= gone
            if self._current in gone:
                self._question_stop.set()

    def wait(self) -> None:
        """Until the solves end by themselves (every question settled, or the deadline)."""
        self.thread.join()

    def stop_and_join(self) -> None:
        """End the solves: the signal is repeated until the thread has ended (``StopSignal``)."""
        while self.thread.is_alive():
            with self._lock:
                self._stopping = True
                self._question_stop.set()
            self.thread.join(0.05)

    def absorb(self, network: Network, box: Box, state: _BoxState) -> str:
        """Merge the finished solves into ``state``; returns a line for the policy. Raises what made the thread
        fail, other than a SolverError (reported in the line)."""
        if self.failure is not None:
            raise self.failure
        open_before = _count_open(state)
        for layer, solved in self.solved:
            _absorb_solves(network, box, state, layer, solved)
            state.bounds[layer] = state.bounds[layer].intersect(LayerBounds(solved.lower, solved.upper))
            _apply_bound_proofs(network, box, state, layer)
            _tighten_above(network, box, state, layer)
        outcome = f"failed ({self.error.reason}); " if self.error is not None else ""
        tried = f" [{'; '.join(self.tried)}]" if self.tried else ""
        return (f"the spare thread's sign solves: {outcome}{open_before - _count_open(state)} settled there first"
                f"{tried}")


def _hardest_first(state: _BoxState) -> list[tuple[int, int, int]]:
    """The open questions (layer, neuron, sign), the largest bound left on ``sign * g`` relative to the neuron's
    interval first."""
    keyed = []
    for layer, bounds in enumerate(state.bounds):
        relative = (bounds.upper / np.maximum(bounds.upper - bounds.lower, 1e-12),
                    -bounds.lower / np.maximum(bounds.upper - bounds.lower, 1e-12))
        for sign, mask, left in zip((1, -1), _open_questions(state, layer), relative):
            keyed += [(-float(left[neuron]), layer, int(neuron), sign) for neuron in np.flatnonzero(mask)]
    return [(layer, neuron, sign) for _, layer, neuron, sign in sorted(keyed)]


def _answer(network: Network, layer: int, neuron: int, sign: int, solved: LayerSolve) -> str | None:
    """How ``solved`` settles the question, in words: "proved", or "a witness" (a candidate whose float64
    pre-activation shows the sign beyond WITNESS_MARGIN); None if it does not."""
    if (solved.proved_inactive if sign > 0 else solved.proved_active)[neuron]:
        return "proved"
    if len(solved.candidates) and np.any(
            sign * network.preactivations(solved.candidates)[layer][:, neuron] > WITNESS_MARGIN):
        return "a witness"
    return None


def _combine(network: Network, per_box: Sequence[_BoxState]) -> Analysis:
    """Union semantics over boxes; raises SoundnessError if a proof and a witness contradict each other.

    A neuron's settler is the step that settled it in a box whose own verdict agrees with the union's (a
    neuron unstable on the union only through witnesses of different boxes is settled by "witnesses")."""
    witnesses = per_box[0].witnesses
    for state in per_box[1:]:
        witnesses = record(network, witnesses, state.witnesses.points).with_range_of(state.witnesses)
    active, inactive, unstable, undecided, settled = [], [], [], [], []
    for layer, width in enumerate(network.hidden_widths):
        is_inactive = np.logical_and.reduce([s.proved_inactive[layer] for s in per_box])
        is_active = np.logical_and.reduce([s.proved_active[layer] for s in per_box]) & ~is_inactive
        has_positive = witnesses.positive[layer] >= 0
        has_negative = witnesses.negative[layer] >= 0
        if np.any(is_inactive & has_positive) or np.any(is_active & has_negative):
            bad = np.flatnonzero((is_inactive & has_positive) | (is_active & has_negative)).tolist()
            raise SoundnessError(f"hidden layer {layer}", f"neurons {bad} are proven stable and witnessed unstable")
        is_unstable = has_positive & has_negative
        is_undecided = ~(is_inactive | is_active | is_unstable)
        codes = np.full(width, -1)
        for state in per_box:  # the step that settled a neuron in the last box whose verdict is the union's
            agrees = ((state.proved_inactive[layer] & is_inactive) | (state.proved_active[layer] & is_active)
                      | (state.witnesses.unstable(layer) & is_unstable))
            codes = np.where(agrees & (state.settled_by[layer] >= 0), state.settled_by[layer], codes)
        codes = np.where(is_unstable & (codes < 0), SETTLERS.index("witnesses"), codes)
        active.append(is_active)
        inactive.append(is_inactive)
        unstable.append(is_unstable)
        undecided.append(is_undecided)
        settled.append(codes)
    seconds = {key: sum(s.seconds.get(key, 0.0) for s in per_box)
               for key in dict.fromkeys(key for s in per_box for key in s.seconds)}
    bab = BabStats(**{name: sum(getattr(s.bab, name) for s in per_box)
                      for name in ("questions", "proved", "witnessed", "undecided", "domains", "seconds")},
                   device=next((s.bab.device for s in per_box if s.bab.device), None))
    stats = SolverStats()
    for state in per_box:
        stats = _add_stats(stats, state.stats)
    policies = list(dict.fromkeys(s.policy for s in per_box if s.policy))
    hull = tuple(LayerBounds(np.min([s.bounds[layer].lower for s in per_box], axis=0),
                             np.max([s.bounds[layer].upper for s in per_box], axis=0))
                 for layer in range(len(network.hidden_widths)))
    return Analysis(
        tuple(active), tuple(inactive), tuple(unstable), tuple(undecided), tuple(settled),
        witnesses, stats, hull, bab, seconds, any(s.timed_out for s in per_box), "; ".join(policies) or None,
    )
