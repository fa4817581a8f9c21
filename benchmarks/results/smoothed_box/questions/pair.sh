#!/bin/bash
# The two trees at once, one thread each: /work/before at 94adbf4, /work/main at 3c156d2.
# usage: pair.sh NAME MODEL LAYER LIMIT NEURONS...
mkdir -p ${OUT:-/tmp/smoothed_box}; name=$1; model=$2; layer=$3; limit=$4; shift 4
for t in before main; do
  (cd /work/$t && PYTHONPATH=/work/$t /work/main/.venv/bin/python benchmarks/bab_questions.py /work/main/out/bench_zoo/$model.pt --layer $layer --limit $limit ${@:+--neurons $@} > ${OUT:-/tmp/smoothed_box}/${name}_$t.txt 2>&1) &
done
wait
