package io.github.sparkshuffleagent;

import java.util.Map;

import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.PluginContext;

/**
 * Executor side of {@code spark.plugins}: connects the executor's fallback read path to the driver
 * plugin (failed reads reported before the task fails, read totals summed on the driver) and
 * publishes the read counters in the executor's metrics. Does nothing else; no thread, no store
 * access.
 */
final class AgentExecutorPlugin implements ExecutorPlugin {
  @Override
  public void init(PluginContext ctx, Map<String, String> extraConf) {
    ReadReports.connect(ctx);
  }

  @Override
  public void shutdown() {
    ReadReports.disconnect();
  }
}
