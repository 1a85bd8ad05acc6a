#!/usr/bin/env bash
# Issue 3's CPU experiment: the three decoder variants on BBBC010 (paper protocol,
# binary foreground mask as input). The SinConv run calibrates the number of
# epochs that fits in $MINUTES of training; the CoordConv and plain runs train
# for exactly as many steps, so that the comparison is fair.
set -euo pipefail
cd "$(dirname "$0")"
MINUTES=${MINUTES:-17}
python train_embedding.py --dataset bbbc010 --variant sin --minutes "$MINUTES" "$@"
EPOCHS=$(python -c "import json; print(json.load(open('out/train_bbbc010_sin.json'))['row']['epochs'])")
for v in coord none; do
  python train_embedding.py --dataset bbbc010 --variant "$v" --epochs "$EPOCHS" "$@"
done
