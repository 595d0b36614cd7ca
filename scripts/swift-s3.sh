#!/usr/bin/env bash
# A one-node OpenStack Swift cluster with the s3api middleware on 127.0.0.1, for integration
# tests and bench:writeback: a production S3 implementation that verifies Content-MD5 and the
# signed payload hash (s3rver verifies nothing).
#
#   scripts/swift-s3.sh start   # installs Debian's packages when missing, starts, prints the endpoint
#   scripts/swift-s3.sh stop
#   scripts/swift-s3.sh status  # exit 0 and print the endpoint when it answers
#   scripts/swift-s3.sh env     # `export SWIFT_S3_ENDPOINT=...` lines for eval
#   scripts/swift-s3.sh latency MS  # also a proxy server whose every answer waits MS ms (a store
#                                   # far away, at no CPU cost here); prints its endpoint
#
# Idempotent: `start` on a running cluster only prints its endpoint. State (configs, rings,
# devices, logs, pids) lives in $SWIFT_S3_STATE (default /tmp/shuffle-agent-swift), which must be
# on a file system with user xattrs (ext4, xfs; not tmpfs on old kernels). S3 credentials are
# tempauth's `test:tester` / `testing`, path-style addressing, region us-east-1.
set -euo pipefail

STATE="${SWIFT_S3_STATE:-/tmp/shuffle-agent-swift}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PY=/usr/bin/python3
PACKAGES=(swift swift-proxy swift-object swift-container swift-account memcached python3)

log() { echo "swift-s3: $*" >&2; }

endpoint() { cat "$STATE/endpoint" 2>/dev/null; }

# Whether the proxy server at URL answers its health check.
answers() { [ -n "$1" ] && [ "$(curl -fsS --max-time 2 "$1/healthcheck" 2>/dev/null)" = "OK" ]; }

healthy() {
  answers "$(endpoint)"
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { log "missing packages ${missing[*]} and not root"; exit 1; }
  log "installing ${missing[*]}"
  # Keep the packages from starting daemons with their stock configuration during install.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    # apt-cache has nothing on a fresh machine until the lists are fetched.
    if ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >"/tmp/swift-s3-apt.log" 2>&1; then
      apt-get update -q -o DPkg::Lock::Timeout=600 >>"/tmp/swift-s3-apt.log" 2>&1
      apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >>"/tmp/swift-s3-apt.log" 2>&1
    fi
  } || rc=$?
  [ "$created" -eq 1 ] && rm -f "$policy"
  if [ "$rc" -ne 0 ]; then
    tail -n 30 /tmp/swift-s3-apt.log >&2
    log "apt-get failed"
    exit 1
  fi
  # A package whose daemon started anyway (no policy-rc.d honoured) would hold the default ports.
  pkill -x memcached 2>/dev/null || true
}

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

check_xattr() {
  "$PY" - "$1" <<'EOF'
import os, sys
p = os.path.join(sys.argv[1], ".xattr-probe")
open(p, "w").close()
try:
    os.setxattr(p, "user.swift.probe", b"1")
except OSError as e:
    sys.exit(f"{sys.argv[1]}: no user xattrs ({e}); set SWIFT_S3_STATE to a dir on ext4/xfs")
finally:
    os.unlink(p)
EOF
}

write_configs() {
  local etc="$STATE/etc" a="$1" c="$2" o="$3" p="$4" m="$5"
  mkdir -p "$etc" "$STATE/devices/d1" "$STATE/logs" "$STATE/run" "$STATE/cache"
  # Swift reads the hash path salt and storage policies from this fixed path only.
  if [ ! -s /etc/swift/swift.conf ]; then
    mkdir -p /etc/swift
    cat >/etc/swift/swift.conf <<EOF
[swift-hash]
swift_hash_path_suffix = shuffle-agent-test
swift_hash_path_prefix = shuffle-agent-test

[storage-policy:0]
name = Policy-0
default = yes
EOF
  fi
  local common="[DEFAULT]
bind_ip = 127.0.0.1
user = $(id -un)
swift_dir = $etc
devices = $STATE/devices
mount_check = false
log_name = swift
log_level = WARNING
recon_cache_path = $STATE/cache
"
  printf '%sbind_port = %s\nworkers = 1\n\n[pipeline:main]\npipeline = account-server\n\n[app:account-server]\nuse = egg:swift#account\n' "$common" "$a" >"$etc/account-server.conf"
  printf '%sbind_port = %s\nworkers = 1\n\n[pipeline:main]\npipeline = container-server\n\n[app:container-server]\nuse = egg:swift#container\n' "$common" "$c" >"$etc/container-server.conf"
  printf '%sbind_port = %s\nworkers = 2\n\n[pipeline:main]\npipeline = object-server\n\n[app:object-server]\nuse = egg:swift#object\n' "$common" "$o" >"$etc/object-server.conf"
  cat >"$etc/proxy-server.conf" <<EOF
${common}bind_port = $p
workers = 2

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$m

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
  local ring
  for ring in account:$a container:$c object:$o; do
    local name="${ring%%:*}" port="${ring##*:}"
    (
      cd "$etc"
      swift-ring-builder "$name.builder" create 8 1 1 >/dev/null
      swift-ring-builder "$name.builder" add "r1z1-127.0.0.1:$port/d1" 1 >/dev/null
      swift-ring-builder "$name.builder" rebalance >/dev/null
    )
  done
}

