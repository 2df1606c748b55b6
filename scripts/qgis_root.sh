#!/usr/bin/env bash
# Run the QGIS tests under another Debian release's QGIS, in a root file system built with debootstrap.
#
#   scripts/qgis_root.sh trixie     # Debian 13: QGIS 3.40, Python 3.13     (make test-qgis340)
#   scripts/qgis_root.sh sid        # Debian unstable: QGIS 3.44            (make test-qgis344)
#   scripts/qgis_root.sh trixie --shell   # a shell inside the root, the project copied in
#
# The root is built once (debootstrap from the Debian archive this machine's apt already uses,
# read from apt's configuration) under .roots/<suite>/ (git-ignored) and reused; a second run only
# copies the working tree in and runs the tests. Inside, the project's own scripts/setup.sh installs
# QGIS, GDAL and torch and makes the virtual environment exactly as on a user's machine of that
# release (the first time: many minutes; then quick), then pytest runs the QGIS tests (offscreen)
# and the qgis_process end-to-end tests.
# Needs root (debootstrap, chroot, mounts).
set -euo pipefail

SUITE="${1:?usage: scripts/qgis_root.sh SUITE [--shell | pytest arguments]}"
shift
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$HERE/.roots/$SUITE"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# A fresh machine of that release: Python, make and certificates. Everything else (QGIS, GDAL,
# torch, the test tools) is installed by the project's scripts/setup.sh, as on a user's machine.
PACKAGES="python3 make ca-certificates"

mirror() {
    # the Debian archive apt already uses here (never written into the repository)
    apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -v -- '-security' | grep '/debian/*$' | head -n 1
}

unmount_all() {
    for m in "$ROOT/work/shared" "$ROOT/dev/pts" "$ROOT/dev" "$ROOT/sys" "$ROOT/proc"; do
        if mountpoint -q "$m" 2>/dev/null; then $SUDO umount -l "$m" || true; fi
    done
}

build_root() {
    command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debootstrap
    local url keyring
    url="$(mirror)"
    [ -n "$url" ] || { echo "qgis_root: no Debian archive found in apt's configuration" >&2; exit 2; }
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    # a release newer than this machine may be signed by a key only a newer keyring has: take the
    # newest keyring of a root already built, if any
    for other in "$HERE"/.roots/*/usr/share/keyrings/debian-archive-keyring.gpg; do
        [ -f "$other" ] && [ "$other" -nt "$keyring" ] && keyring="$other"
    done
    echo "qgis_root: building the $SUITE root in $ROOT (once; several minutes)"
    $SUDO rm -rf "$ROOT.partial"
    $SUDO debootstrap --variant=minbase --keyring="$keyring" "$SUITE" "$ROOT.partial" "$url"
    echo "deb $url $SUITE main" | $SUDO tee "$ROOT.partial/etc/apt/sources.list" >/dev/null
    # an archive snapshot serves Release files past their Valid-Until date: a test root accepts them
    echo 'Acquire::Check-Valid-Until "false";' | $SUDO tee "$ROOT.partial/etc/apt/apt.conf.d/90snapshot" >/dev/null
    $SUDO chroot "$ROOT.partial" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO chroot "$ROOT.partial" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
    $SUDO chroot "$ROOT.partial" apt-get clean
    $SUDO mv "$ROOT.partial" "$ROOT"
}

[ -f "$ROOT/etc/apt/sources.list" ] && [ -x "$ROOT/usr/bin/python3" ] || build_root

trap unmount_all EXIT
$SUDO mount -t proc proc "$ROOT/proc"
$SUDO mount --rbind /sys "$ROOT/sys"
$SUDO mount --rbind /dev "$ROOT/dev"
# The working tree (tracked and untracked files git does not ignore) copied in: the root's own
# .venv, made by setup.sh, must not be the host's.
$SUDO mkdir -p "$ROOT/work/dffn_qgis"
$SUDO find "$ROOT/work/dffn_qgis" -mindepth 1 -maxdepth 1 ! -name .venv ! -name dffn_qgis -exec rm -rf {} +
$SUDO rm -rf "$ROOT/work/dffn_qgis/dffn_qgis"
(cd "$HERE" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | $SUDO tar -xf - -C "$ROOT/work/dffn_qgis"
[ -d "$HERE/../shared" ] && { $SUDO mkdir -p "$ROOT/work/shared"; $SUDO mount --bind -o ro "$HERE/../shared" "$ROOT/work/shared" 2>/dev/null || true; }

# trust what this machine trusts (a local certificate authority in front of the package indexes)
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    $SUDO mkdir -p "$ROOT/usr/local/share/ca-certificates"
    $SUDO cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    $SUDO chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || true
fi

RUN=(env -i HOME=/tmp/home PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen
     XDG_RUNTIME_DIR=/tmp/runtime bash -lc)
SETUP='mkdir -p /tmp/home /tmp/runtime && chmod 700 /tmp/runtime && cd /work/dffn_qgis && bash scripts/setup.sh'
if [ "${1:-}" = "--shell" ]; then
    $SUDO chroot "$ROOT" "${RUN[@]}" "$SETUP; exec bash -i"
    exit 0
fi
ARGS="${*:-tests/qgis tests/e2e}"
$SUDO chroot "$ROOT" "${RUN[@]}" "$SETUP && .venv/bin/python -m pytest -ra -p no:cacheprovider $ARGS"
