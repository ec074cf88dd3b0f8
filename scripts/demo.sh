#!/usr/bin/env bash
# Bootstraps what is missing, trains a small network and prints `keel doctor`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
node examples/demo.mjs
node bin/keel.js doctor
