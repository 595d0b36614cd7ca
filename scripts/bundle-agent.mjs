// The agent CLI as one file, dist/agent/shuffle-agent.cjs (run by `npm run build:agent` after tsc).
//
// Why: loading the CLI from node_modules resolves, reads and evaluates a few hundred files (the
// AWS SDK, gRPC, proto-loader, prom-client, pino); bench:startup measured that as most of the
// CLI's start-up, which a short job pays in full (issue 19). One file skips the resolution and
// the per-file reads. Module bodies still run only when first required, so the commands stay lazy
// (`fetch` does not evaluate the S3 SDK).
//
// CommonJS, like bin.cts: its first line sizes libuv's thread pool before any file is read.
// `import.meta.url` (version.ts and serve/proto.ts find package.json and proto/ from it) becomes
// the bundle's own URL; dist/agent/ is where the tsc build's bin.cjs is, so the same relative
// paths find them. The tsc build (dist/agent/**/*.js) stays for the tests that import modules.
import { build } from 'esbuild';

await build({
  entryPoints: ['agent/bin.cts'],
  outfile: 'dist/agent/shuffle-agent.cjs',
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  // Stack traces with --enable-source-maps (the image's entrypoint): mappings only, no copy of
  // the sources, so the map Node reads at start stays small.
  sourcemap: true,
  sourcesContent: false,
  define: { 'import.meta.url': '__shuffleAgentUrl' },
  banner: { js: "const __shuffleAgentUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
