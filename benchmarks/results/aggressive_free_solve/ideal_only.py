"""free_solve_settings with extra settings: SCIP's own separators off, ideal cuts kept (more per round)."""
import sys, runpy
sys.path.insert(0, "benchmarks/results/free_solve_settings")
import free_solve_settings as f
from pyscipopt import SCIP_PARAMSETTING
from exactcompress.engine.prove import cuts

def ideal_only(model, rounds=-1, more=False):
    model.setSeparating(SCIP_PARAMSETTING.OFF)
    model.setParam("separating/ideal_relu/freq", 0)
    model.setParam("separating/maxroundsroot", rounds)
    model.setParam("separating/maxstallroundsroot", -1)
    if more:
        model.setParams({"cutselection/hybrid/minorthoroot": 0.1, "separating/maxcutsroot": 5000})

f.SETTINGS["ideal_only"] = ideal_only
f.SETTINGS["ideal_only_more"] = lambda m: ideal_only(m, more=True)
if "--many" in sys.argv:
    sys.argv.remove("--many")
    cuts.MAX_CUTS_PER_ROUND = 1000
    cuts.MAX_NONZEROS_PER_ROUND = 200_000
f.main()
