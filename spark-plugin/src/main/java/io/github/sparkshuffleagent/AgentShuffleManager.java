package io.github.sparkshuffleagent;

import java.io.IOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.ShuffleDependency;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.deploy.SparkHadoopUtil;
import org.apache.spark.network.buffer.ManagedBuffer;
import org.apache.spark.shuffle.ShuffleBlockResolver;
import org.apache.spark.shuffle.ShuffleHandle;
import org.apache.spark.shuffle.ShuffleManager;
import org.apache.spark.shuffle.ShuffleReadMetricsReporter;
import org.apache.spark.shuffle.ShuffleReader;
import org.apache.spark.shuffle.ShuffleWriteMetricsReporter;
import org.apache.spark.shuffle.ShuffleWriter;
import org.apache.spark.shuffle.sort.SortShuffleManager;
import org.apache.spark.storage.BlockId;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code spark.shuffle.manager}: Spark's own sort shuffle for everything (writers, readers, local
 * files, the network), except how a block at the fallback location is read. Spark's reader asks
 * the block resolver for such a block before it would call FallbackStorage.read; this manager's
 * resolver answers from the store itself ({@link FallbackReads}): concurrently under a per-task
 * budget, one ranged request per block, index objects cached, large blocks streamed, transient
 * errors retried, a copy that cannot be read reported to the driver and failed as Spark's
 * FetchFailedException that costs a recompute of that output only.
 *
 * <p>Nothing changes while no block is at the fallback location: a local block is Spark's resolver's
 * answer, and the fallback machinery (threads, file system, caches) is created at the first block
 * Spark's resolver cannot find on local disk. Without {@code spark.storage.decommission.fallbackStorage.path}
 * the resolver is Spark's own.
 */
public final class AgentShuffleManager implements ShuffleManager {
  private static final Logger LOG = LoggerFactory.getLogger(AgentShuffleManager.class);

  private final SparkConf conf;
  /** Null without a fallback path: the resolver is then Spark's own. */
  private final AgentConf agentConf;
  private final SortShuffleManager spark;
  private final ShuffleBlockResolver resolver;
  private final ReadMetrics metrics = ReadReports.metrics();
  /**
   * Reduce partitions of each shuffle this executor's tasks read, from their readers' handles: a
   * copy's index holds one more offset than that, so it can be read without asking its length.
   */
  private final Map<Integer, Integer> reducePartitions = new ConcurrentHashMap<>();
  private volatile FallbackReads reads;
  private volatile boolean stopped;

  public AgentShuffleManager(SparkConf conf) {
    this.conf = conf;
    this.spark = new SortShuffleManager(conf);
    // Parsed here so that a bad setting fails the executor at start, naming the key.
    AgentConf c = AgentConf.from(conf);
    this.agentConf = c.enabled && c.fallbackPath.isPresent() ? c : null;
    this.resolver = agentConf != null
        ? SparkInternals.fallbackAwareResolver(spark.shuffleBlockResolver(), this::fallbackBlock)
        : spark.shuffleBlockResolver();
  }

  private ManagedBuffer fallbackBlock(BlockId id, IOException localMiss) throws IOException {
    SparkInternals.ShuffleBlockRange range = SparkInternals.shuffleBlockRange(id);
    if (range == null) {
      throw localMiss;
    }
    return reads().blockData(range, localMiss);
  }

  private FallbackReads reads() throws IOException {
    FallbackReads r = reads;
    if (r == null) {
      synchronized (this) {
        r = reads;
        if (r == null) {
          if (stopped) {
            throw new IOException("the shuffle manager is stopped");
          }
          r = open();
          reads = r;
        }
      }
    }
    return r;
  }

  private FallbackReads open() throws IOException {
    AgentConf c = agentConf;
    Path base = new Path(c.fallbackPath.get());
    SparkEnv env = SparkEnv.get();
    SparkConf live = env != null ? env.conf() : conf;
    FileSystem fs = base.getFileSystem(SparkHadoopUtil.get().newConfiguration(live));
    String appId = live.getAppId();
    LOG.info("reading fallback blocks from {} ({} bytes per task in flight, {} requests per task, {} retries)",
        new Path(base, appId), c.readMaxBytesInFlight, c.readMaxRequestsInFlight, c.readRetries);
    return new FallbackReads(c, fs, base, appId, metrics, this::indexLength);
  }

  private long indexLength(int shuffleId) {
    Integer n = reducePartitions.get(shuffleId);
    return n == null ? 0 : 8L * (n + 1);
  }

  @Override
  public <K, V, C> ShuffleHandle registerShuffle(int shuffleId, ShuffleDependency<K, V, C> dependency) {
    return spark.registerShuffle(shuffleId, dependency);
  }

  @Override
  public <K, V> ShuffleWriter<K, V> getWriter(ShuffleHandle handle, long mapId, TaskContext context,
      ShuffleWriteMetricsReporter metrics) {
    return spark.getWriter(handle, mapId, context, metrics);
  }

  @Override
  public <K, C> ShuffleReader<K, C> getReader(ShuffleHandle handle, int startMapIndex, int endMapIndex,
      int startPartition, int endPartition, TaskContext context, ShuffleReadMetricsReporter metrics) {
    int n = SparkInternals.reducePartitions(handle);
    if (n > 0) {
      reducePartitions.put(handle.shuffleId(), n);
    }
    return spark.getReader(handle, startMapIndex, endMapIndex, startPartition, endPartition, context, metrics);
  }

  @Override
  public boolean unregisterShuffle(int shuffleId) {
    FallbackReads r = reads;
    if (r != null) {
      r.shuffleUnregistered(shuffleId);
    }
    reducePartitions.remove(shuffleId);
    return spark.unregisterShuffle(shuffleId);
  }

  @Override
  public ShuffleBlockResolver shuffleBlockResolver() {
    return resolver;
  }

  @Override
  public void stop() {
    synchronized (this) {
      stopped = true;
      if (reads != null) {
        reads.stop();
      }
    }
    spark.stop();
  }
}
