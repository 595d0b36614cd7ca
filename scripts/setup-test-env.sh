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
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CACHE="$ROOT/.cache"
# Keep in step with SPARK_LINES in test/support/spark.ts. Format: pyspark version:the Hadoop
# version of its jars:the pom (in spark-plugin/) that resolves hadoop-aws and its SDK. Hadoop 3.3
# uses the AWS SDK v1 bundle; for Hadoop 3.4 (SDK v2, whose bundle alone is 640 MB) the pom
# names the few SDK modules S3A needs instead (about 12 MB).
SPARK_LINES=("3.5.8:3.3.4:s3a-jars.pom.xml" "4.1.1:3.4.2:s3a-jars-sdk2.pom.xml")
log() { echo "setup-test-env: $*" >&2; }
mkdir -p "$CACHE"

# --- Debian packages ---------------------------------------------------------------------------
PACKAGES=(python3-grpcio python3-grpc-tools openssl protobuf-compiler protobuf-compiler-grpc-java-plugin
  libprotobuf-java libgrpc-java libguava-java libnetty-java libperfmark-java libgoogle-gson-java
  libgeronimo-annotation-1.3-spec-java curl)
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
  venv="$CACHE/pyspark-$version"
  if [ ! -f "$venv/.installed" ]; then
    log "installing pyspark==$version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    if ! "$venv/bin/pip" install -q --disable-pip-version-check "pyspark==$version" >/tmp/setup-test-env-pip.log 2>&1; then
      tail -n 20 /tmp/setup-test-env-pip.log >&2
      log "pip could not install pyspark==$version (PyPI must be reachable); run: $venv/bin/pip install pyspark==$version"
      exit 1
    fi
    touch "$venv/.installed"
  fi
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
