#!/usr/bin/env bash
# Runs inside the Debian 11 (bullseye) build root made by build/portable.sh:
# installs the compilers and libraries (bullseye's, so glibc 2.31 and
# OpenSSL 1.1.1), then builds into /opt/mininq-python
#   - SQLite 3.40.1 from Debian bookworm's sqlite3 source package (bullseye's
#     3.34 lacks RETURNING, which mininq needs: 3.35+), and
#   - CPython 3.11.2 from Debian bookworm's python3.11 source package (its
#     upstream tarball), shared libpython as PyInstaller wants, its _sqlite3
#     linked against the SQLite above.
# Both are compiled with build/glibc_compat.h force-included and without
# sem_clockwait, so that no file needs a glibc newer than 2.28 (RHEL 8).
# No PGO and no test suite: a cold build must fit in CI's time.
# The hash of this file is part of the toolchain's cache key.
set -euo pipefail
MIRROR=$1
PREFIX=/opt/mininq-python
JOBS=$(nproc)
export DEBIAN_FRONTEND=noninteractive

echo "--> build dependencies from $MIRROR bullseye"
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    build-essential pkg-config tcl libssl-dev libffi-dev zlib1g-dev uuid-dev \
    ca-certificates xz-utils binutils > /dev/null

echo "--> bookworm's sqlite3 and python3.11 source packages"
echo "deb-src $MIRROR bookworm main" > /etc/apt/sources.list.d/bookworm-src.list
apt-get update -qq
mkdir -p /usr/src/portable
chown _apt /usr/src/portable  # apt downloads as _apt
cd /usr/src/portable
apt-get source --download-only -qq sqlite3 python3.11
sqlite_orig=$(ls sqlite3_*.orig.tar.xz)
python_orig=$(ls python3.11_*.orig.tar.gz)
mkdir sqlite python
tar -xf "$sqlite_orig" -C sqlite --strip-components=1
tar -xf "$python_orig" -C python --strip-components=1

# Debian's fixes on top of the upstream release, in its series order: the
# series from FIRST on (before it come Debian's packaging and install-layout
# changes, which a self-contained /opt build must not take).
apply_debian_fixes() {
    local dir=$1 debian_tar=$2 first=$3
    mkdir "$dir/debian-src"
    tar -xf "$debian_tar" -C "$dir/debian-src"
    local series=$dir/debian-src/debian/patches/series
    grep -qx "$first" "$series" || { echo "$first is not in $debian_tar's series" >&2; exit 1; }
    local names
    names=$(awk -v first="$first" '$1 == first { on = 1 } on && NF && !/^#/ { print $1 }' "$series")
    for name in $names; do
        patch -d "$dir" -p1 -s --no-backup-if-mismatch < "$dir/debian-src/debian/patches/$name" \
            || { echo "Debian's $name does not apply to $dir" >&2; exit 1; }
    done
    echo "    $(echo "$names" | wc -l) of Debian's patches applied to $dir, from $first on"
}
apply_debian_fixes sqlite "$(ls sqlite3_*.debian.tar.xz)" 41-fix_a_bug_in_the_NOT_NULL-IS_NULL_optimization.patch
apply_debian_fixes python "$(ls python3.11_*.debian.tar.xz)" shutdown-deadlock.diff
# Debian builds pyexpat into libpython (its setup-modules.diff, not taken);
# the CVE-2026-4224 fix includes an internal header, which a shared extension
# module may use only when it says it is a core module (as 3.12's pyexpat.c does).
if grep -q '"pycore_ceval.h"' python/Modules/pyexpat.c; then
    sed -i '1i #ifndef Py_BUILD_CORE_BUILTIN\n#  define Py_BUILD_CORE_MODULE 1\n#endif' \
        python/Modules/pyexpat.c
fi

mkdir -p "$PREFIX/include"
cp /glibc_compat.h "$PREFIX/include/glibc_compat.h"
COMPAT="-include $PREFIX/include/glibc_compat.h"

