package io.github.sparkshuffleagent;

/**
 * What recovery did for one lost executor.
 *
 * @param executorId the executor
 * @param outputs map outputs the tracker held at it
 * @param repointed outputs now read from the fallback store
 * @param recomputed outputs unregistered, so Spark recomputes them
 * @param millis time from the start of recovery to the last action
 */
record RecoveryResult(String executorId, int outputs, int repointed, int recomputed, long millis) {}
