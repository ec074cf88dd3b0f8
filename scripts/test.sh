#!/usr/bin/env bash
# Bootstraps what is missing, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
npm test
