#!/usr/bin/env bash
# The device-side command of the pre-registered real-model experiment on a lent GPU
# (conf/experiment/smollm2_reasoning_gym_gpu.yaml: SmolLM2-135M-Instruct on reasoning-gym letter_counting, the
# base + 5 trained arms x seeds 0, 1, 2): the SAME command for every device call (experiments/device/README.md
# gives the call sequence). Each call is idempotent:
#   1. wheels:   .whl/*.whl (carried by the first call) installed once into the ignored .devsite/
#   2. preflight: every module of the run path imported and the task's problems drawn (versions, GPU)
#                -> $OUT/preflight.txt; once per machine and wheel set (a later call copies the first one's)
#   3. parts:    each GGUF part carried in .devparts/partN/ checked against experiments/device/
#                smollm2_gguf.sha256 and kept in the ignored .devstash/ (kept between calls on a warm machine)
#   4. model:    once every part is there, the GGUF reassembled and its sha256 checked; until then
#                the call stops here ("waiting for parts")
#   5. plan:     records of an earlier machine (.devresume) unpacked, the size (SIZE), and the two Hydra
#                multiruns (printed into run.log): the base (arm=base seed=0, the semantics of
#                smollm2_reasoning_gym_base) and the trained arms x SEEDS, both experiment=$EXPERIMENT with the
#                transformers engine (model.engine=hf: the image has no vllm and cannot carry it), fp32 master
#                weights and bf16 compute, the task's stop strings (its config), LoRA only with LORA=1
#   6. convert:  the cached fp32 checkpoint (.cache/selfcorrect), once; a decode-step calibration with CALIBRATE
#   7. sweep:    both multiruns into SWEEP_DIR with the joblib launcher (the base beside the N_JOBS trained
#                jobs on the GPU) under `timeout`, so that the call ends BUDGET_S seconds after it started;
#                re-running into the same directory skips complete runs and resumes the rest
#   8. results:  summarize_real.py's tables on the complete runs (verdicts withheld until all 16 are),
#                metrics.jsonl, records.tar.gz, progress.json -> $OUT
#
#   OUT=/tmp/out bash experiments/device/run.sh                  # on the device, as README.md says
#   OUT=... DEVICE=cpu COMPUTE_DTYPE=float32 SKIP_WHEELS=1 PYTHON=.venv/bin/python ARMS=score SIZE="..." bash experiments/device/run.sh   # CPU dry run
#
# Test knobs: SKIP_PREFLIGHT=1, STOP_AFTER=model (after step 4) or plan (after step 5: the commands also into
# $OUT/plan.txt), SKIP_WHEELS=1, and every path above.
# Exit status: 0 done or waiting for parts (see $OUT/status.txt), 3 preflight failed, 4 a part or
# the model failed its checksum, 5 conversion failed, 6 sweep failed (not a timeout), 7 results failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
START=$(date +%s)
: "${OUT:?OUT must name the folder whose files come back (the device tool sets it)}"
mkdir -p "$OUT"

PY=${PYTHON:-python3}
EXPERIMENT=${EXPERIMENT:-smollm2_reasoning_gym_gpu}
DEVICE=${DEVICE:-cuda}
ENGINE=${ENGINE:-hf}                    # vllm only where the machine has it (the lent device's image does not)
COMPUTE_DTYPE=${COMPUTE_DTYPE:-bfloat16}  # autocast over the fp32 master weights (model.dtype=float32, fixed)
LORA=${LORA:-0}                         # 1: model.lora.enabled=true (the experiment's option; default off as there)
N_JOBS=${N_JOBS:-8}
BUDGET_S=${BUDGET_S:-560}     # the whole command (run.sh's timeout_s is 600: 40 s to spare)
RESERVE_S=${RESERVE_S:-45}    # kept after the sweep for the tables and the tarball
SWEEP_DIR=${SWEEP_DIR:-outputs/sweeps/smollm2_reasoning_gym_device$([ "$LORA" = 1 ] && echo _lora)}
# the experiment's trained arms (its hydra.sweeper.params), the longest first (STaR D+, Pair-SFT D+, then RL);
# ARMS="" runs none of them (the base alone, with BASE=1)
ARMS=${ARMS-star_plus,sft_self_plus,score,rl_single_turn,rl_multi_turn_naive}
SEEDS=${SEEDS:-0,1,2}
BASE=${BASE:-1}               # 1: the base arm too, one run (seed 0: one model, greedy evaluation)
# SIZE: Hydra overrides that change the experiment's size. Unset: the size this sweep directory was
# started with ($SWEEP_DIR/device_size.txt), else "" -- the experiment file as it is: the pre-registered
# size, which no device call shrinks (README.md, "Size"); a sweep that does not fit one call resumes.
EXTRA=${EXTRA:-}              # more Hydra overrides (the CPU dry run's)
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-.devsite}
PARTS_DIR=${PARTS_DIR:-.devparts}
STASH=${STASH:-.devstash}
SUMS=${SUMS:-experiments/device/smollm2_gguf.sha256}
CACHE=${SELFCORRECT_CACHE_DIR:-.cache/selfcorrect}
CALIBRATE=${CALIBRATE:-0}     # 0 never (the size does not depend on it); auto: once per machine, on cuda; 1 always
RESUME_DIR=${RESUME_DIR:-.devresume}  # records.tar.gz of an earlier machine's calls: complete runs are skipped

