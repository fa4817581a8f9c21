"""The 2020 per-neuron baseline (Serra et al.) in Gurobi: two MILPs per hidden neuron, layer by layer.

    python benchmarks/gurobi_per_neuron.py MODEL --out DIR --time-limit SEC [--lower 0 --upper 1]

For hidden layer ``k`` one big-M MILP is built over the box ``[lower, upper]^d`` (inputs ``x``, hidden layers
``0 .. k-1`` in the big-M formulation, layer ``k``'s pre-activations ``g`` free), and ``max g_i`` and
``min g_i`` are solved to optimality for every neuron ``i`` of the layer, as the reference code does (no
sampling pre-filter, no early stop once the sign is settled). The big-M bounds of hidden layer 0 are its
interval bounds (exact on a box); those of layer ``k >= 1`` are the MILP optima (Gurobi's dual bound
``ObjBound``) of layer ``k``, widened by ``1e-6 * (1 + |b|)``. Earlier neurons with ``U <= 0`` get ``h = 0``,
with ``L >= 0`` ``h = g``, the others a binary.

A neuron is stably inactive when its max is ``<= -1e-6``, stably active when its min is ``>= 1e-6``, unstable
when the solutions of its two solves show both signs in a float64 forward pass (``|g| > 1e-9``), else
undecided; a solve cut by the time limit leaves it undecided. The time limit is the whole run's budget
(from the start of ``main``); each solve gets what is left of it. Gurobi: OutputFlag 0, Threads 1,
FeasibilityTol 1e-9, IntFeasTol 1e-9.

Writes ``DIR/report.json`` with the fields ``milp_vs_per_neuron.py`` reads from an exactcompress report
(status exact | partial | failed, time_limit_reached, seconds.total, layers[] with the neuron index lists
stably_active / stably_inactive / unstable / undecided, milp.solves / milp.nodes, versions, error). It proves
stability only; it writes no compressed network. Under a size-limited Gurobi licence (the one pip installs:
2000 variables, 2000 linear constraints) a model whose MILP would be larger is refused before it is solved:
status failed, error ``over licence (size-limited Gurobi licence: N variables > 2000)``. Exit status 0 unless
the status is failed (1).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from exactcompress import __version__ as exactcompress_version
from exactcompress.io import load_network

try:
    import gurobipy as gp
    from gurobipy import GRB
except ImportError:  # the benchmark marks the method "not installed"; run directly, this writes a failed report
    gp = None
    GRB = None

METHOD = "gurobi-per-neuron"
#: a MILP optimum proves stability only if max g <= -MARGIN (inactive) or min g >= MARGIN (active); optima reused as
#: big-M are widened by MARGIN * (1 + |bound|) (exactcompress.tolerances.MILP_MARGIN)
MARGIN = 1e-6
#: a solution shows a sign s of the neuron only if s * g > WITNESS_MARGIN in a float64 forward pass
WITNESS_MARGIN = 1e-9
#: Gurobi's feasibility and integrality tolerances
FEASIBILITY_TOL = 1e-9
#: the size-limited licence that ``pip install gurobipy`` brings: at most this many variables and linear constraints
SIZE_LIMIT = 2000
#: GRB.Error.SIZE_LIMIT_EXCEEDED
SIZE_LIMIT_ERROR = 10010


class OverLicence(Exception):
    """The MILP of some layer is larger than the size-limited licence allows."""

    def __init__(self, variables: int, constraints: int, limit: int):
        self.variables, self.constraints, self.limit = variables, constraints, limit
        what = (f"{variables} variables > {limit}" if variables > limit
                else f"{constraints} linear constraints > {limit}")
        super().__init__(f"over licence (size-limited Gurobi licence: {what})")


# -------------------------------------------------------------------------------------------- Gurobi


def new_env():
    """A started Gurobi environment with the banner and log off."""
    env = gp.Env(empty=True)
    env.setParam("OutputFlag", 0)
    env.start()
    return env


def size_limit(env) -> int | None:
    """``SIZE_LIMIT`` if the licence in use is size-limited (a model of SIZE_LIMIT + 1 variables is refused), else None."""
    probe = gp.Model(env=env)
    try:
        probe.addVars(SIZE_LIMIT + 1)
        probe.optimize()
    except gp.GurobiError as error:
        if error.errno == SIZE_LIMIT_ERROR:
            return SIZE_LIMIT
        raise
    finally:
        probe.dispose()
    return None


def model_size(input_dim: int, widths: Sequence[int], unstable: Sequence[int]) -> tuple[int, int]:
    """(variables, linear constraints) of the MILP of hidden layer ``len(unstable)``: ``x``, each earlier layer's
    ``g`` and, per neuron with a binary, ``h`` and ``z``; the target layer's ``g``. Constraints: one definition
    per ``g``, three per binary."""
    layer = len(unstable)
    variables = input_dim + sum(widths[: layer + 1]) + 2 * sum(unstable)
    constraints = sum(widths[: layer + 1]) + 3 * sum(unstable)
    return variables, constraints


def _add_affine(model, weight: np.ndarray, bias: np.ndarray, inputs: list, lower, upper) -> list:
    """Variables ``g = weight @ inputs + bias`` within ``[lower, upper]``; ``inputs`` may hold None (= 0)."""
    columns = [j for j, var in enumerate(inputs) if var is not None]
    kept = [inputs[j] for j in columns]
    g = []
    for i in range(weight.shape[0]):
        var = model.addVar(lb=float(lower[i]), ub=float(upper[i]))
        row = weight[i, columns]
        nonzero = np.flatnonzero(row)
        expression = gp.LinExpr([float(row[j]) for j in nonzero], [kept[j] for j in nonzero])
        model.addLConstr(var - expression, GRB.EQUAL, float(bias[i]))
        g.append(var)
    return g


def _add_relus(model, g: list, lower: np.ndarray, upper: np.ndarray) -> list:
    """``h = relu(g)`` in big-M form; None (= 0) where ``U <= 0``, ``g`` itself where ``L >= 0``."""
    h = []
    for i, var in enumerate(g):
        low, up = float(lower[i]), float(upper[i])
        if up <= 0.0:
            h.append(None)
        elif low >= 0.0:
            h.append(var)
        else:
            out = model.addVar(lb=0.0, ub=up)
            active = model.addVar(vtype=GRB.BINARY)
            model.addLConstr(out - var, GRB.GREATER_EQUAL, 0.0)
            model.addLConstr(out - var - low * active, GRB.LESS_EQUAL, -low)  # h <= g - L (1 - z)
            model.addLConstr(out - up * active, GRB.LESS_EQUAL, 0.0)  # h <= U z
            h.append(out)
    return h


def build_layer_model(env, network, lower_box, upper_box, bounds: Sequence[tuple[np.ndarray, np.ndarray]], layer: int):
    """(model, x, g): the MILP whose ``g`` are hidden layer ``layer``'s pre-activations over the box;
    ``bounds[k]`` (k < layer) are valid (lower, upper) bounds on hidden layer k (the big-M)."""
    model = gp.Model(env=env)
    model.Params.OutputFlag = 0
    model.Params.Threads = 1
    model.Params.FeasibilityTol = FEASIBILITY_TOL
    model.Params.IntFeasTol = FEASIBILITY_TOL
    x = [model.addVar(lb=float(lo), ub=float(up)) for lo, up in zip(lower_box, upper_box)]
    h: list = list(x)
    for k in range(layer):
        affine = network.hidden[k]
        g = _add_affine(model, affine.weight, affine.bias, h, *bounds[k])
        h = _add_relus(model, g, *bounds[k])
    affine = network.hidden[layer]
    free = np.full(affine.out_features, np.inf)
    g = _add_affine(model, affine.weight, affine.bias, h, -free, free)
    model.update()
    return model, x, g


# --------------------------------------------------------------------------------------------- the run


def interval_bounds(weight: np.ndarray, bias: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact bounds of ``weight @ h + bias`` over the box ``[lower, upper]`` (up to rounding)."""
    positive, negative = np.maximum(weight, 0.0), np.minimum(weight, 0.0)
    return positive @ lower + negative @ upper + bias, positive @ upper + negative @ lower + bias


