#!/usr/bin/env bash
# Paper Table 5 on CPU: the worm recipe (BBBC010 paper protocol, mask input, scale 0.5)
# with fixed random / low- / high-frequency guides instead of the optimised ones.
# Every run trains for the same number of minibatches as the optimised-guide run of
# `reproduce.py bbbc010 --budget 12` (47 epochs of 20 steps), so only the guides differ.
set -euo pipefail
cd "$(dirname "$0")"
EPOCHS=${EPOCHS:-47}
for g in random low high; do
  python reproduce.py bbbc010 --epochs "$EPOCHS" --guides "$g" "$@"
done
