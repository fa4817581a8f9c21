"""Numerical thresholds every decision depends on; recorded in each report (``Tolerances``)."""

from __future__ import annotations

from .schema import Tolerances

#: a witness x shows a sign s of neuron i only if s * g_i(x) > WITNESS_MARGIN (float64 forward pass)
WITNESS_MARGIN = 1e-9
#: a bound proves stability only if U <= -BOUND_MARGIN (inactive) or L >= BOUND_MARGIN (active)
BOUND_MARGIN = 1e-9
#: a MILP proves stability of neuron j only if its dual bound on max g_j (min g_j) is <= -m_j (>= m_j), with
#: m_j = max(MILP_MARGIN, MILP_RELATIVE_MARGIN * size_j) and size_j = |b_j| + sum_i |W_ji| max(|lo_i|, |hi_i|) the
#: largest value the terms of its row can add up to over the bounds [lo, hi] of its inputs
#: (``prove.encoding.proof_margins``); dual bounds reused as big-M are widened by m_j + MILP_MARGIN * |bound|.
#: SCIP solves in floating point with tolerances relative to its rows: on a 784-input question whose row has size
#: 29.6, its dual bounds were up to 6.4e-6 below a value that a float64-checked input reaches, and with more root
#: cuts kept it declared "g >= -1e-6" infeasible where the maximum is +1.7e-5 (``benchmarks/README.md``, "MILP
#: proofs clear a margin scaled to the row"). 1e-6 * size (3e-5 there) is 4.6x the largest error seen with the
#: engine's settings; with more root cuts than the engine keeps SCIP still erred by 1.6e-6 of the size once in 8
#: solves (1e-5 * size covered that too, but cost the ``milp`` method 5 proofs of a 3072-input net)
MILP_MARGIN = 1e-6
MILP_RELATIVE_MARGIN = 1e-6
#: the relative factor of m_j in a solve whose SCIP separators are set to aggressive (``auto``'s free sign solves
#: on a spare thread): with more root cuts and the ideal ReLU cuts SCIP's dual bounds on the false-proof question
#: were wrong by up to 1.6e-6 of the row's size (a dual bound of -2.9e-5 where the maximum is +1.7e-5, size 29.6);
#: at 1e-5 * size, 6x that, its replays gave no false claim (``benchmarks/README.md``, "Aggressive separation with a
#: wider margin")
MILP_AGGRESSIVE_RELATIVE_MARGIN = 1e-5
#: SCIP's primal and dual feasibility tolerances (the dual one is SCIP's default: SoPlex without GMP clamps
#: its LP tolerances at 1e-10, which SCIP reaches from 1e-7 when it tightens them by 1e-3 on resolves)
SCIP_FEASTOL = 1e-9
SCIP_DUALFEASTOL = 1e-7
#: the valid bounds [L, U] on a pre-activation that a MILP states as its variable's bounds are widened outward by
#: SCIP_BOUND_PAD * (1 + |bound|) (looser bounds stay valid; the big-M rows keep the exact L and U). SCIP counts
#: values within its epsilon (1e-9) as equal: given a layer of neurons that are constants near 1e-10 with bounds
#: only 2e-12 wide, its presolve declared a whole model infeasible (found by ``benchmarks/soundness_fuzz.py``,
#: seed 16); a sign solve reads an infeasible model under its hypothesis as a proof
SCIP_BOUND_PAD = 1e-8
#: no MILP is built (its questions are left to branch and bound, or undecided) where an encoded weight exceeds
#: MILP_MAX_WEIGHT or a bound of the box or of an encoded pre-activation exceeds MILP_MAX_BOUND in magnitude:
#: with first-layer weights of 1e6 and 1e7 SCIP's presolve and LP lost thin regions of the box (a neuron whose
#: minimum is -1e-8 "proved" >= +0.076, a hypothesis that a point satisfies declared infeasible), far beyond any
#: margin; 1e3 is clean in every fuzz run (``docs/method.md``, Tolerances)
MILP_MAX_WEIGHT = 1e5
MILP_MAX_BOUND = 1e9
#: singular values below RANK_RTOL * s_max count as zero when folding stably active neurons
RANK_RTOL = 1e-10
#: a fold is applied only if max |W_D - K W_I| <= FOLD_ATOL * (1 + max |W|)
FOLD_ATOL = 1e-9
#: verification passes when every |y - y'| <= VERIFY_TOLERANCE * (1 + |y|)
VERIFY_TOLERANCE = 1e-6
#: every computed bound is widened outward by ROUNDING_WIDENING * (1 + |bound| + magnitude), where magnitude
#: bounds the size of the terms summed (``engine.bounds.concretise``): a guard against float64 rounding
ROUNDING_WIDENING = 1e-12
#: a MILP solution counts as a witness candidate for sign s only where s * g_i >= SIGN_PRIMAL_THRESHOLD (sign
#: solves stop there; the single MILP's witness branch demands it). The MILP's g_i may differ from the float64
#: forward pass at the same x by about feastol times the big-M constants (1e-9 * |M| * |W|, far below 1e-4 for
#: the nets handled here), so such a point re-checks with s * g > WITNESS_MARGIN; if it does not, nothing is
#: lost (a sign solve is rerun without the limit; the single MILP keeps the state open)
SIGN_PRIMAL_THRESHOLD = 1e-4


def record() -> Tolerances:
    """Every threshold above, as recorded in ``report.json``."""
    return Tolerances(
        witness_margin=WITNESS_MARGIN,
        bound_margin=BOUND_MARGIN,
        milp_margin=MILP_MARGIN,
        milp_relative_margin=MILP_RELATIVE_MARGIN,
        milp_aggressive_relative_margin=MILP_AGGRESSIVE_RELATIVE_MARGIN,
        scip_feastol=SCIP_FEASTOL,
        scip_dualfeastol=SCIP_DUALFEASTOL,
        scip_bound_pad=SCIP_BOUND_PAD,
        rank_rtol=RANK_RTOL,
        fold_atol=FOLD_ATOL,
        rounding_widening=ROUNDING_WIDENING,
        sign_primal_threshold=SIGN_PRIMAL_THRESHOLD,
        verify_tolerance=VERIFY_TOLERANCE,
    )
