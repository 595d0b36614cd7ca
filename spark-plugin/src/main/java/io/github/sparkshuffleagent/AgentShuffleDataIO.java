package io.github.sparkshuffleagent;

import org.apache.spark.SparkConf;
import org.apache.spark.shuffle.api.ShuffleDataIO;
import org.apache.spark.shuffle.api.ShuffleDriverComponents;
import org.apache.spark.shuffle.api.ShuffleExecutorComponents;
import org.apache.spark.shuffle.sort.io.LocalDiskShuffleDataIO;

/**
 * {@code spark.shuffle.sort.io.plugin.class}: Spark's own local-disk shuffle IO (the write path
 * and the files the agent watches stay exactly Spark's), whose driver side reports reliable
 * storage while the driver plugin runs.
 */
public final class AgentShuffleDataIO implements ShuffleDataIO {
  private final LocalDiskShuffleDataIO delegate;

  public AgentShuffleDataIO(SparkConf conf) {
    this.delegate = new LocalDiskShuffleDataIO(conf);
  }

  @Override
  public ShuffleExecutorComponents executor() {
    return delegate.executor();
  }

  @Override
  public ShuffleDriverComponents driver() {
    return new AgentShuffleDriverComponents(delegate.driver());
  }
}
