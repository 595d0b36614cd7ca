package io.github.sparkshuffleagent;

import java.io.IOException;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;

import org.apache.spark.MapOutputTracker;
import org.apache.spark.MapOutputTrackerMaster;
import org.apache.spark.ShuffleStatus;
import org.apache.spark.SparkContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.network.buffer.ManagedBuffer;
import org.apache.spark.scheduler.SchedulerBackend;
import org.apache.spark.scheduler.cluster.CoarseGrainedSchedulerBackend;
import org.apache.spark.shuffle.BaseShuffleHandle;
import org.apache.spark.shuffle.FetchFailedException;
import org.apache.spark.shuffle.MigratableResolver;
import org.apache.spark.shuffle.ShuffleBlockResolver;
import org.apache.spark.shuffle.ShuffleHandle;
import org.apache.spark.storage.BlockId;
import org.apache.spark.scheduler.CompressedMapStatus;
import org.apache.spark.scheduler.MapStatus;
import org.apache.spark.scheduler.MapStatus$;
import org.apache.spark.storage.BlockManagerId;
import org.apache.spark.storage.FallbackStorage;
import org.apache.spark.storage.ShuffleBlockBatchId;
import org.apache.spark.storage.ShuffleBlockId;

import scala.Option;

/**
 * The only class that touches Spark's internal (private[spark], public in bytecode) APIs: the
 * driver's MapOutputTrackerMaster, its MapStatus objects (the rest of the plugin sees them as
 * ReportedSizes and an opaque MapOutputRegistry.Handle) and FallbackStorage's block manager id. Each call used here has
 * the same Java signature on Spark 3.5 (Scala 2.12) and 4.1 (Scala 2.13); the real-Spark tests
 * run this jar on both. A new Spark line that changes them changes this file only.
 */
final class SparkInternals implements MapOutputRegistry {
  private final MapOutputTrackerMaster tracker;
  private final BlockManagerId fallbackId;

  /** Package-private for RepointBench, which times recovery against a tracker of its own. */
  SparkInternals(MapOutputTrackerMaster tracker, BlockManagerId fallbackId) {
    this.tracker = tracker;
    this.fallbackId = fallbackId;
  }

  /** The driver's tracker; fails (and the plugin stays off) anywhere else or on an unknown Spark. */
  static SparkInternals forDriver() {
    SparkEnv env = SparkEnv.get();
    if (env == null) {
      throw new IllegalStateException("no SparkEnv: the plugin runs on the driver only");
    }
    MapOutputTracker t = env.mapOutputTracker();
    if (!(t instanceof MapOutputTrackerMaster)) {
      throw new IllegalStateException("map output tracker is " + t.getClass().getName() + ", not the driver's");
    }
    BlockManagerId fallback = FallbackStorage.FALLBACK_BLOCK_MANAGER_ID();
    if (!FALLBACK_EXECUTOR_ID.equals(fallback.executorId())) {
      throw new IllegalStateException("Spark's fallback location is " + fallback + ", not executor " + FALLBACK_EXECUTOR_ID);
    }
    return new SparkInternals((MapOutputTrackerMaster) t, fallback);
  }

  BlockManagerId fallbackId() {
    return fallbackId;
  }

  @Override
  public List<MapOutputRef> outputsOn(String executorId) {
    List<MapOutputRef> out = new ArrayList<>();
    scala.collection.Iterator<Object> ids = tracker.shuffleStatuses().keysIterator();
    while (ids.hasNext()) {
      int shuffleId = (Integer) ids.next();
      Option<ShuffleStatus> status = tracker.shuffleStatuses().get(shuffleId);
      if (status.isEmpty()) {
        continue; // unregistered meanwhile
      }
      // A read without the status's lock: the array's slots are single references, and every
      // action re-checks under Spark's own lock (updateMapOutput, unregisterMapOutput).
      MapStatus[] statuses = status.get().mapStatuses();
      for (int i = 0; i < statuses.length; i++) {
        MapStatus s = statuses[i];
        if (s != null && executorId.equals(s.location().executorId())) {
          Listed listed = new Listed(s, s.location());
          out.add(new MapOutputRef(shuffleId, i, s.mapId(), listed, listed));
        }
      }
    }
    return out;
  }

