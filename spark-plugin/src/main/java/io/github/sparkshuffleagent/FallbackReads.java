package io.github.sparkshuffleagent;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.IntToLongFunction;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.StorageStatistics;
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
  private final FileSystem fs;
  private final FallbackStore store;
  private final IndexCache indexes;
  private final ExecutorService pool;
  private final ReadMetrics metrics;
  private final ReadFailures failures;
  private final Map<Long, TaskReads> tasks = new ConcurrentHashMap<>();
  /** Null when turned off or when the executor has no local dir. */
  private final LocalCopies copies;

  /**
   * @param indexLength a shuffle's index length in bytes when the executor knows its number of
   *     reduce partitions (its readers' handles), else 0; lets an index be read without a HEAD
   */
  FallbackReads(AgentConf conf, FileSystem fs, Path base, String appId, ReadMetrics metrics, IntToLongFunction indexLength) {
    this.conf = conf;
    this.metrics = metrics;
    this.fs = fs;
    ReadRetry retry = new ReadRetry(conf.readRetries, conf.readRetryWaitMs, Thread::sleep, metrics);
    this.store = new FallbackStore(fs, base, appId, retry, conf.maxIndexBytes);
    this.indexes = new IndexCache(conf.readIndexCacheBytes,
        (shuffleId, mapId) -> store.readIndex(shuffleId, mapId, indexLength.applyAsLong(shuffleId)));
    ThreadPoolExecutor p = new ThreadPoolExecutor(conf.readThreads, conf.readThreads, 30, TimeUnit.SECONDS,
        new LinkedBlockingQueue<>(), Threads.daemon("shuffle-agent-read"));
    // Idle executors keep no read threads.
    p.allowCoreThreadTimeOut(true);
    this.pool = p;
    this.failures = new ReadFailures(metrics);
    this.copies = localCopies(conf, metrics);
  }

  private LocalCopies localCopies(AgentConf c, ReadMetrics m) {
    if (c.readWholeObjectMaxBytes == 0) {
      return null;
    }
    File root = SparkInternals.executorLocalRoot();
    if (root == null) {
      return null;
    }
    try {
      java.nio.file.Path dir = Files.createTempDirectory(root.toPath(), "shuffle-agent-copies-");
      return new LocalCopies(dir, c.readLocalCopyBytes,
          (shuffleId, mapId, dataLen) -> store.openRange(shuffleId, mapId, dataLen, 0, dataLen), m);
    } catch (IOException e) {
      LOG.warn("no local copies of small data objects (every block is its own request): cannot create a directory under {}",
          root, e);
      return null;
    }
  }

  /**
   * The block's buffer, or {@code localMiss} rethrown for a block this path does not serve (not a
   * shuffle block). Never throws for a shuffle block: a store error surfaces when it is read.
   */
  ManagedBuffer blockData(SparkInternals.ShuffleBlockRange id, IOException localMiss) throws IOException {
    TaskContext tc = TaskContext.get();
    TaskReads task = tc == null ? null : tasks.computeIfAbsent(tc.taskAttemptId(), k -> startTask(tc, k));
    if (task != null && task.firstBlockOf(id.shuffleId)) {
      prefetchIndexes(id);
    }
    long[] offsets;
    try {
      offsets = indexes.get(id.shuffleId, id.mapId);
      if (id.endReduceId >= offsets.length || id.startReduceId < 0 || id.startReduceId > id.endReduceId) {
        throw new ReadRetry.CorruptCopyException("index of shuffle " + id.shuffleId + " map " + id.mapId + " has "
            + (offsets.length - 1) + " partitions; asked for [" + id.startReduceId + ", " + id.endReduceId + ")");
      }
      if (offsets[id.endReduceId] == offsets[id.startReduceId]) {
        // Spark asks only for blocks its map status says hold data: this copy is not that output.
        throw new ReadRetry.CorruptCopyException("copy of shuffle " + id.shuffleId + " map " + id.mapId
            + " has no bytes for reduce partitions [" + id.startReduceId + ", " + id.endReduceId + ")");
      }
    } catch (IOException e) {
      e.addSuppressed(localMiss);
      return FallbackBlock.failed(id.shuffleId, id.mapId, id.startReduceId, id.endReduceId, e, failures);
    }
    long start = offsets[id.startReduceId];
    long size = offsets[id.endReduceId] - start;
    metrics.blocks.inc();
    metrics.bytes.inc(size);
    if (task == null) {
      // Not a task thread (Spark's reader retrying a block through its own block manager): read it now.
      if (size > Integer.MAX_VALUE - 8) {
        throw new IOException("fallback block of shuffle " + id.shuffleId + " map " + id.mapId + " is " + size
            + " bytes, too large to serve outside a task");
      }
      return new NioManagedBuffer(ByteBuffer.wrap(store.readRange(id.shuffleId, id.mapId, offsets[offsets.length - 1],
          start, (int) size)));
    }
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

  /**
   * Spark asks for a task's fallback blocks one after another and needs each one's size at once;
   * the index reads behind those sizes are started together here, on the read threads, for every
   * fallback output of this reduce range (shared with the executor's other tasks by the cache).
   */
  private void prefetchIndexes(SparkInternals.ShuffleBlockRange first) {
    List<Long> mapIds;
    try {
      mapIds = SparkInternals.fallbackMapIds(first.shuffleId, first.startReduceId, first.endReduceId);
    } catch (RuntimeException | LinkageError e) {
      LOG.debug("no map statuses at hand to read indexes ahead", e);
      return;
    }
    for (long mapId : mapIds) {
      if (mapId == first.mapId) {
        continue; // the task thread reads that one itself, now
      }
      try {
        pool.execute(() -> {
          try {
            indexes.get(first.shuffleId, mapId);
          } catch (IOException | RuntimeException e) {
            // The block's own read asks again and reports the failure where Spark sees it.
          }
        });
      } catch (java.util.concurrent.RejectedExecutionException e) {
        return;
      }
    }
  }

  private TaskReads startTask(TaskContext tc, long taskId) {
    TaskReads t = new TaskReads(conf.readMaxBytesInFlight, conf.readMaxRequestsInFlight, pool);
    tc.addTaskCompletionListener(new TaskCompletionListener() {
      @Override
      public void onTaskCompletion(TaskContext context) {
        tasks.remove(taskId);
        t.close();
        LOG.info("task {} read {} fallback blocks ({} bytes, at most {} held at once); executor totals: {} blocks, "
            + "{} store calls{}", taskId, t.blocks(), t.bytes(), t.peakBytesHeld(), metrics.blocks.getCount(),
            metrics.requests.getCount(), httpRequests());
        ReadReports.taskEnded(metrics);
      }
    });
    return t;
  }

  /**
   * The file system's own count of HTTP requests where it keeps one (S3A: every HEAD and GET of the
   * executor's S3A instance for this bucket), to check requests per block against what the store saw.
   */
  private String httpRequests() {
    StorageStatistics stats = fs.getStorageStatistics();
    Long heads = stats == null ? null : stats.getLong("action_http_head_request");
    Long gets = stats == null ? null : stats.getLong("action_http_get_request");
    return heads == null || gets == null ? "" : " (file system: " + heads + " HEAD, " + gets + " GET requests)";
  }

  @Override
  public byte[] read(FallbackBlock b) throws IOException {
    if (copies != null && b.dataLength() <= conf.readWholeObjectMaxBytes && b.size() < b.dataLength()) {
      try {
        return copies.read(b.shuffleId, b.mapId, b.dataLength(), b.start(), (int) b.size());
      } catch (LocalCopies.LocalDiskException e) {
        LOG.warn("local copy of shuffle {} map {} failed; reading the block from the store", b.shuffleId, b.mapId, e);
      }
    }
    return store.readRange(b.shuffleId, b.mapId, b.dataLength(), b.start(), (int) b.size());
  }

  @Override
  public InputStream open(FallbackBlock b) throws IOException {
    return store.openRange(b.shuffleId, b.mapId, b.dataLength(), b.start(), b.size());
  }

  void shuffleUnregistered(int shuffleId) {
    indexes.dropShuffle(shuffleId);
    if (copies != null) {
      copies.dropShuffle(shuffleId);
    }
  }

  void stop() {
    pool.shutdownNow();
    if (copies != null) {
      copies.close();
    }
  }
}
