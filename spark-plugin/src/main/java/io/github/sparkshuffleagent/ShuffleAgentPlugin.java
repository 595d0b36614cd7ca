package io.github.sparkshuffleagent;

import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.ExecutorPlugin;
import org.apache.spark.api.plugin.SparkPlugin;

/**
 * {@code spark.plugins}: the driver side re-points a lost executor's verified map outputs to the
 * fallback store and handles failed fallback reads; the executor side connects the executor's
 * read path ({@link AgentShuffleManager}) to it.
 */
public final class ShuffleAgentPlugin implements SparkPlugin {
  @Override
  public DriverPlugin driverPlugin() {
    return new AgentDriverPlugin();
  }

  @Override
  public ExecutorPlugin executorPlugin() {
    return new AgentExecutorPlugin();
  }
}
