#!/usr/bin/env bash
# Release artefacts: dist/mininq (built by build.sh, which `just release` runs
# first) and dist/SHA256SUMS next to it.
set -euo pipefail

cd "$(dirname "$0")/../dist"
if [[ ! -x mininq ]]; then
    echo "dist/mininq is missing: run build/build.sh (just build) first" >&2
    exit 1
fi
sha256sum mininq > SHA256SUMS
cat SHA256SUMS
sha256sum --check --quiet SHA256SUMS
