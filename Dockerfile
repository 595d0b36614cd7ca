# syntax=docker/dockerfile:1
# spark-shuffle-agent image: `docker build -t spark-shuffle-agent .`
# Where no registry is reachable, scripts/build-image.sh makes the same runtime image from Debian
# packages (test/image/image.test.ts builds and starts it).
# Node 24 (LTS): Node 20 reached its end of life on 2026-04-30. Keep in step with NODE_VERSION in
# scripts/build-image.sh and the Node the tests run on (scripts/setup-test-env.sh).
# Pin NODE_IMAGE by digest in production (node:24.19-bookworm-slim@sha256:...).
ARG NODE_IMAGE=node:24-bookworm-slim
# The Spark plugin's build: JDK 17 compiling Java 11 bytecode (maven.compiler.release), which
# loads on Spark 3.5's Java 11 images and on 17 and 21. Pin by digest in production.
ARG MAVEN_IMAGE=maven:3.9-eclipse-temurin-17

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No dependency needs an install script to build or run (protobufjs' and esbuild's are skipped
# by npm 11 as well); skipping them keeps the build from running registry code.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY agent ./agent
COPY scripts/bundle-agent.mjs ./scripts/
# The agent only (tsc, then esbuild bundles the CLI into dist/agent/shuffle-agent.cjs): the Spark
# plugin is built by Maven in its own stage below.
RUN npm run build:agent

# ---- deps: production dependencies only ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---- plugin: the Spark plugin's jar, copied by the pod templates' init container into Spark's
# class path ----
FROM ${MAVEN_IMAGE} AS plugin
WORKDIR /src
COPY spark-plugin/pom.xml ./
COPY spark-plugin/src ./src
# One version-free name, so jobs' class paths do not change at each upgrade.
RUN mvn -q -B package \
 && cp target/spark-shuffle-agent-plugin-*[0-9].jar /src/spark-shuffle-agent-plugin.jar

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
# uid/gid 10185: the agent's own, not Spark's 185, so a tenant's Spark process cannot signal or
# write as the agent. It reads Spark's files through their modes (world-readable with Spark's
# default umask) and, for group-only (0770) directories, through membership of Spark's group
# 185 (the pod templates also set supplementalGroups). Numeric USER lets Kubernetes verify
# runAsNonRoot. npm, npx, corepack and yarn are removed: nothing runs them at run time.
# inotify-tools: inotifywait watches Spark's NN directories for the agent (--file-events auto): the
# kernel reports no writes and scratch files' events are dropped before Node sees them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends inotify-tools \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10185 shuffle-agent \
 && groupadd --system --gid 185 spark \
 && useradd --system --uid 10185 --gid 10185 --groups spark --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin shuffle-agent \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-* \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
# UV_THREADPOOL_SIZE: libuv's pool runs every file operation (reads, copies, fsyncs); its
# default of 4 lets a few slow fsyncs stall the rest. Read once, when the process starts.
ENV NODE_ENV=production \
    TMPDIR=/tmp \
    UV_THREADPOOL_SIZE=16
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# package.json: "type": "module" for dist/*.js, and the version; proto/: loaded by the gRPC
# service at start (the bundle in dist/agent/ looks for ../../proto).
COPY package.json ./
COPY proto ./proto
# A fixed, version-free path the pod templates copy from (an init container into a volume Spark's
# JVMs load); the jar's own manifest says its version.
COPY --from=plugin /src/spark-shuffle-agent-plugin.jar /opt/spark-shuffle-agent/spark-shuffle-agent-plugin.jar
USER 10185:10185
# 9464: HTTP (/healthz, /readyz, /metrics, /v1/status); 7337: gRPC block service.
EXPOSE 9464 7337
# Nothing is written outside mounted volumes, so the root filesystem can be read-only; mount an
# emptyDir at /tmp (TMPDIR) as the chart does.
# The CLI bundled into one file (scripts/bundle-agent.mjs): it starts in about two thirds of the
# CPU time of the per-module build (bench:startup). No --enable-source-maps: Node would parse the
# bundle's map at every start (bench:startup: 0.51 s of CPU instead of 0.29, 157 MiB RSS instead
# of 86). Stack traces name the bundle's functions; set NODE_OPTIONS=--enable-source-maps to get
# the TypeScript lines (the map is in the image).
ENTRYPOINT ["node", "/app/dist/agent/shuffle-agent.cjs"]
CMD ["run"]
