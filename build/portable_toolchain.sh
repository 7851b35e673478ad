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

mkdir -p "$PREFIX/include"
cp /glibc_compat.h "$PREFIX/include/glibc_compat.h"
COMPAT="-include $PREFIX/include/glibc_compat.h"

echo "--> SQLite ($sqlite_orig)"
cd /usr/src/portable/sqlite
# Debian's own compile options for libsqlite3 (debian/rules), which the
# development build on a Debian 12 host gets from its system library.
export CFLAGS="-O2 $COMPAT -DSQLITE_SECURE_DELETE -DSQLITE_ENABLE_COLUMN_METADATA \
    -DSQLITE_ENABLE_FTS3 -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_RTREE=1 \
    -DSQLITE_SOUNDEX=1 -DSQLITE_ENABLE_UNLOCK_NOTIFY -DSQLITE_OMIT_LOOKASIDE=1 \
    -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ENABLE_UPDATE_DELETE_LIMIT=1 \
    -DSQLITE_ENABLE_LOAD_EXTENSION -DSQLITE_ENABLE_JSON1 -DSQLITE_LIKE_DOESNT_MATCH_BLOBS \
    -DSQLITE_THREADSAFE=1 -DSQLITE_ENABLE_FTS4 -DSQLITE_ENABLE_FTS5 \
    -DSQLITE_USE_URI=1 -DSQLITE_MAX_SCHEMA_RETRY=25 -DSQLITE_ENABLE_PREUPDATE_HOOK \
    -DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_STMTVTAB -DSQLITE_MAX_VARIABLE_NUMBER=250000"
./configure --quiet --prefix="$PREFIX" --disable-static --disable-readline \
    --disable-tcl --enable-threadsafe --enable-load-extension
make -s -j"$JOBS" > /dev/null
make -s install > /dev/null
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
make -s -j"$JOBS" > /dev/null 2> build.log || { tail -n 40 build.log >&2; exit 1; }
make -s install > install.log 2>&1 || { tail -n 40 install.log >&2; exit 1; }

"$PREFIX/bin/python3" - <<'PY'
import ctypes, hashlib, ssl, sqlite3, sys, uuid, zlib  # noqa: F401  (the modules must exist)

print("python", sys.version.split()[0], "| sqlite", sqlite3.sqlite_version, "|", ssl.OPENSSL_VERSION)
if sqlite3.sqlite_version_info < (3, 35):
    sys.exit(f"_sqlite3 is linked against SQLite {sqlite3.sqlite_version}, mininq needs 3.35+")
PY
rm -rf /usr/src/portable