abspath() { case $1 in /*) echo "$1";; *) echo "$ROOT/$1";; esac; }
WHEELS=$(abspath "$WHEELS"); SITE=$(abspath "$SITE"); PARTS_DIR=$(abspath "$PARTS_DIR"); STASH=$(abspath "$STASH")
SUMS=$(abspath "$SUMS"); CACHE=$(abspath "$CACHE"); SWEEP_DIR=$(abspath "$SWEEP_DIR"); RESUME_DIR=$(abspath "$RESUME_DIR")

export PYTHONUNBUFFERED=1 WANDB_SILENT=true WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
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

count() { if [ -n "$1" ]; then echo "$1" | tr ',' '\n' | grep -c .; else echo 0; fi; }  # items of a comma list

main() {
  echo "== run.sh $(date -u +%FT%TZ) experiment=$EXPERIMENT device=$DEVICE engine=$ENGINE compute=$COMPUTE_DTYPE lora=$LORA jobs=$N_JOBS budget=${BUDGET_S}s sweep=$SWEEP_DIR"

  # 1. wheels -----------------------------------------------------------------------------------
  stamp="" fresh=""
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
      stamp=$(cat "$SITE/.stamp")
      echo "== wheels: none carried; $SITE from an earlier call"
    else
      fresh=" (no wheels carried and none installed here: a fresh machine; restart the call sequence at call 1, README.md)"
      echo "== wheels: none carried and no $SITE: a fresh machine? the first call carries .whl (README.md)"
    fi
    export PYTHONPATH=$SITE:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
  fi

  # 2. preflight --------------------------------------------------------------------------------
  if [ -n "${SKIP_PREFLIGHT:-}" ]; then
    echo "== preflight: skipped (SKIP_PREFLIGHT)"
  elif [ -n "$stamp" ] && [ "$(cat "$SITE/.preflight_ok" 2>/dev/null)" = "$stamp" ] && [ -f "$SITE/preflight.txt" ]; then
    cp "$SITE/preflight.txt" "$OUT/preflight.txt"
    echo "== preflight: passed in an earlier call on this machine with these wheels (its preflight.txt)"
  else
    "$PY" experiments/device/device_steps.py preflight "$OUT/preflight.txt" >/dev/null \
      || { cat "$OUT/preflight.txt"; status preflight_failed "a run-path module does not import or the task fails (preflight.txt)$fresh"; return 3; }
    grep -E "^(python|cuda|task|cpus)" "$OUT/preflight.txt"
    if [ -n "$stamp" ]; then cp "$OUT/preflight.txt" "$SITE/preflight.txt" && echo "$stamp" >"$SITE/.preflight_ok"; fi
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

  # 5. plan -------------------------------------------------------------------------------------
  for f in "$RESUME_DIR"/*.tar.gz; do  # records brought back from an earlier (now gone) machine
    [ -f "$f" ] || continue
    mkdir -p "$(dirname "$SWEEP_DIR")"
    tar -xzf "$f" -C "$(dirname "$SWEEP_DIR")" --skip-old-files && echo "== resume: $f unpacked next to $SWEEP_DIR"
  done
  if [ -n "${SIZE+set}" ]; then
    echo "== size: SIZE given: ${SIZE:-(the experiment file as it is)}"
  elif [ -f "$SWEEP_DIR/device_size.txt" ]; then
    SIZE=$(cat "$SWEEP_DIR/device_size.txt"); echo "== size: as this sweep started: ${SIZE:-(the experiment file as it is)}"
  else
    SIZE=""; echo "== size: the experiment file as it is (the pre-registered size)"
  fi
  local -a size_args extra_args lora_args=() base_cmd=() trained_cmd=()
  read -ra size_args <<<"$SIZE"
  read -ra extra_args <<<"$EXTRA"
  [ "$LORA" = 1 ] && lora_args=(model.lora.enabled=true)
  # model.gguf.path relative to the repository root where it lies there (jobs run in it: Hydra's chdir is
  # off), so that records brought to another machine (.devresume) match its configuration
  # shellcheck disable=SC2016
  multirun() {  # arms, seeds, jobs -> the command in CMD
    CMD=("$PY" -m selfcorrect -m "experiment=$EXPERIMENT" "hydra.sweep.dir=$SWEEP_DIR" 'hydra.sweep.subdir=${arm.name}_s${seed}'
         hydra/launcher=joblib "hydra.launcher.n_jobs=$3" "model.device=$DEVICE" "model.engine=$ENGINE" model.dtype=float32
         "model.compute_dtype=$COMPUTE_DTYPE" "model.gguf.path=${MODEL#"$ROOT"/}" "paths.cache_dir=$CACHE"
         tracking.mode=disabled save_policy=false "arm=$1" "seed=$2" "${lora_args[@]}" "${size_args[@]}" "${extra_args[@]}")
  }
  if [ "$BASE" = 1 ]; then multirun base 0 1; base_cmd=("${CMD[@]}"); fi
  if [ -n "$ARMS" ]; then multirun "$ARMS" "$SEEDS" "$N_JOBS"; trained_cmd=("${CMD[@]}"); fi
  expected=$(( $(count "$ARMS") * $(count "$SEEDS") + ( BASE == 1 ? 1 : 0 ) ))
  {
    [ ${#base_cmd[@]} -gt 0 ] && echo "base: $(printf '%q ' "${base_cmd[@]}")"
    [ ${#trained_cmd[@]} -gt 0 ] && echo "trained: $(printf '%q ' "${trained_cmd[@]}")"
  } >"$STASH/plan.txt"
  sed 's/^/== plan: /' "$STASH/plan.txt"
  if [ -z "$SIZE" ]; then  # what to expect of this call (estimate.py: assumptions, or this machine's calibration)
    ms=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['ms_per_decode_step'])" "$STASH/calibration.json" 2>/dev/null || echo 20)
    gain=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['gain'])" "$STASH/calibration.json" 2>/dev/null || echo 5)
    "$PY" experiments/device/estimate.py --ms-per-step "$ms" --gain "$gain" --jobs "$N_JOBS" | sed 's/^/== estimate: /' || true
  fi
  if [ "${STOP_AFTER:-}" = plan ]; then
    cp "$STASH/plan.txt" "$OUT/plan.txt"; status planned "$expected runs (STOP_AFTER=plan)"; return 0
  fi

  # 6. convert (+ calibration) ------------------------------------------------------------------
  "$PY" experiments/device/device_steps.py convert "$MODEL" "$CACHE" || { status convert_failed; return 5; }
  if [ "$CALIBRATE" = 1 ] || { [ "$CALIBRATE" = auto ] && [ "${DEVICE#cuda}" != "$DEVICE" ] && [ ! -f "$STASH/calibration.json" ]; }; then
    "$PY" experiments/device/device_steps.py calibrate "$MODEL" "$CACHE" "$DEVICE" "$STASH/calibration.json" 64 128 "$N_JOBS" \
      || echo "== calibration failed (the sweep goes on)"
  fi
  [ -f "$STASH/calibration.json" ] && { echo "calibration: $(cat "$STASH/calibration.json")" >>"$OUT/preflight.txt"; }
  echo "== converted ($(elapsed) s)"

  # 7. sweep ------------------------------------------------------------------------------------
  mkdir -p "$SWEEP_DIR"
  printf '%s\n' "$SIZE" >"$SWEEP_DIR/device_size.txt"
  left=$(( BUDGET_S - $(elapsed) - RESERVE_S ))
  sweep_rc=skipped
  if [ "$left" -lt 30 ]; then
    echo "== sweep: only ${left}s left in this call's budget: not started"
  else
    echo "== sweep: $expected runs, ${left}s at most (timeout), into $SWEEP_DIR"
    # a complete run needs no checkpoints (resume skips it): free the disk while the sweep goes on
    # (a checkpoint holds a run's weights and optimizer state)
    # (its own output away from the log's pipe: a sleep left behind by the kill would hold the command open)
    ( while sleep 10; do clean_checkpoints; done ) >/dev/null 2>&1 &
    janitor=$!
    base_rc=0 trained_rc=0
    if [ ${#base_cmd[@]} -gt 0 ]; then  # the base beside the trained jobs (its lines marked [base])
      ( timeout --kill-after=10 "$left" "${base_cmd[@]}" 2>&1 | sed -u 's/^/[base] /'; exit "${PIPESTATUS[0]}" ) &
      base_pid=$!
    fi
    if [ ${#trained_cmd[@]} -gt 0 ]; then
      timeout --kill-after=10 "$left" "${trained_cmd[@]}"
      trained_rc=$?
    fi
    if [ ${#base_cmd[@]} -gt 0 ]; then wait "$base_pid"; base_rc=$?; fi
    kill "$janitor" 2>/dev/null; wait "$janitor" 2>/dev/null
    clean_checkpoints
    sweep_rc=0
    for rc in $base_rc $trained_rc; do  # a failure over a timeout over success
      case $rc in
        0) ;;
        124|137) case $sweep_rc in 0) sweep_rc=$rc;; esac;;
        *) sweep_rc=$rc;;
      esac
    done
    case $sweep_rc in
      0) echo "== sweep: finished ($(elapsed) s)";;
      124|137) echo "== sweep: stopped at this call's time limit ($(elapsed) s); the same command resumes it";;
      *) echo "== sweep: exited $sweep_rc (base $base_rc, trained $trained_rc; $(elapsed) s)";;
    esac
  fi

  # 8. results ----------------------------------------------------------------------------------
  if [ -d "$SWEEP_DIR" ]; then
    "$PY" experiments/device/device_steps.py summarize "$SWEEP_DIR" "$OUT/summary.md" \
      || echo "== summarize_real.py failed (run.log)"
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