def widen(bound: np.ndarray, sense: int) -> np.ndarray:
    return bound + sense * MARGIN * (1.0 + np.abs(bound))


def _solve(model, x_vars, objective, sense: int, time_left: float) -> tuple[str, float | None, np.ndarray | None, int]:
    """One solve of ``max`` (sense +1) or ``min`` (-1) ``objective``: (outcome, bound, x, nodes).

    outcome "optimal" (bound: the dual bound, a valid bound on the objective), "timeout" (bound None) or
    "skipped" (no time left)."""
    if time_left <= 0:
        return "skipped", None, None, 0
    model.Params.TimeLimit = time_left
    model.setObjective(objective, GRB.MAXIMIZE if sense > 0 else GRB.MINIMIZE)
    try:
        model.optimize()
    except gp.GurobiError as error:
        if error.errno == SIZE_LIMIT_ERROR:
            raise OverLicence(model.NumVars, model.NumConstrs, SIZE_LIMIT) from None
        raise
    status = model.Status
    nodes = int(model.NodeCount) if model.IsMIP else 0
    x = np.array([var.X for var in x_vars]) if model.SolCount > 0 else None
    if status == GRB.OPTIMAL:
        return "optimal", float(model.ObjBound if model.IsMIP else model.ObjVal), x, nodes
    if status == GRB.TIME_LIMIT:
        return "timeout", None, x, nodes
    raise RuntimeError(f"Gurobi ended with status {status} on a non-empty box: no bound can be trusted")


