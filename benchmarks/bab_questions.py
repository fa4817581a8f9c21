"""Branch and bound on the open questions of one hidden layer, one question at a time, each under a time limit.

    python benchmarks/bab_questions.py out/bench_zoo/d64-2x100-l1_0.pt --layer 1 --limit 60 [--neurons 8 78]
        [--lower 0 --upper 1] [--steps 40] [--json out.json]

The questions are those ``auto`` hands to branch and bound: after bounds and the engine's witness stage, every
"can neuron j of this layer be positive?" (``--sign 1``, the default) or "... negative?" (``--sign -1``) that
neither settled, with the box bounds of the layers below (no earlier proofs applied). For each question it
prints the verdict, the domains bounded, the seconds and the best valid bound on ``sign * g`` when open. One
process, one thread (``torch.set_num_threads(1)``), so two runs of it compare side by side on a 2-core machine.
This is the tool behind the per-question figures in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from exactcompress.allocator import tune_allocator
from exactcompress.engine import analyze as analyze_module
from exactcompress.engine.progress import ignore
from exactcompress.engine.prove import bab
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.tolerances import BOUND_MARGIN, WITNESS_MARGIN


def open_questions(network, box, layer: int, sign: int) -> tuple[list[int], list]:
    """Neurons of ``layer`` whose sign question (``sign``) bounds and the witness stage leave open, as ``auto``
    finds them (its own first steps), and the bounds of every layer."""
    state = analyze_module._bounds_and_witnesses(network, box, None, None, np.random.default_rng(0), ignore)
    ask_max, ask_min = analyze_module._open_questions(state, layer)
    return [int(j) for j in np.flatnonzero(ask_max if sign > 0 else ask_min)], state.bounds


def question_setup(model: Path, layer: int, sign: int = 1, lower: float = 0.0, upper: float = 1.0):
    """(questions, network, box, below) for branch and bound on ``layer``'s sign questions (``sign``) of ``model`` on
    the box ``[lower, upper]^d``: ``open_questions``' neurons, and ``below`` the (lower, upper) bounds of the layers
    under ``layer`` as ``auto`` finds them."""
    network, _ = load_network(Path(model))
    box = scalar_box(lower, upper).broadcast(network.input_dim).boxes[0]
    questions, layer_bounds = open_questions(network, box, layer, sign)
    return questions, network, box, [(b.lower, b.upper) for b in layer_bounds[:layer]]


def hidden_layers(network, layer: int) -> tuple[list, list]:
    """(weights, biases) of the hidden layers up to ``layer``, as ``bab.prove_sign`` takes them."""
    hidden = network.hidden[: layer + 1]
    return [h.weight for h in hidden], [h.bias for h in hidden]


def ask(network, box, below, layer: int, questions, sign: int, limit: float, steps: int = bab.STEPS) -> list[dict]:
    """Branch and bound on each question (a neuron of ``layer``, sign ``sign``) under ``limit`` seconds, with
    ``below`` the (lower, upper) bounds of the layers under it; prints and returns one row per question."""
    weights, biases = hidden_layers(network, layer)
    rows = []
    for neuron in questions:
        result = bab.prove_sign(weights, biases, box.lower, box.upper, below, layer, neuron, sign,
                                margin=BOUND_MARGIN, witness_margin=WITNESS_MARGIN,
                                deadline=time.monotonic() + limit, seed=neuron, steps=steps)
        rows.append({"neuron": neuron, "status": result.status, "domains": result.domains,
                     "seconds": round(result.seconds, 2),
                     "best_bound": None if result.status != "undecided" else round(result.best_bound, 4)})
        print(f"  {neuron:5d}  {result.status:9s}  {result.domains:7d} domains  {result.seconds:7.1f} s"
              + (f"  bound {result.best_bound:.3f}" if result.status == "undecided" else ""), flush=True)
    return rows


def summarise(rows: list[dict]) -> None:
    """One line: questions proved, witnessed and left open, domains and seconds in all."""
    proved = sum(row["status"] == "proved" for row in rows)
    witnessed = sum(row["status"] == "witness" for row in rows)
    print(f"proved {proved}, witnessed {witnessed}, undecided {len(rows) - proved - witnessed}; "
          f"{sum(row['domains'] for row in rows)} domains in {sum(row['seconds'] for row in rows):.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a model file exactcompress reads (.pt state dict, .onnx, ...)")
    parser.add_argument("--layer", type=int, required=True, help="hidden layer of the questions (0 = first)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per question")
    parser.add_argument("--neurons", type=int, nargs="+", help="only these neurons (default: every open one)")
    parser.add_argument("--sign", type=int, choices=(1, -1), default=1, help="1: can it be positive? -1: negative?")
    parser.add_argument("--lower", type=float, default=0.0, help="lower bound of every input")
    parser.add_argument("--upper", type=float, default=1.0, help="upper bound of every input")
    parser.add_argument("--steps", type=int, default=bab.STEPS, help="Adam steps per batch of domains")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    tune_allocator()
    torch.set_num_threads(1)
    questions, network, box, below = question_setup(args.model, args.layer, args.sign, args.lower, args.upper)
    questions = args.neurons or questions
    print(f"{args.model.name}: layer {args.layer}, sign {args.sign:+d}, {len(questions)} questions, "
          f"{args.limit:g} s each")
    rows = ask(network, box, below, args.layer, questions, args.sign, args.limit, args.steps)
    summarise(rows)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "layer": args.layer, "sign": args.sign,
                                         "limit_s": args.limit, "steps": args.steps, "questions": rows}, indent=1))


if __name__ == "__main__":
    main()
