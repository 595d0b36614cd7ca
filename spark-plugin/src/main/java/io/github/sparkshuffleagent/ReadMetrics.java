package io.github.sparkshuffleagent;

import com.codahale.metrics.Counter;
import com.codahale.metrics.MetricRegistry;

/**
 * Counters of the executor-side fallback read path, published through Spark's metrics system
 * under the executor plugin's source, and summed on the driver from each task's report (see
 * {@link ReadReports}).
 */
final class ReadMetrics {
  /** Fallback blocks (one reduce partition, or a batch of them) handed to Spark's reader. */
  final Counter blocks = new Counter();
  /** Bytes of those blocks. */
  final Counter bytes = new Counter();
  /** Store calls made (index reads, block reads, stream opens), retries included. */
  final Counter requests = new Counter();
  /** Attempts repeated after a transient error. */
  final Counter retries = new Counter();
  /** Blocks streamed rather than held whole (over the task's byte budget). */
  final Counter streamed = new Counter();
  /** Small data objects fetched whole onto the executor's disk (see {@link LocalCopies}). */
  final Counter localCopies = new Counter();
  /** Reads that failed for good and were reported to the driver. */
  final Counter failuresReported = new Counter();

  void register(MetricRegistry registry) {
    registry.register("fallbackBlocksRead", blocks);
    registry.register("fallbackBytesRead", bytes);
    registry.register("fallbackRequests", requests);
    registry.register("fallbackRetries", retries);
    registry.register("fallbackBlocksStreamed", streamed);
    registry.register("fallbackLocalCopies", localCopies);
    registry.register("fallbackReadFailures", failuresReported);
  }
}