def classify(network, lower_box: np.ndarray, upper_box: np.ndarray, deadline: float, env, limit: int | None) -> dict:
    """Two MILPs per hidden neuron, layer by layer; returns layers (index lists), timed_out, solves, nodes, largest model."""
    widths = list(network.hidden_widths)
    if limit is not None:  # smallest possible MILP of the last layer: every earlier neuron settled
        variables, constraints = model_size(network.input_dim, widths, [0] * (len(widths) - 1))
        if max(variables, constraints) > limit:
            raise OverLicence(variables, constraints, limit)
    bounds: list[tuple[np.ndarray, np.ndarray]] = []
    unstable_counts: list[int] = []
    layers = []
    solves = nodes = 0
    timed_out = False
    largest = (0, 0)
    below = (lower_box, upper_box)  # valid bounds on the inputs of the current layer
    for layer, width in enumerate(widths):
        affine = network.hidden[layer]
        interval = [np.array(b) for b in interval_bounds(affine.weight, affine.bias, *below)]
        variables, constraints = model_size(network.input_dim, widths, unstable_counts)
        largest = max(largest, (variables, constraints))
        if limit is not None and max(variables, constraints) > limit:
            raise OverLicence(variables, constraints, limit)
        model, x_vars, g = build_layer_model(env, network, lower_box, upper_box, bounds, layer)
        try:
            upper, lower = np.full(width, np.nan), np.full(width, np.nan)
            shows = np.zeros((width, 2), dtype=bool)
            cut = np.zeros(width, dtype=bool)
            for neuron in range(width):
                for column, sense in enumerate((1, -1)):
                    outcome, bound, x, more_nodes = _solve(model, x_vars, g[neuron], sense, deadline - time.monotonic())
                    solves += outcome != "skipped"
                    nodes += more_nodes
                    if outcome != "optimal":
                        cut[neuron] = True
                        timed_out = True
                    else:
                        (upper if sense > 0 else lower)[neuron] = bound
                    if x is not None:
                        value = network.preactivations(np.clip(x, lower_box, upper_box)[None, :])[layer][0, neuron]
                        shows[neuron, column] = sense * value > WITNESS_MARGIN
        finally:
            model.dispose()
        inactive = ~np.isnan(upper) & (upper <= -MARGIN)
        active = ~np.isnan(lower) & (lower >= MARGIN) & ~inactive
        unstable = ~(inactive | active) & shows.all(axis=1)
        undecided = ~(inactive | active | unstable)
        layers.append({"index": layer, "width": width,
                       **{key: np.flatnonzero(mask).tolist() for key, mask in (
                           ("stably_active", active), ("stably_inactive", inactive),
                           ("unstable", unstable), ("undecided", undecided))}})
        # big-M of this layer for the layers above: interval bounds on layer 0 (exact on a box), the widened
        # MILP optima on the others (the interval bound where a solve was cut)
        if layer == 0:
            low, up = widen(interval[0], -1), widen(interval[1], 1)
        else:
            low = np.where(np.isnan(lower), interval[0], np.maximum(interval[0], widen(np.nan_to_num(lower), -1)))
            up = np.where(np.isnan(upper), interval[1], np.minimum(interval[1], widen(np.nan_to_num(upper), 1)))
        bounds.append((low, up))
        unstable_counts.append(int(np.sum((low < 0.0) & (up > 0.0))))
        below = (np.maximum(low, 0.0), np.maximum(up, 0.0))
    return {"layers": layers, "timed_out": timed_out, "solves": solves, "nodes": nodes,
            "largest_model": {"variables": largest[0], "constraints": largest[1]}}


