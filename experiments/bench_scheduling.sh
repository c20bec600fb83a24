#!/usr/bin/env bash
# Scheduling on this 2-core machine (issue 32, item 4): the same work as four one-thread jobs at once (today's make
# sweep: two testbeds x two jobs), as two at a time, and as two pinned one per core; and a base build with two
# threads alone against two one-thread builds side by side.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${OUT:-outputs/sched}
run() { # dir, extra...
  $PY -m selfcorrect experiment=embedded_sweep arm=score seed=0 threads=1 tracking.mode=disabled hydra.run.dir=$OUT/$1 "${@:2}" > $OUT/$1.log 2>&1
}
t() { date +%s.%N; }
mkdir -p $OUT; rm -rf $OUT/a* $OUT/b* $OUT/c* $OUT/d* $OUT/e*
s=$(t); for i in 1 2 3 4; do run a$i & done; wait; A=$(echo "$(t) - $s" | bc)
s=$(t); run b1 & run b2 & wait; run b3 & run b4 & wait; B=$(echo "$(t) - $s" | bc)
s=$(t); taskset -c 0 bash -c "$(declare -f run); PY=$PY OUT=$OUT; run c1; run c3" & taskset -c 1 bash -c "$(declare -f run); PY=$PY OUT=$OUT; run c2; run c4" & wait; C=$(echo "$(t) - $s" | bc)
build() { # name, seed, threads
  $PY -c "
import sys, time, torch
from hydra import compose, initialize_config_dir
from selfcorrect.paths import CONF_DIR
from selfcorrect.tasks import make_task
from selfcorrect.models.loading import base_model_path
from selfcorrect.runtime.records import plain
torch.set_num_threads($3)
with initialize_config_dir(config_dir=CONF_DIR, version_base='1.3'):
    cfg = compose('config', overrides=['experiment=embedded_sweep', 'seed=$2'])
task = make_task(plain(cfg.task))
t0 = time.time(); base_model_path(plain(cfg.model), task, '$OUT/$1_cache'); print(round(time.time() - t0, 1))
" > $OUT/$1.log 2>&1
}
s=$(t); build d 11 2; D=$(echo "$(t) - $s" | bc)
s=$(t); build e1 12 1 & build e2 13 1 & wait; E=$(echo "$(t) - $s" | bc)
echo "A four one-thread SCoRe runs at once: $A s"
echo "B the same four, two at a time: $B s"
echo "C the same four, two at a time, pinned one per core (taskset): $C s"
echo "D one base build, two threads, alone: $D s"
echo "E two base builds side by side, one thread each: $E s (per build: $(echo "$E / 2" | bc -l | cut -c1-6) s)"
