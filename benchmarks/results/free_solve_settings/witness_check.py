"""The float64 check behind "aggressive separation proved a false claim": the default engine's run of
d784-2x400-l1_1e-5 recorded a witness input at which hidden layer 2's neuron 61 is positive, while the run with
SCIP's separators set to aggressive reported that neuron stably inactive (``report_*_d784-2x400-l1_1e-5.json``).

    python benchmarks/results/free_solve_settings/witness_check.py out/bench_zoo/d784-2x400-l1_1e-5.pt
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from exactcompress.io import load_network

HERE = Path(__file__).parent


def main() -> None:
    network, _ = load_network(sys.argv[1])
    x = np.load(HERE / "witness_d784-2x400-l1_1e-5_layer2_n61.npy")
    g = network.preactivations(x[None, :])[1][0]
    inside = bool((x >= 0).all() and (x <= 1).all())
    print(f"float64 g of layer 2 neuron 61 at the witness: {g[61]:.6e}; input in [0, 1]: {inside}")
    for name in ("default", "aggressive"):
        report = json.loads((HERE / f"report_{name}_d784-2x400-l1_1e-5.json").read_text())
        print(f"{name}: neuron 61 of layer 2 reported stably inactive: {61 in report['layers'][1]['stably_inactive']}")


if __name__ == "__main__":
    main()
