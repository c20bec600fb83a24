#!/usr/bin/env bash
# The device-side command of the SmolLM2 word_math sweep: the SAME command for every device call
# (experiments/device/README.md gives the call sequence). Each call is idempotent:
#   1. wheels:   .whl/*.whl (carried by the first call) installed once into the ignored .devsite/
#   2. preflight: every module of the run path imported (versions, GPU)         -> $OUT/preflight.txt
#   3. parts:    each GGUF part carried in .devparts/partN/ checked against experiments/device/
#                smollm2_gguf.sha256 and kept in the ignored .devstash/ (kept between calls on a warm machine)
#   4. model:    once every part is there, the GGUF reassembled and its sha256 checked; until then
#                the call stops here ("waiting for parts")
#   5. convert:  the cached fp32 checkpoint (.cache/selfcorrect), once; a decode-step calibration, once
#   6. sweep:    experiment=smollm2_word_math into SWEEP_DIR with the joblib launcher (N_JOBS jobs on
#                the GPU) under `timeout`, so that the call ends BUDGET_S seconds after it started;
#                re-running into the same directory skips complete runs and resumes the rest
#   7. results:  summarize_sweep.py tables, metrics.jsonl, records.tar.gz, progress.json -> $OUT
#
#   OUT=/tmp/out bash experiments/device/run.sh                  # on the device, as README.md says
#   OUT=... DEVICE=cpu SKIP_WHEELS=1 PYTHON=.venv/bin/python ARMS=score SIZE="..." bash experiments/device/run.sh   # CPU dry run
#
# Test knobs: SKIP_PREFLIGHT=1, STOP_AFTER=model (after step 4), SKIP_WHEELS=1, and every path above.
# Exit status: 0 done or waiting for parts (see $OUT/status.txt), 3 preflight failed, 4 a part or
# the model failed its checksum, 5 conversion failed, 6 sweep failed (not a timeout), 7 results failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
START=$(date +%s)
: "${OUT:?OUT must name the folder whose files come back (the device tool sets it)}"
mkdir -p "$OUT"

PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
N_JOBS=${N_JOBS:-8}
BUDGET_S=${BUDGET_S:-560}     # the whole command (run.sh's timeout_s is 600: 40 s to spare)
RESERVE_S=${RESERVE_S:-45}    # kept after the sweep for the tables and the tarball
SWEEP_DIR=${SWEEP_DIR:-outputs/sweeps/smollm2_word_math_device}
# the experiment's 13 arms, the longest first (RL, then self-sampling SFT, then teacher SFT and the base)
ARMS=${ARMS:-score,score_no_stage1,score_no_shaping,score_shaping_control,rl_multi_turn_naive,rl_multi_turn_sum,rl_single_turn,star_plus,star,sft_self_plus,sft_self,sft_teacher,base}
SEEDS=${SEEDS:-0,1,2}
# SIZE: the Hydra overrides that shrink the experiment file (README.md, "Sizing rule"). Unset: the
# size this sweep directory was started with ($SWEEP_DIR/device_size.txt), else the first rung of
# estimate.py's ladder that fits 8 GPU minutes at the decode speed the calibration measured here
# (20 ms per step if it did not run). SIZE="" runs the experiment file as it is.
EXTRA=${EXTRA:-}              # more Hydra overrides (the CPU dry run's)
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-.devsite}
PARTS_DIR=${PARTS_DIR:-.devparts}
STASH=${STASH:-.devstash}
SUMS=${SUMS:-experiments/device/smollm2_gguf.sha256}
CACHE=${SELFCORRECT_CACHE_DIR:-.cache/selfcorrect}
CALIBRATE=${CALIBRATE:-auto}  # auto: once, on cuda only; 1 always; 0 never
RESUME_DIR=${RESUME_DIR:-.devresume}  # records.tar.gz of an earlier machine's calls: complete runs are skipped

abspath() { case $1 in /*) echo "$1";; *) echo "$ROOT/$1";; esac; }
WHEELS=$(abspath "$WHEELS"); SITE=$(abspath "$SITE"); PARTS_DIR=$(abspath "$PARTS_DIR"); STASH=$(abspath "$STASH")
SUMS=$(abspath "$SUMS"); CACHE=$(abspath "$CACHE"); SWEEP_DIR=$(abspath "$SWEEP_DIR"); RESUME_DIR=$(abspath "$RESUME_DIR")

export PYTHONUNBUFFERED=1 WANDB_SILENT=true WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1

elapsed() { echo $(( $(date +%s) - START )); }
status() {  # status.txt: what this call reached
  { echo "phase: $1"; echo "elapsed_s: $(elapsed)"; [ $# -gt 1 ] && echo "$2"; } >"$OUT/status.txt"
  echo "== status: $1 ($(elapsed) s)${2:+: $2}"
}

clean_checkpoints() {  # checkpoints of complete runs
  local d
  for d in "$SWEEP_DIR"/*/checkpoints; do
    [ -d "$d" ] && grep -qs '"status": "complete"' "$(dirname "$d")/run.json" && rm -rf "$d"
  done
  return 0
}

