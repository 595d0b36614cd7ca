/**
 * Imported first by the CLI: sizes libuv's thread pool before anything uses it. Every file
 * operation (the watcher's reads, the store's writes and fsyncs) runs there, and the default of
 * 4 threads lets a few slow fsyncs stall everything else.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