def versions() -> dict:
    found = {"exactcompress": exactcompress_version, "python": platform.python_version(), "numpy": np.__version__}
    if gp is not None:
        found["gurobipy"] = gp.__version__
        found["gurobi"] = ".".join(map(str, gp.gurobi.version()))
    return found


def run(model_path: Path, lower: float, upper: float, time_limit: float, start: float) -> dict:
    """The report of one run (never raises for a bad model, a missing gurobipy or an over-licence model: status failed)."""
    report = {"method": METHOD, "model_path": str(model_path), "domain": {"lower": lower, "upper": upper},
              "time_limit_s": time_limit, "time_limit_reached": False, "versions": versions(), "layers": [],
              "error": None, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    seconds = {}
    try:
        if gp is None:
            raise RuntimeError("gurobipy is not installed (pip install gurobipy)")
        network, _ = load_network(model_path)
        seconds["load"] = time.monotonic() - start
        lower_box = np.full(network.input_dim, float(lower))
        upper_box = np.full(network.input_dim, float(upper))
        env = new_env()
        try:
            limit = size_limit(env)
            report["licence"] = {"size_limited": limit is not None, "limit": limit}
            result = classify(network, lower_box, upper_box, start + time_limit, env, limit)
        finally:
            env.dispose()
    except OverLicence as error:
        report.update(status="failed", error=str(error), error_kind="over_licence",
                      licence={"size_limited": True, "limit": error.limit,
                               "variables": error.variables, "constraints": error.constraints})
    except Exception as error:  # noqa: BLE001 - any failure becomes a failed report, as exactcompress does
        over = isinstance(error, gp.GurobiError) and error.errno == SIZE_LIMIT_ERROR if gp is not None else False
        message = f"over licence (size-limited Gurobi licence: {error})" if over else f"{type(error).__name__}: {error}"
        report.update(status="failed", error=message, error_kind="over_licence" if over else "solver")
    else:
        seconds["prove"] = time.monotonic() - start - seconds["load"]
        layers = result["layers"]
        undecided = sum(len(layer["undecided"]) for layer in layers)
        report.update(
            status="partial" if undecided else "exact",
            time_limit_reached=result["timed_out"],
            layers=layers,
            neurons_before=sum(network.hidden_widths),
            # what an exact compression keeps at most: unstable and undecided neurons (stably active ones
            # fold into the next layer where the fold succeeds)
            neurons_after=sum(len(layer["unstable"]) + len(layer["undecided"]) for layer in layers),
            milp={"solver": "gurobi", "solves": result["solves"], "nodes": result["nodes"],
                  "largest_model": result["largest_model"], "seconds": seconds["prove"]},
        )
    seconds["total"] = time.monotonic() - start
    report["seconds"] = seconds
    return report


def main(argv: Sequence[str] | None = None) -> int:
    start = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="torch state dict (.pt/.pth), .safetensors or .onnx")
    parser.add_argument("--out", type=Path, required=True, help="directory for report.json")
    parser.add_argument("--time-limit", type=float, required=True, help="seconds for the whole run")
    parser.add_argument("--lower", type=float, default=0.0, help="lower end of the input box (every input)")
    parser.add_argument("--upper", type=float, default=1.0, help="upper end of the input box (every input)")
    args = parser.parse_args(argv)
    if not args.lower <= args.upper:
        parser.error(f"--lower {args.lower} > --upper {args.upper}")
    report = run(args.model, args.lower, args.upper, args.time_limit, start)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "report.json"
    temporary = path.with_name(".report.json.tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    temporary.replace(path)
    if report["status"] == "failed":
        print(f"{args.model}: failed: {report['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
