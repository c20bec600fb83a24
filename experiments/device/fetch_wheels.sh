#!/usr/bin/env bash
# Download (here, from PyPI) exactly the wheels that the SmolLM2 word_math sweep needs on the
# device machine and that its image lacks (see experiments/device/README.md, "Wheels"), into an
# ignored folder (default .whl/), pinned to the versions of this project's .venv.
#
#   bash experiments/device/fetch_wheels.sh                  # Python 3.12 wheels (the device) into .whl/
#   PYVER=3.11 DEST=.whl-cp311 bash experiments/device/fetch_wheels.sh   # this machine's Python, for a local install test
#
# The device image already has torch, transformers, accelerate, tokenizers, safetensors,
# huggingface-hub, numpy, pandas, pyarrow, scipy, sympy, joblib, pyyaml, requests, tqdm,
# filelock, fsspec, xxhash, psutil, jinja2, packaging (KINDS.md): none of those is carried.
# antlr4-python3-runtime 4.9.3 (what hydra-core/omegaconf pin) exists on PyPI only as an sdist:
# it is pure Python, so it is built here into a py3-none-any wheel.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER=${PYVER:-3.12}
DEST=${DEST:-.whl}
PIP=${PIP:-$( [ -x .venv/bin/python ] && echo ".venv/bin/python -m pip" || echo "python3 -m pip")}
# one version of each: two stop the whole install (device README)
PINNED=(
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
)
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)

mkdir -p "$DEST"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# PIP_CONSTRAINT="" : this machine's pip config names a constraints file (torch caps) that has
# nothing to do with these wheels
PIP_CONSTRAINT="" $PIP download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PINNED[@]}"
for spec in "${SDIST_ONLY[@]}"; do
  name=${spec%%==*}
  if ! ls "$DEST"/"${name//-/_}"-*.whl >/dev/null 2>&1; then
    PIP_CONSTRAINT="" $PIP wheel -q --no-deps --no-build-isolation -w "$DEST" "$spec" 2>/dev/null \
      || PIP_CONSTRAINT="" $PIP wheel -q --no-deps -w "$DEST" "$spec"
  fi
done
# exactly one wheel per distribution
dups=$(ls "$DEST"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
[ -z "$dups" ] || { echo "more than one wheel of: $dups (remove the extra ones from $DEST)" >&2; exit 1; }
ls -l "$DEST"/*.whl | awk '{s+=$5; printf "%9d  %s\n", $5, $9} END {printf "%9d  total (%.2f MiB)\n", s, s/1048576}'
