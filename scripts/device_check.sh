#!/usr/bin/env bash
# The GPU numbers under reports/bench/ and reports/gpu/: one prepared run on a lent
# H100/H200 (see reports/bench/README.md). Needs the ultralytics wheel in .whl/ (pure Python) and
# the small committed-by-DVC inputs carried: data/train_restorer, data/train_detector,
# data/pseudolabel. Everything else is regenerated (prepare, degrade and restore are
# deterministic). Writes into $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TORCHINDUCTOR_COMPILE_THREADS=16
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
# QUICK=1: only the most wanted rows (scripts/device_quick.py), for a short device session
if [ "${QUICK:-0}" = 1 ]; then
  timeout "${BENCH_S:-420}" python3 scripts/device_quick.py "$OUT/train-extra.json" 2>&1 | tee "$OUT/quick.log"
  exit 0
fi
# 1. one training step, every speed option, cached vs per-step, in one run
timeout "${BENCH_S:-330}" python3 -m stages bench train --device cuda --out "$OUT" 2>&1 | tee "$OUT/bench.log"
# 2. the default pipeline's inputs, then a longer translator training on the GPU
t0=$(date +%s)
python3 -m stages prepare 2>&1 | tail -1; python3 -m stages degrade 2>&1 | tail -1; python3 -m stages restore --device cuda 2>&1 | tail -1
echo "prepare+degrade+restore: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/stages.txt"
timeout "${TRAIN_S:-200}" python3 scripts/gpu_train.py "$OUT" ${TRAIN_ARGS:-} 2>&1 | tee "$OUT/train.log"