spawn() {
  local name="$1"
  shift
  # 9>&-: the daemons must not inherit the lock, or every later call would wait on them forever.
  setsid "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 9>&- &
  echo $! >"$STATE/run/$name.pid"
}

stop() {
  local f pids=()
  for f in "$STATE"/run/*.pid; do
    [ -e "$f" ] || continue
    local pid
    pid="$(cat "$f")"
    # setsid made each server the leader of its own process group: end the group (its workers).
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    rm -f "$f"
    pids+=("$pid")
  done
  # Wait (up to 10 s) for the servers and their workers to go, then make sure.
  local i p
  for i in $(seq 1 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 -- "-$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  rm -f "$STATE/endpoint" "$STATE"/endpoint-latency-*
}

# A second proxy server on the same cluster, with scripts/swift/swift_latency.py first in its
# pipeline: every answer waits MS ms after the request was handled. Started once per MS.
latency() {
  local ms="$1" name epf conf port
  [[ "$ms" =~ ^[0-9]+$ ]] || { log "latency: a number of milliseconds expected, not '$ms'"; exit 2; }
  healthy || start >/dev/null
  name="proxy-latency-$ms"
  epf="$STATE/endpoint-latency-$ms"
  if answers "$(cat "$epf" 2>/dev/null)"; then
    cat "$epf"
    return 0
  fi
  [ -e "$STATE/run/$name.pid" ] && kill -TERM -- "-$(cat "$STATE/run/$name.pid")" 2>/dev/null || true
  port="$(free_port)"
  conf="$STATE/etc/$name.conf"
  sed -e "s/^bind_port = .*/bind_port = $port/" -e "s/^pipeline = /pipeline = latency /" "$STATE/etc/proxy-server.conf" >"$conf"
  printf '\n[filter:latency]\npaste.filter_factory = swift_latency:filter_factory\ndelay_ms = %s\n' "$ms" >>"$conf"
  spawn "$name" env PYTHONPATH="$HERE/swift" swift-proxy-server "$conf"
  wait_answering "http://127.0.0.1:$port" "$name" || exit 1
  echo "http://127.0.0.1:$port" >"$epf"
  cat "$epf"
}

# Wait up to 30 s for the proxy server at URL to answer, while the servers NAME... (their pid
# files under run/) are alive; 1 after saying which one exited, or that none answered.
wait_answering() {
  local url="$1" i s
  shift
  for i in $(seq 1 150); do
    answers "$url" && return 0
    for s in "$@"; do
      if ! kill -0 "$(cat "$STATE/run/$s.pid")" 2>/dev/null; then
        log "$s exited during start:"
        tail -n 30 "$STATE/logs/$s.log" >&2
        return 1
      fi
    done
    sleep 0.2
  done
  log "$url not healthy after 30 s"
  return 1
}

start() {
  if healthy; then
    endpoint
    return 0
  fi
  stop
  install_packages
  rm -rf "$STATE"
  mkdir -p "$STATE"
  check_xattr "$STATE"
  local a c o p m
  a="$(free_port)"; c="$(free_port)"; o="$(free_port)"; p="$(free_port)"; m="$(free_port)"
  write_configs "$a" "$c" "$o" "$p" "$m"
  spawn memcached memcached -l 127.0.0.1 -p "$m" -U 0 -u "$(id -un)" -m 64
  local s
  for s in account container object proxy; do
    spawn "$s" "swift-$s-server" "$STATE/etc/$s-server.conf"
  done
  echo "http://127.0.0.1:$p" >"$STATE/endpoint"
  if ! wait_answering "$(endpoint)" memcached account container object proxy; then
    stop
    exit 1
  fi
  endpoint
}

# Parallel test workers may all ask for the cluster at once: one start at a time.
mkdir -p "$(dirname "$STATE")"
exec 9>"$STATE.lock"
flock 9

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) healthy && endpoint ;;
  latency) latency "${2:-}" ;;
  env)
    healthy || start >/dev/null
    echo "export SWIFT_S3_ENDPOINT=$(endpoint) SWIFT_S3_ACCESS_KEY_ID=test:tester SWIFT_S3_SECRET_ACCESS_KEY=testing"
    ;;
  *) echo "usage: $0 start|stop|status|env|latency MS" >&2; exit 2 ;;
esac
