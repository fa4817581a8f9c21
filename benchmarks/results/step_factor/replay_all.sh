#!/bin/bash
# The replayed cut schedules (and batch sizes) of replays_91f76dd.txt again, every other one in sorted order and the
# one that went astray, under the tree TREE, two at a time.
# usage: replay_all.sh TREE OUT.txt   (needs /tmp/trace/below_4_2.npz: the bounds auto gave the question, as
# trace_auto.py with DUMP_BELOW wrote them)
tree=$1; out=$2; here=$(dirname "$0")
grep -o "sched=[^ ]* bs=[^ ]*" "$here/replays_91f76dd.txt" | sort -u | awk 'NR%2==1 || /b3s44,b11s17,b27s6/' | sed 's/sched=//; s/ bs=/ /' > /tmp/schedules.txt
run() { while read s b; do [ "$s" = "-" ] && s=""; [ "$b" = "None" ] && b=""
  PYTHONPATH=$tree /work/main/.venv/bin/python "$here/stops.py" /tmp/trace/below_4_2.npz 4 2 -1 "$s" $b | grep -v ^batch; done; }
sed -n '1~2p' /tmp/schedules.txt | run > "$out.odd" 2>&1 &
sed -n '2~2p' /tmp/schedules.txt | run > "$out.even" 2>&1 &
wait; cat "$out.odd" "$out.even" > "$out"; rm "$out.odd" "$out.even"