echo "--> SQLite ($sqlite_orig)"
cd /usr/src/portable/sqlite
# Debian's own compile options for libsqlite3 (bookworm's debian/rules), which
# the development build on a Debian 12 host gets from its system library (its
# `PRAGMA compile_options` are the same), plus the 32k page-size limit Debian
# sets with a patch; one amalgamated sqlite3.c instead of Debian's separate files.
export CFLAGS="-O2 -fno-strict-aliasing $COMPAT \
    -DSQLITE_SECURE_DELETE -DSQLITE_ENABLE_COLUMN_METADATA \
    -DSQLITE_ENABLE_FTS3 -DSQLITE_ENABLE_FTS3_PARENTHESIS \
    -DSQLITE_ENABLE_RTREE=1 -DSQLITE_SOUNDEX=1 \
    -DSQLITE_ENABLE_UNLOCK_NOTIFY \
    -DSQLITE_OMIT_LOOKASIDE=1 -DSQLITE_ENABLE_DBSTAT_VTAB \
    -DSQLITE_ALLOW_ROWID_IN_VIEW \
    -DSQLITE_ENABLE_UPDATE_DELETE_LIMIT=1 \
    -DSQLITE_ENABLE_LOAD_EXTENSION \
    -DSQLITE_ENABLE_JSON1 \
    -DSQLITE_LIKE_DOESNT_MATCH_BLOBS \
    -DSQLITE_THREADSAFE=1 \
    -DSQLITE_ENABLE_FTS3_TOKENIZER=1 \
    -DSQLITE_USE_URI=1 \
    -DSQLITE_MAX_SCHEMA_RETRY=25 \
    -DSQLITE_ENABLE_PREUPDATE_HOOK \
    -DSQLITE_ENABLE_SESSION \
    -DSQLITE_ENABLE_STMTVTAB \
    -DSQLITE_MAX_VARIABLE_NUMBER=250000 \
    -DSQLITE_MAX_DEFAULT_PAGE_SIZE=32768"
./configure --quiet --prefix="$PREFIX" --disable-static --disable-readline --disable-tcl \
    --enable-threadsafe --enable-load-extension --enable-json --enable-fts4 --enable-fts5
# The library only (no shell): libsqlite3.so, its headers and sqlite3.pc.
make -s -j"$JOBS" libsqlite3.la sqlite3.h sqlite3.pc > /dev/null
make -s lib_install > /dev/null
install -m 0644 sqlite3.h src/sqlite3ext.h "$PREFIX/include/"
install -d "$PREFIX/lib/pkgconfig"
install -m 0644 sqlite3.pc "$PREFIX/lib/pkgconfig/"
unset CFLAGS

echo "--> CPython ($python_orig)"
cd /usr/src/portable/python
./configure --quiet --prefix="$PREFIX" --enable-shared --disable-test-modules \
    --with-ensurepip=install \
    ac_cv_func_sem_clockwait=no \
    CFLAGS="$COMPAT" \
    PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" \
    CPPFLAGS="-I$PREFIX/include" \
    LDFLAGS="-L$PREFIX/lib -Wl,-rpath,$PREFIX/lib"
make -j"$JOBS" > build.log 2>&1 || { tail -n 40 build.log >&2; exit 1; }
# setup.py reports extension modules that failed to compile but doesn't fail.
if grep -A3 "Failed to build these modules" build.log >&2; then
    exit 1
fi
grep -A3 "necessary bits to build these optional modules were not found" build.log || true
make -s install > install.log 2>&1 || { tail -n 40 install.log >&2; exit 1; }

"$PREFIX/bin/python3" - <<'PY'
import ctypes, hashlib, pyexpat, ssl, sqlite3, sys, uuid, zlib  # noqa: F401  (they must exist)

print("python", sys.version.split()[0], "| sqlite", sqlite3.sqlite_version, "|", ssl.OPENSSL_VERSION)
if sqlite3.sqlite_version_info < (3, 35):
    sys.exit(f"_sqlite3 is linked against SQLite {sqlite3.sqlite_version}, mininq needs 3.35+")
PY
rm -rf /usr/src/portable
