#!/usr/bin/env bash
# The whole test suite on Python 3.14, from Debian's packages (the README's `make test` runs it
# after the 3.11 suite). Debian's unstable suite ships python3.14; a minimal chroot of it is
# made once with debootstrap and kept in a cache outside the checkout, so a second run on the
# same machine starts at once; a fresh machine builds it (~30 s, plus ~1 min of pip installs).
#
#   tools/py314.sh            run the suite on 3.14 (needs root: chroot and mounts)
#   tools/py314.sh --rebuild  make the chroot afresh first
#
# The checkout is bind-mounted at /src in the chroot, with /proc and a tmpfs /dev/shm (shared
# memory for the process backend), all in a private mount namespace; the machine's CA bundle is
# copied in for pip.
set -euo pipefail

CHECKOUT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${LIGHTWORK_CACHE:-$HOME/.cache/lightwork}"
ROOT="$CACHE/py314-chroot"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STAMP="$ROOT/.lightwork-ready"

if [ "$(id -u)" != 0 ]; then
    # Not a failure of the code: say so loudly and let the 3.11 result stand.
    echo "tools/py314.sh: SKIPPED, NOT TESTED ON PYTHON 3.14: it needs root" \
        "(debootstrap, chroot, mounts); run 'sudo make test-3.14'" >&2
    exit 0
fi
# Mounts in a private mount namespace of this run's own: they vanish with it, however it ends
# (even SIGKILLed), and nothing else on the machine sees them.
if [ -z "${LIGHTWORK_PY314_NAMESPACE:-}" ]; then
    exec unshare --mount --propagation private env LIGHTWORK_PY314_NAMESPACE=1 "$0" "$@"
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/py314.lock"  # one run at a time on a machine: they share the chroot
flock -w 1800 9 || { echo "tools/py314.sh: another run holds $ROOT" >&2; exit 1; }
for stale in "$ROOT/src" "$ROOT/dev/shm" "$ROOT/proc"; do  # (copied from outside: let go here)
    mountpoint -q "$stale" && umount -l "$stale"
done

if [ "${1:-}" = "--rebuild" ]; then
    shift  # the rest are pytest's
    rm -rf --one-file-system "$ROOT"  # never into a checkout still mounted somewhere
fi
if [ ! -e "$STAMP" ]; then
    if ! command -v debootstrap >/dev/null; then
        apt-get install -y -q debootstrap >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
    fi
    rm -rf --one-file-system "$ROOT"
    echo "py314: debootstrap of Debian unstable with python3.14 into $ROOT"
    debootstrap --variant=minbase --include=python3.14,python3.14-venv,ca-certificates \
        sid "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    touch "$STAMP"
fi

for bundle in /etc/ssl/certs/ca-certificates.crt; do
    [ -e "$bundle" ] && cp "$bundle" "$ROOT/etc/ssl/certs/ca-certificates.crt"
done
mkdir -p "$ROOT/src" "$ROOT/proc" "$ROOT/dev/shm"
cleanup() {  # (the namespace drops them anyway; a lazy unmount never fails on a busy one)
    umount -l "$ROOT/src" 2>/dev/null || true
    umount -l "$ROOT/dev/shm" 2>/dev/null || true
    umount -l "$ROOT/proc" 2>/dev/null || true
}
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"
mount -t tmpfs -o size=4g tmpfs "$ROOT/dev/shm"
mount --bind "$CHECKOUT" "$ROOT/src"

# The venv lives in the chroot, not the checkout; it is reinstalled when pyproject.toml changes.
chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180 PYTHONDONTWRITEBYTECODE=1 /bin/sh -euc '
    venv=/opt/lightwork-venv
    if ! cmp -s /src/pyproject.toml "$venv/pyproject.toml" 2>/dev/null; then
        rm -rf "$venv"
        python3.14 -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet -e "/src[dev]"  # (3.14 bytecode is not written)
        cp /src/pyproject.toml "$venv/pyproject.toml"
    fi
    cd /src
    "$venv/bin/python" --version
    exec "$venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
' py314 "$@"