  @Override
  public int mapCount(int shuffleId) {
    Option<ShuffleStatus> status = tracker.shuffleStatuses().get(shuffleId);
    return status.isEmpty() ? 0 : status.get().mapStatuses().length;
  }

  @Override
  public boolean repointToFallback(MapOutputRef output) {
    Option<ShuffleStatus> status = tracker.shuffleStatuses().get(output.shuffleId());
    if (status.isEmpty()) {
      return false;
    }
    Listed listed = listed(output);
    MapStatus[] statuses = status.get().mapStatuses();
    // Spark's updateMapOutput moves whatever status sits at the map id's index; a newer attempt of
    // that partition must never be moved to a copy of the old one.
    MapStatus current = output.mapIndex() < statuses.length ? statuses[output.mapIndex()] : null;
    if (current != listed.status || !listed.location.equals(current.location())) {
      return false;
    }
    tracker.updateMapOutput(output.shuffleId(), output.mapId(), fallbackId);
    return true;
  }

  @Override
  public void unregister(MapOutputRef output) {
    tracker.unregisterMapOutput(output.shuffleId(), output.mapIndex(), listed(output).location);
  }

  @Override
  public void incrementEpoch() {
    tracker.incrementEpoch();
  }

  @Override
  public void unregisterAllOn(String executorId) {
    tracker.removeOutputsOnExecutor(executorId);
  }

  /**
   * The tracker's own status and the location it pointed at when listed (a status's location
   * changes in place when Spark moves it): the handle of the refs this registry lists. Its status's
   * identity proves the tracker still holds this very output when the plugin acts.
   */
  private static final class Listed implements MapOutputRegistry.Handle, ReportedSizes {
    private final MapStatus status;
    private final BlockManagerId location;
    private final boolean exact;

    Listed(MapStatus status, BlockManagerId location) {
      this.status = status;
      this.location = location;
      this.exact = hasExactPartitionCount(status);
    }

    @Override
    public long sizeOf(int p) {
      return reportedSize(status, p);
    }

    @Override
    public boolean exactPerPartition() {
      return exact;
    }
  }

  private static Listed listed(MapOutputRef output) {
    if (!(output.handle() instanceof Listed)) {
      throw new IllegalArgumentException("map output " + output.indexName() + " was not listed by Spark's tracker");
    }
    return (Listed) output.handle();
  }

  /**
   * The reported sizes of a map status, as CopyVerifier reads them (tests and RepointBench build
   * statuses of their own).
   */
  static ReportedSizes reportedSizes(MapStatus status) {
    return new Listed(status, status.location());
  }

  /**
   * Whether a status knows its number of reduce partitions exactly: Spark's CompressedMapStatus
   * (fewer than spark.shuffle.minNumPartitionsToHighlyCompress reducers) holds one size per
   * reducer, and asking past the last throws.
   */
  private static boolean hasExactPartitionCount(MapStatus status) {
    return status instanceof CompressedMapStatus;
  }

  /**
   * The size a map status reports for a block of {@code size} bytes in its one-byte encoding:
   * Spark's own {@code MapStatus.compressSize} then {@code decompressSize} (the same Java
   * signatures on 3.5 and 4.x), so the comparison is exact whatever rounding Spark does.
   */
  static long encodedSize(long size) {
    return MapStatus$.MODULE$.decompressSize(MapStatus$.MODULE$.compressSize(size));
  }

  /**
   * Whether the scheduler backend still runs the executor. False once it is lost, disconnected,
   * decommissioning or pending a loss reason; true for a healthy executor whose block manager
   * Spark removed because a fetch failure was blamed on it. Unknown backends count as lost.
   */
  static boolean executorActive(SparkContext sc, String executorId) {
    SchedulerBackend backend = sc.schedulerBackend();
    return backend instanceof CoarseGrainedSchedulerBackend
        && ((CoarseGrainedSchedulerBackend) backend).isExecutorActive(executorId);
  }

