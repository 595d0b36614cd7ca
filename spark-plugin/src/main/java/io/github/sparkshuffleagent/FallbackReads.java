package io.github.sparkshuffleagent;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.TaskContext;
import org.apache.spark.network.buffer.ManagedBuffer;
import org.apache.spark.network.buffer.NioManagedBuffer;
import org.apache.spark.util.TaskCompletionListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An executor's read path for blocks at the fallback location: answers Spark's block resolver for
 * every shuffle block that is not on local disk, with the block's size at once (from the
 * executor's index cache) and its bytes fetched ahead per task ({@link TaskReads}) on a shared
 * pool of read threads. Created at the executor's first fallback block: an executor that never
 * reads one starts no thread and makes no store request.
 */
final class FallbackReads implements FallbackBlock.Source {
  private static final Logger LOG = LoggerFactory.getLogger(FallbackReads.class);

  private final AgentConf conf;
  private final FallbackStore store;
  private final IndexCache indexes;
  private final ExecutorService pool;
  private final ReadMetrics metrics;
  private final ReadFailures failures;
  private final Map<Long, TaskReads> tasks = new ConcurrentHashMap<>();

  FallbackReads(AgentConf conf, FileSystem fs, Path base, String appId, ReadMetrics metrics) {
    this.conf = conf;
    this.metrics = metrics;
    ReadRetry retry = new ReadRetry(conf.readRetries, conf.readRetryWaitMs, Thread::sleep, metrics);
    this.store = new FallbackStore(fs, base, appId, retry, conf.maxIndexBytes);
    this.indexes = new IndexCache(conf.readIndexCacheBytes, store::readIndex);
    ThreadPoolExecutor p = new ThreadPoolExecutor(conf.readThreads, conf.readThreads, 30, TimeUnit.SECONDS,
        new LinkedBlockingQueue<>(), Threads.daemon("shuffle-agent-read"));
    // Idle executors keep no read threads.
    p.allowCoreThreadTimeOut(true);
    this.pool = p;
    this.failures = new ReadFailures(metrics);
  }

  /**
   * The block's buffer, or {@code localMiss} rethrown for a block this path does not serve (not a
   * shuffle block). Never throws for a shuffle block: a store error surfaces when it is read.
   */
  ManagedBuffer blockData(SparkInternals.ShuffleBlockRange id, IOException localMiss) throws IOException {
    long[] offsets;
    try {
      offsets = indexes.get(id.shuffleId, id.mapId);
      if (id.endReduceId >= offsets.length || id.startReduceId < 0 || id.startReduceId > id.endReduceId) {
        throw new ReadRetry.CorruptCopyException("index of shuffle " + id.shuffleId + " map " + id.mapId + " has "
            + (offsets.length - 1) + " partitions; asked for [" + id.startReduceId + ", " + id.endReduceId + ")");
      }
    } catch (IOException e) {
      e.addSuppressed(localMiss);
      return FallbackBlock.failed(id.shuffleId, id.mapId, id.startReduceId, id.endReduceId, e, failures);
    }
    long start = offsets[id.startReduceId];
    long size = offsets[id.endReduceId] - start;
    metrics.blocks.inc();
    metrics.bytes.inc(size);
    TaskContext tc = TaskContext.get();
    if (tc == null) {
      // Not a task thread (Spark's reader retrying a block through its own block manager): read it now.
      if (size > Integer.MAX_VALUE - 8) {
        throw new IOException("fallback block of shuffle " + id.shuffleId + " map " + id.mapId + " is " + size
            + " bytes, too large to serve outside a task");
      }
      return new NioManagedBuffer(ByteBuffer.wrap(store.readRange(id.shuffleId, id.mapId, offsets[offsets.length - 1],
          start, (int) size)));
    }
    TaskReads task = tasks.computeIfAbsent(tc.taskAttemptId(), k -> startTask(tc, k));
    boolean streamed = size > conf.readMaxBytesInFlight;
    if (streamed) {
      metrics.streamed.inc();
    }
    FallbackBlock b = new FallbackBlock(id.shuffleId, id.mapId, id.startReduceId, id.endReduceId, size, streamed,
        this, task, failures);
    b.range(start, offsets[offsets.length - 1]);
    task.add(b);
    return b;
  }

  private TaskReads startTask(TaskContext tc, long taskId) {
    TaskReads t = new TaskReads(conf.readMaxBytesInFlight, conf.readMaxRequestsInFlight, pool);
    tc.addTaskCompletionListener(new TaskCompletionListener() {
      @Override
      public void onTaskCompletion(TaskContext context) {
        tasks.remove(taskId);
        t.close();
        LOG.info("task {} read {} fallback blocks ({} bytes, at most {} held at once)", taskId, t.blocks(), t.bytes(),
            t.peakBytesHeld());
        ReadReports.taskEnded(metrics);
      }
    });
    return t;
  }

  @Override
  public byte[] read(FallbackBlock b) throws IOException {
    return store.readRange(b.shuffleId, b.mapId, b.dataLength(), b.start(), (int) b.size());
  }

  @Override
  public InputStream open(FallbackBlock b) throws IOException {
    return store.openRange(b.shuffleId, b.mapId, b.dataLength(), b.start(), b.size());
  }

  void shuffleUnregistered(int shuffleId) {
    indexes.dropShuffle(shuffleId);
  }

  void stop() {
    pool.shutdownNow();
  }
}
