package io.github.sparkshuffleagent;

import java.util.Collections;
import java.util.Map;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkContext;
import org.apache.spark.api.plugin.DriverPlugin;
import org.apache.spark.api.plugin.PluginContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Driver side: checks the configuration and Spark's internals once at start, then listens for
 * lost executors. Any problem at start leaves the plugin off and Spark's behaviour unchanged
 * (logged), never a failed application.
 */
final class AgentDriverPlugin implements DriverPlugin {
  private static final Logger LOG = LoggerFactory.getLogger(AgentDriverPlugin.class);

  private final RecoveryMetrics metrics = new RecoveryMetrics();
  private LostExecutorRecovery recovery;
  private AppHeartbeat heartbeat;
  private ShuffleCleanup cleanup;
  private volatile FailedReadHandler failedReads;

  @Override
  public Map<String, String> init(SparkContext sc, PluginContext ctx) {
    AgentConf conf = AgentConf.from(sc.getConf());
    if (!conf.enabled) {
      LOG.info("{}=false: lost executors' map outputs are recomputed as in stock Spark", AgentConf.ENABLED);
      return Collections.emptyMap();
    }
    if (conf.fallbackPath.isEmpty()) {
      LOG.warn("{} is not set: the plugin stays off and lost executors' map outputs are recomputed",
          AgentConf.FALLBACK_PATH);
      return Collections.emptyMap();
    }
    try {
      SparkInternals internals = SparkInternals.forDriver();
      Path base = new Path(conf.fallbackPath.get());
      FileSystem fs = base.getFileSystem(sc.hadoopConfiguration());
      // The app id is known only after the task scheduler starts, later than plugins.
      ShuffleGuard guard = new ShuffleGuard();
      CopyVerifier verifier = new CopyVerifier(fs, base, sc::applicationId, conf.maxIndexBytes, guard);
      heartbeat = new AppHeartbeat(fs, base, conf.heartbeatIntervalMs);
      if (conf.cleanupShuffles) {
        cleanup = ShuffleCleanup.start(fs, verifier::shuffleDir, guard);
      }
      if (!conf.readPathConfigured && !conf.repointWithStockRead) {
        // Spark's stock fallback read is slower than recomputing at scale (serial, four requests per
        // block on S3A, whole blocks in heap) and fails the job on a copy it cannot read.
        LOG.warn("{} is not {}: lost executors' map outputs are recomputed as in stock Spark (set {}=true to "
            + "re-point them anyway and have Spark's own FallbackStorage read them)", AgentConf.SHUFFLE_MANAGER,
            AgentShuffleManager.class.getName(), AgentConf.REPOINT_WITH_STOCK_READ);
        return Collections.emptyMap();
      }
      recovery = new LostExecutorRecovery(internals, verifier, conf, metrics);
      failedReads = new FailedReadHandler(internals, recovery);
      sc.addSparkListener(new ExecutorLossListener(recovery, id -> SparkInternals.executorActive(sc, id)));
      PluginGate.open();
      LOG.info("shuffle-agent plugin on: lost executors' map outputs are re-pointed to verified copies in {} "
          + "({} verification threads, {} ms deadline), read by {}; heartbeat every {} ms; dropped shuffles' copies {}",
          base, conf.verifyThreads, conf.verifyTimeoutMs, conf.readPathConfigured ? "the plugin's read path"
              : "Spark's stock FallbackStorage", conf.heartbeatIntervalMs, conf.cleanupShuffles ? "deleted" : "kept");
    } catch (RuntimeException | LinkageError | java.io.IOException e) {
      LOG.error("shuffle-agent plugin could not start; lost executors' map outputs are recomputed as in stock Spark", e);
      close();
    }
    return Collections.emptyMap();
  }

  @Override
  public void registerMetrics(String appId, PluginContext ctx) {
    metrics.register(ctx.metricRegistry());
    if (failedReads != null) {
      failedReads.register(ctx.metricRegistry());
    }
    // The first hook that knows the app id (Spark calls it after the task scheduler started).
    if (heartbeat != null) {
      heartbeat.start(appId);
    }
  }

  /** Messages from the executors' read path ({@link ReadReports}). */
  @Override
  public Object receive(Object message) {
    FailedReadHandler h = failedReads;
    if (h == null) {
      // Not running: no answer, so a failed read blames the fallback location (Spark then drops
      // every output there and the job finishes) rather than an id that unregisters nothing.
      return null;
    }
    return h.receive(message);
  }

  @Override
  public void shutdown() {
    close();
  }

  private void close() {
    PluginGate.close();
    if (cleanup != null) {
      cleanup.close();
      cleanup = null;
    }
    if (heartbeat != null) {
      heartbeat.close();
      heartbeat = null;
    }
    failedReads = null;
    if (recovery != null) {
      recovery.close();
      recovery = null;
    }
  }
}