  /** A shuffle block's map output and reduce range; ShuffleBlockId and ShuffleBlockBatchId alike. */
  static final class ShuffleBlockRange {
    final int shuffleId;
    final long mapId;
    final int startReduceId;
    final int endReduceId;

    ShuffleBlockRange(int shuffleId, long mapId, int startReduceId, int endReduceId) {
      this.shuffleId = shuffleId;
      this.mapId = mapId;
      this.startReduceId = startReduceId;
      this.endReduceId = endReduceId;
    }
  }

  /**
   * The number of reduce partitions of the shuffle a reader is made for (its dependency's
   * partitioner), or -1 for a handle that is not Spark's own. A copy's index holds one more offset.
   */
  static int reducePartitions(ShuffleHandle handle) {
    if (handle instanceof BaseShuffleHandle) {
      return ((BaseShuffleHandle<?, ?, ?>) handle).dependency().partitioner().numPartitions();
    }
    return -1;
  }

  /** The range a block id names, or null for any other kind of block. */
  static ShuffleBlockRange shuffleBlockRange(BlockId id) {
    if (id instanceof ShuffleBlockId) {
      ShuffleBlockId b = (ShuffleBlockId) id;
      return new ShuffleBlockRange(b.shuffleId(), b.mapId(), b.reduceId(), b.reduceId() + 1);
    }
    if (id instanceof ShuffleBlockBatchId) {
      ShuffleBlockBatchId b = (ShuffleBlockBatchId) id;
      return new ShuffleBlockRange(b.shuffleId(), b.mapId(), b.startReduceId(), b.endReduceId());
    }
    return null;
  }

  /**
   * The executor's local root (the directory holding its {@code blockmgr-*} dirs: Spark's local
   * dir, or on Kubernetes the pod's), or null outside an executor. {@code DiskBlockManager.localDirs}
   * has the same signature on 3.5 and 4.x, where {@code Utils.getLocalDir} does not.
   */
  static java.io.File executorLocalRoot() {
    SparkEnv env = SparkEnv.get();
    if (env == null || env.blockManager() == null) {
      return null;
    }
    java.io.File[] dirs = env.blockManager().diskBlockManager().localDirs();
    return dirs.length == 0 ? null : dirs[0].getAbsoluteFile().getParentFile();
  }

  /**
   * The map ids of a shuffle's outputs at the fallback location that hold data for reduce
   * partitions {@code [start, end)}, from the executor's cached map statuses (the reader fetched
   * them just before); empty when they are not at hand. Lets an executor read the indexes of a
   * task's fallback blocks concurrently instead of one after another.
   */
  static List<Long> fallbackMapIds(int shuffleId, int start, int end) {
    List<Long> ids = new ArrayList<>();
    SparkEnv env = SparkEnv.get();
    if (env == null) {
      return ids;
    }
    scala.collection.Iterator<scala.Tuple2<BlockManagerId, scala.collection.Seq<scala.Tuple3<BlockId, Object, Object>>>> it =
        env.mapOutputTracker().getMapSizesByExecutorId(shuffleId, 0, Integer.MAX_VALUE, start, end);
    while (it.hasNext()) {
      scala.Tuple2<BlockManagerId, scala.collection.Seq<scala.Tuple3<BlockId, Object, Object>>> byLocation = it.next();
      if (!FALLBACK_EXECUTOR_ID.equals(byLocation._1().executorId())) {
        continue;
      }
      scala.collection.Iterator<scala.Tuple3<BlockId, Object, Object>> blocks = byLocation._2().iterator();
      while (blocks.hasNext()) {
        ShuffleBlockRange r = shuffleBlockRange(blocks.next()._1());
        if (r != null && (ids.isEmpty() || ids.get(ids.size() - 1) != r.mapId)) {
          ids.add(r.mapId);
        }
      }
    }
    return ids;
  }

  /** Answers a shuffle block that is not on local disk; see {@link #fallbackAwareResolver}. */
  interface FallbackBlockSource {
    ManagedBuffer blockData(BlockId id, IOException localMiss) throws IOException;
  }

