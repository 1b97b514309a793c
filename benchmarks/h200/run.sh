#!/usr/bin/env bash
# Run the book's gpu profile on a lent H200 (see ../../docs/gpu.md). Arguments go to slmrec_lib.run.
# Expects: /root/keep/SmolLM2-135M-Instruct.Q4_1.gguf, the gguf wheel in /root/keep, the data in .gpu/data.
# TIMING=<dataset> runs the efficiency benchmark instead (results/gpu/timing.csv).
# On a machine of several GPUs pass e.g. --workers 8: runs train side by side, spread over the GPUs.
# Results accumulate in /root/keep/results (kept while the machine stays warm) and are packed into $OUT
# (results_gpu.tgz: rows, configs, manifests, ranks; item_tables.tgz: the item tables the LLM runs read;
# partial.tar.aa, .ab, ...: what unfinished runs resume from, when it fits, see docs/gpu.md).
# Parts of partial.tar put in /root/keep/partial by an earlier call are unpacked first (files already
# there win), so an unfinished run goes on from a checkpoint that an earlier session brought back.
set -uo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export SLMREC_SMOLLM2_GGUF=/root/keep/SmolLM2-135M-Instruct.Q4_1.gguf
export SLMREC_RESULTS_DIR=/root/keep/results SLMREC_CACHE_DIR=/root/keep/cache
export SLMREC_DATA_DIR="$PWD/.gpu/data"
export SLMREC_GIT_SHA="$(cat .gpu/data/GIT_SHA 2>/dev/null || echo unknown)"  # written here before the call
if ! python3 -c "import gguf" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /root/keep/site /root/keep/gguf-*.whl || exit 1
fi
export PYTHONPATH="/root/keep/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import requests" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /root/keep/site \
  /root/keep/requests-*.whl /root/keep/urllib3-*.whl /root/keep/idna-*.whl /root/keep/certifi-*.whl /root/keep/charset_normalizer-*.whl
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
# the committed runs travel with the checkout: a fresh machine starts from them (files there win)
mkdir -p /root/keep/results/gpu && cp -rn results/gpu/. /root/keep/results/gpu/
# an item table whose rows are committed but whose weights are not here is trained again (same config
# and seed; on a GPU not bit for bit the table the committed LLM rows read): its committed rows are
# set aside as rows.csv.committed, and the retrained rows stay on the machine, never overwriting them
for d in /root/keep/results/gpu/runs/*/; do
  if [ -f "${d}rows.csv" ] && [ ! -f "${d}item_embeddings.pt" ] && python3 -c \
     'import json, sys; sys.exit(json.load(open(sys.argv[1])).get("role") != "item table")' "${d}config.json"; then
    mv "${d}rows.csv" "${d}rows.csv.committed"
  fi
done
finished_only() {  # a finished run (rows.csv) needs no checkpoint or stage ranks: drop stale ones
  for d in /root/keep/results/gpu/runs/*/; do
    [ -f "${d}rows.csv" ] && rm -f "${d}checkpoint.pt" "${d}"ranks-*.npz
  done
  return 0
}
if compgen -G "/root/keep/partial/partial.tar.*" >/dev/null; then
  mkdir -p /root/keep/results
  cat /root/keep/partial/partial.tar.* | tar -xf - --skip-old-files -C /root/keep/results \
    && echo "unpacked unfinished runs: $(cat /root/keep/partial/partial.tar.* | tar -tf - | tr '\n' ' ')"
  finished_only
fi
# TIMING=beauty: the efficiency benchmark (03_efficiency, RQ2) instead of training runs
if [ -n "${TIMING:-}" ]; then
  cmd=(python3 -m slmrec_lib.timing --profile gpu --dataset "$TIMING")
else
  cmd=(python3 -m slmrec_lib.run --profile gpu "$@")
fi
timeout "${RUN_TIMEOUT:-540}" "${cmd[@]}" 2>&1 | grep -v "FutureWarning\|warnings.warn" | tee -a /root/keep/log.txt
status=${PIPESTATUS[0]}
if [ -n "${OUT:-}" ]; then
  # rows, configs and training logs (small), and apart from them the item tables that later LLM runs
  # read (a few MB each); no other weights: model.pt and the baselines' own tables would not come back
  tar -czf "$OUT/results_gpu.tgz" --exclude='checkpoint*' --exclude='*.pt' --exclude='.lock' \
    --exclude='rows.csv.committed' -C /root/keep/results gpu
  tables=$(cd /root/keep/results && for c in gpu/runs/*/config.json; do
             python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])).get("role") != "item table")' "$c" \
               && [ -f "${c%config.json}item_embeddings.pt" ] && echo "${c%config.json}item_embeddings.pt"; done)
  [ -n "$tables" ] && tar -czf "$OUT/item_tables.tgz" -C /root/keep/results $tables
  cp /root/keep/log.txt "$OUT/log.txt"
  # unfinished runs: checkpoints and finished evaluation stages, in parts of 15 MiB (files come back
  # 16 MiB at most, 8 files and 64 MiB in all: P5_30's checkpoint is 47 MiB); left behind when they do
  # not fit beside the other files (e.g. several interrupted LLM runs)
  finished_only
  partial=$(cd /root/keep/results && find gpu/runs \( -name checkpoint.pt -o -name 'ranks-*.npz' \) | sort)
  if [ -n "$partial" ]; then
    size=$(cd /root/keep/results && du -cb $partial | tail -1 | cut -f1)
    room=$(( 63 * 1024 * 1024 - $(du -cb "$OUT"/* | tail -1 | cut -f1) ))
    if [ "$size" -le "$room" ]; then
      (cd /root/keep/results && tar -cf - $partial) | split -b 15M - "$OUT/partial.tar."
      echo "packed unfinished runs ($((size / 1024 / 1024)) MiB): $partial"
    else
      echo "unfinished runs' files are $((size / 1024 / 1024)) MiB, more than comes back: not packed ($partial)"
    fi
  fi
fi
exit $status
