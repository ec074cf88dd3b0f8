#!/usr/bin/env bash
# Installs what a fresh Debian 12 + Node 20 machine lacks, then builds Keel:
# Debian packages (apt-get when root, else the exact command to run), npm ci,
# the native addon (against the libtorch found here) and the TypeScript.
# Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# chromium: only for the dashboard's browser tests (driven by playwright-core, no browser download);
# python3-protobuf: the independent reader of TensorBoard files in the tests
for pkg in libtorch-dev libopenblas0-pthread python3-torch dataset-fashion-mnist chromium python3-protobuf; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "keel: installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "keel: missing Debian packages: ${need[*]}" >&2
    echo "keel: install them with:  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
node scripts/build-native.mjs
npx tsc -p tsconfig.json
