#!/usr/bin/env bash
# Builds the Spark plugin's jars (spark-plugin/target) with Maven when a source changed since the
# last build; a no-op otherwise. `npm run build` calls it and goes on without the plugin when
# Maven or a JDK is missing (the agent alone needs neither); with --required (the test set-up)
# that is an error naming what to install.
set -euo pipefail
cd "$(dirname "$0")/../spark-plugin"
required=0
[ "${1:-}" = "--required" ] && required=1
log() { echo "build-plugin: $*" >&2; }

# The project's one version is package.json's (test/k8s/chart.test.ts checks the pom says the same).
JAR="target/spark-shuffle-agent-plugin-$(sed -n 's/^  "version": "\(.*\)",$/\1/p' ../package.json).jar"
# Maven leaves an unchanged jar's time alone: a stamp of our own says when it last built.
STAMP=target/.built
if [ -f "$JAR" ] && [ -f "$STAMP" ] && [ -z "$(find src pom.xml -newer "$STAMP" -print -quit)" ]; then
  exit 0
fi
if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  if [ "$required" -eq 1 ]; then
    log "Maven and a JDK 17+ are needed for the Spark plugin: apt-get install maven openjdk-17-jdk-headless"
    exit 1
  fi
  log "skipped: Maven or javac not found (the agent does not need them; the Spark plugin does)"
  exit 0
fi
log "building the Spark plugin (mvn package)"
if ! mvn -q -B package >/tmp/build-plugin-mvn.log 2>&1; then
  tail -n 40 /tmp/build-plugin-mvn.log >&2
  log "the Maven build failed (full log: /tmp/build-plugin-mvn.log)"
  exit 1
fi
touch "$STAMP"