main() {
  echo "== run.sh $(date -u +%FT%TZ) device=$DEVICE jobs=$N_JOBS budget=${BUDGET_S}s sweep=$SWEEP_DIR"

  # 1. wheels -----------------------------------------------------------------------------------
  if [ -n "${SKIP_WHEELS:-}" ]; then
    export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
    echo "== wheels: skipped (SKIP_WHEELS): $PY's own packages"
  else
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
      stamp=$(cd "$WHEELS" && ls -l *.whl | awk '{print $5, $NF}' | sha256sum | cut -c1-16)
      if [ "$(cat "$SITE/.stamp" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$SITE"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl \
          || { status preflight_failed "pip install of $WHEELS failed"; return 3; }
        echo "$stamp" >"$SITE/.stamp"
        echo "== wheels: $(ls "$WHEELS"/*.whl | wc -l) installed into $SITE ($(elapsed) s)"
      else
        echo "== wheels: $SITE already holds $WHEELS"
      fi
    elif [ -f "$SITE/.stamp" ]; then
      echo "== wheels: none carried; $SITE from an earlier call"
    else
      echo "== wheels: none carried and no $SITE: a fresh machine? the first call carries .whl and .devparts/part1 (README.md)"
    fi
    export PYTHONPATH=$SITE:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
  fi

  # 2. preflight --------------------------------------------------------------------------------
  if [ -n "${SKIP_PREFLIGHT:-}" ]; then
    echo "== preflight: skipped (SKIP_PREFLIGHT)"
  else
    "$PY" experiments/device/device_steps.py preflight "$OUT/preflight.txt" >/dev/null \
      || { cat "$OUT/preflight.txt"; status preflight_failed "a run-path module does not import (preflight.txt)"; return 3; }
    grep -E "^(python|cuda|cpus)" "$OUT/preflight.txt"
  fi

  # 3. parts ------------------------------------------------------------------------------------
  [ -f "$SUMS" ] || { status checksum_failed "no $SUMS (experiments/device/prepare_parts.sh writes it)"; return 4; }
  name=$(awk '!/^#/ && $2 !~ /\.part[0-9]+$/ {print $2; exit}' "$SUMS")
  want=$(awk -v n="$name" '!/^#/ && $2 == n {print $1}' "$SUMS")
  parts=$(awk '!/^#/ && $2 ~ /\.part[0-9]+$/ {print $2}' "$SUMS" | sort -V)
  nparts=$(echo "$parts" | wc -l)
  mkdir -p "$STASH"
  for f in "$PARTS_DIR"/part*/*; do
    [ -f "$f" ] || continue
    base=$(basename "$f")
    exp=$(awk -v n="$base" '!/^#/ && $2 == n {print $1}' "$SUMS")
    got=$(sha256sum "$f" | cut -d' ' -f1)
    if [ -z "$exp" ] || [ "$got" != "$exp" ]; then
      status checksum_failed "$f: sha256 $got, expected ${exp:-nothing (not in $SUMS)}"; return 4
    fi
    if [ ! -f "$STASH/$name" ]; then cp "$f" "$STASH/$base.tmp" && mv "$STASH/$base.tmp" "$STASH/$base"; fi
    echo "== part: $base ok (sha256 ${got:0:16}…)"
  done

  # 4. model ------------------------------------------------------------------------------------
  MODEL=$STASH/$name
  if [ ! -f "$MODEL" ] || [ "$(cat "$MODEL.sha256" 2>/dev/null)" != "$want" ]; then
    missing=""
    for p in $parts; do [ -f "$STASH/$p" ] || missing="$missing $p"; done
    if [ -n "$missing" ]; then
      have=$(( nparts - $(echo $missing | wc -w) ))
      status waiting_for_parts "have $have of $nparts parts; missing:$missing (carry the next .devparts/partN; a fresh machine needs all of them again, README.md)"
      return 0
    fi
    # shellcheck disable=SC2086
    (cd "$STASH" && cat $parts >"$name.tmp")
    got=$(sha256sum "$STASH/$name.tmp" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
      rm -f "$STASH/$name.tmp"; status checksum_failed "reassembled $name: sha256 $got, expected $want"; return 4
    fi
    mv "$STASH/$name.tmp" "$MODEL" && echo "$want" >"$MODEL.sha256"
    (cd "$STASH" && rm -f $parts)
    echo "== model: $name reassembled, sha256 ok ($(elapsed) s)"
  else
    echo "== model: $name already here (sha256 checked when reassembled)"
  fi
  if [ "${STOP_AFTER:-}" = model ]; then status model_ready "$MODEL (STOP_AFTER=model)"; return 0; fi

  # 5. convert (+ calibration) ------------------------------------------------------------------
  "$PY" experiments/device/device_steps.py convert "$MODEL" "$CACHE" || { status convert_failed; return 5; }
  if [ "$CALIBRATE" = 1 ] || { [ "$CALIBRATE" = auto ] && [ "${DEVICE#cuda}" != "$DEVICE" ] && [ ! -f "$STASH/calibration.json" ]; }; then
    "$PY" experiments/device/device_steps.py calibrate "$MODEL" "$CACHE" "$DEVICE" "$STASH/calibration.json" 64 128 "$N_JOBS" \
      || echo "== calibration failed (the sweep goes on)"
  fi
  [ -f "$STASH/calibration.json" ] && { echo "calibration: $(cat "$STASH/calibration.json")" >>"$OUT/preflight.txt"; }
  echo "== converted ($(elapsed) s)"

  # 6. sweep ------------------------------------------------------------------------------------
  for f in "$RESUME_DIR"/*.tar.gz; do  # records brought back from an earlier (now gone) machine
    [ -f "$f" ] || continue
    mkdir -p "$(dirname "$SWEEP_DIR")"
    tar -xzf "$f" -C "$(dirname "$SWEEP_DIR")" --skip-old-files && echo "== resume: $f unpacked next to $SWEEP_DIR"
  done
  mkdir -p "$SWEEP_DIR"
  if [ -n "${SIZE+set}" ]; then
    echo "== size: SIZE given: ${SIZE:-(the experiment file as it is)}"
  elif [ -f "$SWEEP_DIR/device_size.txt" ]; then
    SIZE=$(cat "$SWEEP_DIR/device_size.txt"); echo "== size: as this sweep started: $SIZE"
  else
    ms=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['ms_per_decode_step'])" "$STASH/calibration.json" 2>/dev/null || echo 20)
    gain=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['gain'])" "$STASH/calibration.json" 2>/dev/null || echo 5)
    "$PY" experiments/device/estimate.py --ms-per-step "$ms" --gain "$gain" || true
    SIZE=$("$PY" experiments/device/estimate.py --pick --ms-per-step "$ms" --gain "$gain") \
      || echo "== size: no rung fits 8 GPU minutes at $ms ms per decode step, gain $gain: the smallest (the next call resumes)"
    echo "== size: picked at $ms ms per decode step, gain $gain for $N_JOBS jobs: $SIZE"
  fi
  printf '%s\n' "$SIZE" >"$SWEEP_DIR/device_size.txt"
  expected=$(( $(echo "$ARMS" | tr ',' '\n' | wc -l) * $(echo "$SEEDS" | tr ',' '\n' | wc -l) ))
  left=$(( BUDGET_S - $(elapsed) - RESERVE_S ))
  sweep_rc=skipped
  if [ "$left" -lt 30 ]; then
    echo "== sweep: only ${left}s left in this call's budget: not started"
  else
    echo "== sweep: $expected runs, ${left}s at most (timeout), into $SWEEP_DIR"
    # a complete run needs no checkpoints (resume skips it): free the disk while the sweep goes on
    # (an RL run keeps ~0.8 GB per step checkpoint in bf16; 21 RL runs would fill the device's disk)
    ( while sleep 10; do clean_checkpoints; done ) &
    janitor=$!
    # model.gguf.path relative to the repository root where it lies there (jobs run in it: Hydra's
    # chdir is off), so that records brought to another machine (.devresume) match its configuration
    # shellcheck disable=SC2086,SC2016
    timeout --kill-after=10 "$left" "$PY" -m selfcorrect -m experiment=smollm2_word_math \
      "hydra.sweep.dir=$SWEEP_DIR" 'hydra.sweep.subdir=${arm.name}_s${seed}' \
      hydra/launcher=joblib "hydra.launcher.n_jobs=$N_JOBS" \
      "model.device=$DEVICE" "model.gguf.path=${MODEL#"$ROOT"/}" "paths.cache_dir=$CACHE" tracking.mode=disabled save_policy=false \
      "arm=$ARMS" "seed=$SEEDS" $SIZE $EXTRA
    sweep_rc=$?
    kill "$janitor" 2>/dev/null; wait "$janitor" 2>/dev/null
    clean_checkpoints
    case $sweep_rc in
      0) echo "== sweep: finished ($(elapsed) s)";;
      124|137) echo "== sweep: stopped at this call's time limit ($(elapsed) s); the same command resumes it";;
      *) echo "== sweep: exited $sweep_rc ($(elapsed) s)";;
    esac
  fi

  # 7. results ----------------------------------------------------------------------------------
  if [ -d "$SWEEP_DIR" ]; then
    "$PY" experiments/summarize_sweep.py "$SWEEP_DIR" --allow-incomplete >"$OUT/summary.txt" 2>&1 \
      || echo "== summarize_sweep.py failed (summary.txt)"
  fi
  "$PY" experiments/device/device_steps.py collect "$SWEEP_DIR" "$OUT" "$expected" || { status results_failed; return 7; }
  complete=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['complete'])" "$OUT/progress.json")
  if [ "$complete" -ge "$expected" ]; then
    status complete "$complete/$expected runs complete; sweep exit $sweep_rc"
  else
    status incomplete "$complete/$expected runs complete; sweep exit $sweep_rc: run the same command again to resume"
  fi
  case $sweep_rc in 0|124|137|skipped) return 0;; *) return 6;; esac
}

main 2>&1 | tee -a "$OUT/run.log"
exit "${PIPESTATUS[0]}"
