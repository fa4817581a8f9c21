"""Run a frozen benchmark script with the MILP relative margin set to FACTOR: wide.py FACTOR SCRIPT ARGS..."""
import runpy, sys
from exactcompress.engine.prove import encoding
encoding.MILP_RELATIVE_MARGIN = float(sys.argv[1])
script = sys.argv[2]
sys.argv = sys.argv[2:]
sys.path.insert(0, script.rsplit("/", 1)[0])
runpy.run_path(script, run_name="__main__")
