#!/usr/bin/env node
/**
 * The `shuffle-agent` executable: sizes libuv's thread pool, then loads the CLI.
 *
 * CommonJS on purpose. libuv creates its pool (4 threads by default) on the first file operation
 * and never resizes it; loading an ES module already reads files through the pool, so setting
 * UV_THREADPOOL_SIZE from the CLI module itself changes nothing. Node reads a CommonJS main file
 * synchronously, so this line runs before the pool exists. Every file operation (the write-back's
 * reads, the file store's copies and fsyncs, serving from disk) runs there: with 4 threads a few
 * slow fsyncs stall everything else. The image and the manifests set the variable too; a value
 * from the environment wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
void import('./cli.js');
