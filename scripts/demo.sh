#!/usr/bin/env bash
# The main job: bootstraps what is missing, trains LeNet-5 on Fashion-MNIST
# with AdamW through `keel train` (progress on the terminal, metrics and
# checkpoints under runs/lenet5/), prints the summary, then `keel doctor`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
out=runs/lenet5
rm -rf "$out"
node bin/keel.js train --model lenet5 --data fashion-mnist --optim adamw --lr 3e-3 --epochs "${EPOCHS:-5}" --warmup 100 --out "$out"
node -e "const s=require('./$out/summary.json'); console.log('summary: test accuracy ' + (100*s.testAccuracy).toFixed(2) + '%, test loss ' + s.testLoss.toFixed(4) + ', ' + s.steps + ' steps in ' + (s.wallTimeMs/1000).toFixed(0) + ' s on ' + s.threads + ' threads')"
node bin/keel.js doctor
