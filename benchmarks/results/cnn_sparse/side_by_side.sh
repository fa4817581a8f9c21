#!/bin/bash
# usage: side_by_side.sh OUTFILE: each CNN compressed in both worktrees (/tmp/wt_base, /tmp/wt_new), interleaved, twice
out=$1; : > $out
for rep in 1 2; do
for net in c784-8s2-16s2-d64-gl1_1e-4 c784-8s2-16s2-d64-gl1_1e-3 c64-8s1-16s2-d64-gl1_1e-4; do
for tree in /tmp/wt_base /tmp/wt_new; do
  d=$(mktemp -d)
  (cd $tree && /usr/bin/time -f "%e %M" -o $d/time .venv/bin/python -m exactcompress compress /work/main/out/bench_zoo_cnn/$net.pt --out $d/o -q >/dev/null 2>&1)
  python3 -c "
import json,sys; r=json.load(open('$d/o/report.json')); s=r['seconds']; t=open('$d/time').read().split()
print(json.dumps({'net':'$net','tree':'$tree','rep':$rep,'status':r['status'],'wall_s':float(t[0]),'peak_rss_kb':int(t[1]),'witnesses':s['witnesses'],'verify':s['verify'],'total':s['total'],'neurons_after':r['neurons_after'],'max_abs_error':r['verification']['max_abs_error'],'n_inputs':r['verification']['n_inputs']}))" >> $out
  rm -rf $d
done; done; done
