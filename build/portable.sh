#!/usr/bin/env bash
# Build the release executable dist/mininq inside Debian 11 (bullseye), so that
# it runs on any Linux x86_64 with glibc 2.28 or newer (see README, "Supported
# systems"). Needs root (debootstrap, chroot) and the Debian mirror.
#
#   bash build/portable.sh          # dist/mininq, checked by build/glibc_floor.py
#
# Steps, each cached under $MININQ_BUILD_CACHE (default /var/cache/mininq-build)
# and keyed by a hash of what makes it, so a second run only re-runs PyInstaller:
#   1. base-*:      `debootstrap --variant=minbase bullseye`, untouched
#                   (build/smoke_portable.py copies it for its clean test root);
#   2. toolchain-*: a copy of the base with the compilers, SQLite 3.40 and
#                   CPython 3.11 built there from Debian bookworm's source
#                   packages (build/portable_toolchain.sh);
#   3. each run:    the source tree copied in, the project and PyInstaller
#                   pip-installed with that Python, PyInstaller run with
#                   build/mininq.spec, and the result checked against the floor.
# `just build` (build/build.sh) stays the quick build with the host's Python.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=${MININQ_BUILD_CACHE:-/var/cache/mininq-build}
SUITE=bullseye
MIRROR=${MININQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
GLIBC_FLOOR=2.28
started=$(date +%s)
step() { echo "==> $* ($(($(date +%s) - started))s)"; }

key() { cat "$@" | sha256sum | cut -c1-12; }
BASE=$CACHE/base-$SUITE-$(printf '%s\n' "$SUITE" minbase "$MIRROR" | key)
TOOLCHAIN=$CACHE/toolchain-$(printf '%s\n' "$BASE" | cat - build/portable_toolchain.sh build/glibc_compat.h | key)

# The untouched minbase tree, for build/smoke_portable.py's clean test root.
if [[ "${1:-}" == "--print-base" ]]; then
    echo "$BASE"
    exit 0
fi

if [[ $(id -u) != 0 ]]; then
    echo "build/portable.sh needs root (debootstrap and chroot); use build/build.sh for a local build" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "==> installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# Runs a command in a chroot, inside a private mount namespace: /proc and /dev
# mounted there vanish with the namespace, whatever way it ends.
in_root() {
    local root=$1
    shift
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    unshare --mount --propagation private -- sh -c '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ' in_root "$root" "${passed_env[@]}" "$@"
}

# What pip inside needs from this machine: its proxy and index settings, and
# the certificates it trusts (a TLS-inspecting proxy's CA is only in there).
passed_env=()
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY \
    PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
    if [[ -n ${!name:-} ]]; then passed_env+=("$name=${!name}"); fi
done
host_ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}

mkdir -p "$CACHE"
# One build at a time per cache: they share the build root's /src and /venv.
exec 9> "$CACHE/.lock"
if ! flock --nonblock 9; then
    echo "==> waiting for another build/portable.sh using $CACHE"
    flock 9
fi
# Old keys' folders are left by earlier inputs; drop them so the cache holds one of each.
for old in "$CACHE"/base-* "$CACHE"/toolchain-*; do
    if [[ -e $old && $old != "$BASE" && $old != "$TOOLCHAIN" ]]; then
        rm -rf --one-file-system "$old"
    fi
done

if [[ ! -e $BASE/.complete ]]; then
    step "debootstrap --variant=minbase $SUITE into $BASE"
    rm -rf --one-file-system "$BASE.tmp"
    debootstrap --variant=minbase "$SUITE" "$BASE.tmp" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 || {
        tail -n 30 "$CACHE/debootstrap.log" >&2
        exit 1
    }
    touch "$BASE.tmp/.complete"
    mv "$BASE.tmp" "$BASE"
fi

if [[ ! -e $TOOLCHAIN/.complete ]]; then
    step "toolchain: SQLite and CPython built in $SUITE (cold: several minutes)"
    rm -rf --one-file-system "$TOOLCHAIN.tmp"
    cp -a "$BASE" "$TOOLCHAIN.tmp"
    rm "$TOOLCHAIN.tmp/.complete"
    cp build/portable_toolchain.sh "$TOOLCHAIN.tmp/portable_toolchain.sh"
    cp build/glibc_compat.h "$TOOLCHAIN.tmp/glibc_compat.h"
    in_root "$TOOLCHAIN.tmp" bash /portable_toolchain.sh "$MIRROR"
    touch "$TOOLCHAIN.tmp/.complete"
    mv "$TOOLCHAIN.tmp" "$TOOLCHAIN"
fi

step "copying the source tree into the toolchain root"
# The tracked and new files only: no virtualenvs, databases or earlier builds.
rm -rf "$TOOLCHAIN/src"
mkdir "$TOOLCHAIN/src"
git ls-files --cached --others --exclude-standard --deduplicate -z \
    | tar --null --files-from=- --ignore-failed-read -cf - | tar -xf - -C "$TOOLCHAIN/src"

step "dependency guards, then PyInstaller, inside $SUITE"
if [[ -f $host_ca ]]; then
    cp "$host_ca" "$TOOLCHAIN/etc/ssl/host-ca.crt"
    passed_env+=(PIP_CERT=/etc/ssl/host-ca.crt)
fi
in_root "$TOOLCHAIN" bash -euo pipefail -c '
    cd /src
    # The virtualenv survives between runs (pip then only checks versions).
    [ -x /venv/bin/python ] || /opt/mininq-python/bin/python3 -m venv /venv
    /venv/bin/python -m pip install --quiet --disable-pip-version-check \
        --cache-dir /var/cache/pip --editable ".[build]" pytest pytest-timeout
    # The internals mininq patches, as found in the Python that gets frozen
    # (pytest is excluded from the executable by the spec).
    /venv/bin/python -m pytest -q -p no:cacheprovider --noconftest \
        tests/test_dependency_guards.py
    /venv/bin/python -m PyInstaller --noconfirm --clean --log-level WARN \
        --workpath /tmp/pyinstaller-work --distpath /tmp/pyinstaller-dist build/mininq.spec
'
step "glibc floor check"
in_root "$TOOLCHAIN" /venv/bin/python /src/build/glibc_floor.py --max "$GLIBC_FLOOR" /tmp/pyinstaller-dist/mininq
mkdir -p dist
cp "$TOOLCHAIN/tmp/pyinstaller-dist/mininq" dist/mininq.tmp
mv dist/mininq.tmp dist/mininq

step "built dist/mininq"
ls -l "$ROOT/dist/mininq" | awk '{printf "size: %s bytes", $5}'
du -h "$ROOT/dist/mininq" | awk '{printf " (%s)\n", $1}'
"$ROOT/dist/mininq" --version
