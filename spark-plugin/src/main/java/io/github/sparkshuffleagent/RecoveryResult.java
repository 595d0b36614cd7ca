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
final class RecoveryResult {
  private final String executorId;
  private final int outputs;
  private final int repointed;
  private final int recomputed;
  private final long millis;

  RecoveryResult(String executorId, int outputs, int repointed, int recomputed, long millis) {
    this.executorId = executorId;
    this.outputs = outputs;
    this.repointed = repointed;
    this.recomputed = recomputed;
    this.millis = millis;
  }

  String executorId() {
    return executorId;
  }

  int outputs() {
    return outputs;
  }

  int repointed() {
    return repointed;
  }

  int recomputed() {
    return recomputed;
  }

  long millis() {
    return millis;
  }

  @Override
  public String toString() {
    return "RecoveryResult[executorId=" + executorId + ", outputs=" + outputs + ", repointed=" + repointed
        + ", recomputed=" + recomputed + ", millis=" + millis + "]";
  }
}
