#!/bin/bash
# usage: rss_trace.sh TREE NAME LIMIT: auto on d64-2x400-l1_0 (bench zoo in /work/main/out) from checkout TREE
# with --time-limit LIMIT, VmRSS sampled every 10 s into /tmp/exp/rss/NAME.rss, peak RSS (/usr/bin/time) in NAME.log
tree=$1; name=$2; limit=$3
out=/tmp/exp/rss/$name; rm -rf $out
cd $tree
PYTHONPATH=$tree /usr/bin/time -f "%M KiB peak RSS, %e s wall" /work/main/.venv/bin/python -m exactcompress compress /work/main/out/bench_zoo/d64-2x400-l1_0.pt --out $out --time-limit $limit > /tmp/exp/rss/$name.log 2>&1 &
pid=$!
sleep 1
child=$(pgrep -P $pid | head -1)
t=0
while kill -0 $pid 2>/dev/null; do
  rss=$(awk '/VmRSS/{print $2}' /proc/$child/status 2>/dev/null)
  echo "$t $rss" >> /tmp/exp/rss/$name.rss
  sleep 10; t=$((t+10))
done
