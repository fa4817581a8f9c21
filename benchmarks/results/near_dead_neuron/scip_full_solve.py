"""Neuron 180 of d64-2x400-l1_1e-4's second hidden layer: "can g be negative?" as one SCIP minimisation (no
objective or dual limit, binaries only where the phase can matter), for as many seconds as argv[1]. Run from the
repository root: .venv/bin/python benchmarks/results/near_dead_neuron/scip_full_solve.py 240"""
import sys, time, numpy as np, torch
sys.path.insert(0, "benchmarks")
from bab_questions import open_questions
from exactcompress.io import load_network
from exactcompress.io.domain_files import scalar_box
from exactcompress.engine.prove.encoding import build_layer_model
from exactcompress.engine.prove.per_neuron import phase_free_binaries
torch.set_num_threads(1)
net, _ = load_network("out/bench_zoo/d64-2x400-l1_1e-4.pt")
box = scalar_box(0.0, 1.0).broadcast(net.input_dim).boxes[0]
qs, bounds = open_questions(net, box, 1, -1)
print("open 'negative?' questions layer 1:", qs)
qp, _ = open_questions(net, box, 1, 1); print("open 'positive?' layer 1:", len(qp))
j = 180
w = net.hidden[1].weight[j]; b = net.hidden[1].bias[j]
l0, u0 = bounds[0].lower, bounds[0].upper
unstable = (l0 < 0) & (u0 > 0)
print("bias", b, "sum|w|", np.abs(w).sum(), "neg-weight unstable", int(((w < 0) & unstable).sum()), "pos-weight unstable", int(((w > 0) & unstable).sum()))
lm = build_layer_model(net, box, bounds, 1, ideal_cuts=True)
m = lm.model
for bvar in phase_free_binaries(lm, w, -1):
    m.chgVarType(bvar, "CONTINUOUS")
m.setObjective(lm.g[j], "minimize")
m.setParam("limits/time", float(sys.argv[1]))
m.setParam("display/freq", 2000)
m.hideOutput(False)
t = time.time(); m.optimize()
print("status", m.getStatus(), "primal", m.getPrimalbound(), "dual", m.getDualbound(), "nodes", m.getNNodes(), round(time.time()-t, 1), "s")
if m.getNSols():
    s = m.getBestSol(); x = box.clip(np.array([s[v] for v in lm.x]))
    print("float64 g at SCIP's x:", net.preactivations(x[None])[1][0, j])
