#!/usr/bin/env bash
# SeaweedFS's `weed` (with its S3 gateway), built once from the Go module proxy and cached under
# .cache/, for bench:spark-read: an S3 server in Go, much faster on small ranged GETs than the
# one-node Swift (Python on the same cores).
#
#   scripts/seaweedfs.sh install   # idempotent; prints the binary's path on its last line
#
# `go install github.com/seaweedfs/seaweedfs/weed@VERSION` is refused (the module's go.mod has a
# replace directive), so the script downloads the module with `go mod download` and builds it as
# the main module. The build takes minutes and about 3 GiB of memory on 2 cores.
set -euo pipefail

VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
MODULE=github.com/seaweedfs/seaweedfs
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.cache/seaweedfs-$VERSION"
BIN="$DEST/weed"

log() { echo "seaweedfs: $*" >&2; }

# The build directory, removed on exit (global: the EXIT trap runs after install() returned).
work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT
fail() {
  log "cannot install weed $VERSION: $*"
  exit 1
}

install() {
  if [ -x "$BIN" ] && "$BIN" version >/dev/null 2>&1; then
    echo "$BIN"
    return 0
  fi
  command -v go >/dev/null || fail "no Go toolchain on PATH (apt-get install golang, or Go from go.dev)"
  work="$(mktemp -d /tmp/seaweedfs-build.XXXXXX)"
  log "downloading $MODULE@$VERSION from the Go module proxy"
  local dir
  dir="$(go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" ||
    fail "go mod download $MODULE@$VERSION failed (is the Go module proxy reachable?)"
  [ -n "$dir" ] && [ -f "$dir/go.mod" ] || fail "go mod download gave no module directory for $MODULE@$VERSION"
  # The module cache is read-only; build a writable copy as the main module so its replace
  # directives apply.
  cp -r "$dir" "$work/src"
  chmod -R u+w "$work/src"
  log "building weed (minutes; about 3 GiB of memory)"
  (cd "$work/src" && GOFLAGS=-mod=mod go build -p 2 -o "$work/weed" ./weed) >"$work/build.log" 2>&1 || {
    tail -n 30 "$work/build.log" >&2
    fail "go build ./weed failed (log above)"
  }
  "$work/weed" version >/dev/null 2>&1 || fail "the built weed does not run"
  mkdir -p "$DEST"
  # Atomic: a concurrent caller sees either no binary or a whole one.
  mv "$work/weed" "$BIN.tmp.$$"
  mv "$BIN.tmp.$$" "$BIN"
  log "installed $BIN"
  echo "$BIN"
}

case "${1:-install}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
