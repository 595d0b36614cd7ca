package io.github.sparkshuffleagent;

import java.util.Map;

import org.apache.spark.shuffle.api.ShuffleDriverComponents;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The local-disk driver components, plus {@link #supportsReliableStorage()}: with it true the
 * DAGScheduler keeps a lost executor's outputs registered (instead of unregistering them all),
 * and the plugin decides output by output whether the stored copy serves or Spark recomputes.
 */
final class AgentShuffleDriverComponents implements ShuffleDriverComponents {
  private static final Logger LOG = LoggerFactory.getLogger(AgentShuffleDriverComponents.class);

  private final ShuffleDriverComponents delegate;
  private volatile boolean warned;

  AgentShuffleDriverComponents(ShuffleDriverComponents delegate) {
    this.delegate = delegate;
  }

  @Override
  public Map<String, String> initializeApplication() {
    return delegate.initializeApplication();
  }

  @Override
  public void cleanupApplication() {
    delegate.cleanupApplication();
  }

  @Override
  public void registerShuffle(int shuffleId) {
    delegate.registerShuffle(shuffleId);
  }

  @Override
  public void removeShuffle(int shuffleId, boolean blocking) {
    delegate.removeShuffle(shuffleId, blocking);
    // Never blocks, whatever `blocking` says: the delete in the store is the plugin's own business.
    ShuffleCleanup.shuffleRemoved(shuffleId);
  }

  /**
   * True only while the driver plugin runs: Spark asks on every executor loss, and without the
   * plugin nobody would unregister the outputs whose copies are missing.
   */
  @Override
  public boolean supportsReliableStorage() {
    boolean open = PluginGate.isOpen();
    if (!open && !warned) {
      warned = true;
      LOG.warn("{} is configured but the driver plugin {} is not running (add it to spark.plugins, "
          + "and set {}): lost executors' outputs are recomputed as in stock Spark",
          AgentShuffleDataIO.class.getName(), ShuffleAgentPlugin.class.getName(), AgentConf.FALLBACK_PATH);
    }
    return open;
  }
}
