#!/bin/bash
# The two trees at once, one thread each: /work/before at 91f76dd, /work/main with the change (uncommitted then).
# usage: pair.sh NAME MODEL LAYER LIMIT NEURONS...
name=$1; model=$2; layer=$3; limit=$4; shift 4
for t in before main; do
  (cd /work/$t && PYTHONPATH=/work/$t /work/main/.venv/bin/python benchmarks/bab_questions.py /work/main/out/bench_zoo/$model.pt --layer $layer --limit $limit ${@:+--neurons $@} > /tmp/step_factor/${name}_$t.txt 2>&1) &
done
wait
