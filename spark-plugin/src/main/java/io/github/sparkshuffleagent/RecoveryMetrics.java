package io.github.sparkshuffleagent;

import java.util.concurrent.TimeUnit;

import com.codahale.metrics.Counter;
import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.Timer;

/**
 * The plugin's counters, published through Spark's metrics system under the plugin's source
 * ({@code plugin.io.github.sparkshuffleagent.ShuffleAgentPlugin.*}).
 */
final class RecoveryMetrics {
  final Counter executorsRecovered = new Counter();
  final Counter outputsRepointed = new Counter();
  final Counter outputsRecomputed = new Counter();
  final Counter storeErrors = new Counter();
  final Timer verificationTime = new Timer();

  void register(MetricRegistry registry) {
    registry.register("executorsRecovered", executorsRecovered);
    registry.register("outputsRepointed", outputsRepointed);
    registry.register("outputsRecomputed", outputsRecomputed);
    registry.register("storeErrors", storeErrors);
    registry.register("verificationTime", verificationTime);
  }

  void recordVerification(long nanos) {
    verificationTime.update(nanos, TimeUnit.NANOSECONDS);
  }
}
