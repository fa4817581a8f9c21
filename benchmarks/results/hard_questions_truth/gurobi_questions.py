"""Gurobi (one thread) on single sign questions "max g_j" of one hidden layer, to learn each question's true
answer and how long a commercial solver needs for it.

    python gurobi_questions.py MODEL --layer 1 --neurons 89 122 --limit 600

The MILP is the per-neuron baseline's (benchmarks/gurobi_per_neuron.py): big-M from the exact interval bounds
of layer 0 (box [0, 1]); layer 1 only. Prints, per neuron, Gurobi's incumbent (re-checked in a float64 forward
pass), its dual bound, seconds and nodes, and the incumbent's value over time.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import gurobi_per_neuron as gpn  # noqa: E402
from exactcompress.io import load_network  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("--layer", type=int, default=1)
parser.add_argument("--neurons", type=int, nargs="+", required=True)
parser.add_argument("--limit", type=float, default=600)
args = parser.parse_args()
network, _ = load_network(Path(args.model))
d = network.input_dim
lo, hi = np.zeros(d), np.ones(d)
first = network.hidden[0]
bounds = [tuple(gpn.widen(b, s) for b, s in zip(
    gpn.interval_bounds(first.weight, first.bias, lo, hi), (-1, 1)))]
env = gpn.new_env()
model, x_vars, g = gpn.build_layer_model(env, network, lo, hi, bounds, args.layer)
print(f"{Path(args.model).stem} layer {args.layer}: {model.NumVars} variables, {model.NumIntVars} binaries", flush=True)
for neuron in args.neurons:
    trace = []

    def callback(m, where):
        if where == gpn.GRB.Callback.MIPSOL:
            trace.append((round(m.cbGet(gpn.GRB.Callback.RUNTIME), 1), m.cbGet(gpn.GRB.Callback.MIPSOL_OBJ)))

    model.Params.TimeLimit = args.limit
    model.setObjective(g[neuron], gpn.GRB.MAXIMIZE)
    start = time.monotonic()
    model.optimize(callback)
    seconds = time.monotonic() - start
    x = np.array([v.X for v in x_vars]) if model.SolCount else None
    checked = (network.preactivations(np.clip(x, lo, hi)[None, :])[args.layer][0, neuron]
               if x is not None else float("nan"))
    print(f"neuron {neuron}: status {model.Status} ({'optimal' if model.Status == 2 else 'time limit'}), "
          f"incumbent {model.ObjVal if model.SolCount else float('nan'):.6f} (float64 forward {checked:.6f}), "
          f"dual bound {model.ObjBound:.6f}, {seconds:.1f} s, {int(model.NodeCount)} nodes; "
          f"incumbents over time {trace[-6:]}", flush=True)