  /**
   * Spark's own block resolver, except that a shuffle block it cannot find on local disk is asked
   * of {@code fallback} before Spark's BlockManager would call FallbackStorage.read.
   *
   * <p>A dynamic proxy, the one place the plugin uses reflection: the resolver traits return Scala
   * collections ({@code Seq}), which are {@code scala.collection.Seq} on Spark 3.5 (Scala 2.12) and
   * {@code scala.collection.immutable.Seq} on Spark 4 (Scala 2.13), so no Java class compiled once
   * implements them on both lines. The proxy implements whatever interfaces Spark's resolver has
   * at run time (ShuffleBlockResolver and MigratableResolver, which BlockManager casts to) and
   * forwards every call but {@code getBlockData} unchanged.
   */
  static ShuffleBlockResolver fallbackAwareResolver(ShuffleBlockResolver spark, FallbackBlockSource fallback) {
    InvocationHandler h = new InvocationHandler() {
      @Override
      public Object invoke(Object proxy, Method m, Object[] args) throws Throwable {
        if ("getBlockData".equals(m.getName()) && args != null && args.length == 2 && args[0] instanceof BlockId) {
          try {
            return spark.getBlockData((BlockId) args[0], castOption(args[1]));
          } catch (Exception e) {
            // Scala declares no exceptions; an IOException means no local index: the block lives at
            // the fallback location (the case where Spark's BlockManager would call FallbackStorage.read).
            if (e instanceof IOException) {
              return fallback.blockData((BlockId) args[0], (IOException) e);
            }
            throw e;
          }
        }
        if (m.getDeclaringClass() == Object.class) {
          switch (m.getName()) {
            case "equals":
              return proxy == args[0];
            case "hashCode":
              return System.identityHashCode(proxy);
            default:
              return "fallback-aware " + spark;
          }
        }
        try {
          return m.invoke(spark, args);
        } catch (InvocationTargetException e) {
          throw e.getCause();
        }
      }
    };
    return (ShuffleBlockResolver) Proxy.newProxyInstance(SparkInternals.class.getClassLoader(),
        new Class<?>[] {ShuffleBlockResolver.class, MigratableResolver.class}, h);
  }

  @SuppressWarnings("unchecked")
  private static Option<String[]> castOption(Object o) {
    return (Option<String[]>) o;
  }

  /**
   * The executor id of Spark's fallback location, as a constant so that code and tests without a
   * running Spark can use it; {@link #forDriver()} checks it against Spark's.
   */
  static final String FALLBACK_EXECUTOR_ID = "fallback";

  /** Spark's id for the fallback location ("fallback", "remote", 7337). */
  static BlockManagerId fallbackLocation() {
    return FallbackStorage.FALLBACK_BLOCK_MANAGER_ID();
  }

  /**
   * An id no executor has, blamed for a fallback read the driver already handled: Spark's
   * unregisterMapOutput and removeOutputsOnExecutor/Host then find nothing to drop.
   */
  static BlockManagerId handledReadFailure() {
    return BlockManagerId.apply("shuffle-agent-read-failure", "shuffle-agent-read-failure", 7337, Option.empty());
  }

  /**
   * Spark's FetchFailedException for a fallback block; created on the task's thread, it marks the
   * task context as failed by a fetch, whatever wraps it later.
   */
  static FetchFailedException fetchFailed(int shuffleId, long mapId, int mapIndex, int reduceId, String message,
      Throwable cause, boolean blameFallback) {
    BlockManagerId blamed = blameFallback ? fallbackLocation() : handledReadFailure();
    return new FetchFailedException(blamed, shuffleId, mapId, mapIndex, reduceId, message, cause);
  }

  /** The size a status reports for reduce id {@code p}, or -1 when it has no such partition. */
  private static long reportedSize(MapStatus status, int p) {
    try {
      return status.getSizeForBlock(p);
    } catch (ArrayIndexOutOfBoundsException e) {
      return -1;
    }
  }
}
