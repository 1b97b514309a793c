#!/usr/bin/env bash
# Run the book's gpu profile on a lent H200 (see ../../docs/gpu.md). Arguments go to slmrec_lib.run.
# Expects: /root/keep/SmolLM2-135M-Instruct.Q4_1.gguf, the gguf wheel in /root/keep, the data in .gpu/data.
# TIMING=<dataset> runs the efficiency benchmark instead (results/gpu/timing.csv).
# On a machine of several GPUs pass e.g. --workers 8: runs train side by side, spread over the GPUs.
# Results accumulate in /root/keep/results (kept while the machine stays warm) and are packed into $OUT
# (results_gpu.tgz: rows and configs; item_tables.tgz: the item tables the LLM runs read).
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
  tar -czf "$OUT/results_gpu.tgz" --exclude='checkpoint*' --exclude='*.pt' --exclude='.lock' -C /root/keep/results gpu
  tables=$(cd /root/keep/results && grep -l '"label": "SASRec item table"' gpu/runs/*/config.json 2>/dev/null \
           | sed 's#config.json$#item_table.pt#' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
  [ -n "$tables" ] && tar -czf "$OUT/item_tables.tgz" -C /root/keep/results $tables
  cp /root/keep/log.txt "$OUT/log.txt"
fi
exit $status
