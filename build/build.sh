#!/usr/bin/env bash
# Build dist/mininq, the one-file executable (Linux x86_64), from a fresh clone.
#
#   bash build/build.sh            # one file: dist/mininq
#   bash build/build.sh --onedir   # one folder: dist/mininq-onedir/mininq
#
# Creates (or reuses) the build virtualenv build/.venv with the running
# python3 (3.11+, or $PYTHON), installs PyInstaller and the project into it,
# then runs PyInstaller with build/mininq.spec.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
VENV=build/.venv
SPEC_ARGS=()
OUT=dist/mininq
if [[ "${1:-}" == "--onedir" ]]; then
    SPEC_ARGS=(-- --onedir)
    OUT=dist/mininq-onedir/mininq
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"mininq needs Python 3.11+ to build, found {sys.version.split()[0]}")
PY

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

echo "==> installing PyInstaller and mininq into $VENV"
# Editable: a regular install would let setuptools write build/lib and
# build/bdist.* into this folder (stale files there leak into later wheels).
# PyInstaller reads mininq from the source tree (pathex in the spec) anyway.
"$VENV/bin/python" -m pip install --quiet --editable ".[build]"

echo "==> running PyInstaller"
"$VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
    --workpath build/work --distpath dist \
    build/mininq.spec "${SPEC_ARGS[@]}"

echo "==> built $OUT"
ls -l "$ROOT/$OUT" | awk '{printf "size: %s bytes", $5}'
du -h "$ROOT/$OUT" | awk '{printf " (%s)\n", $1}'
"$ROOT/$OUT" --version
