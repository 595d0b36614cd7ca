package io.github.sparkshuffleagent;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.StorageStatistics;
import org.apache.spark.MapOutputTrackerMaster;
import org.apache.spark.SparkConf;
import org.apache.spark.broadcast.BroadcastManager;
import org.apache.spark.scheduler.MapStatus;
import org.apache.spark.scheduler.MapStatus$;
import org.apache.spark.storage.BlockManagerId;
import org.apache.spark.storage.BlockManagerId$;
import org.apache.spark.storage.FallbackStorage;

import scala.Option;

/**
 * How long {@link LostExecutorRecovery#recover} takes for one executor holding many map outputs,
 * each with a valid copy in the fallback store (bench:repoint; run with Spark's jars on the class
 * path, see scripts/bench/repoint.ts).
 *
 * <p>Writes the copies once (Spark's index format: big-endian longs, at
 * {@code <base>/<appId>/<shuffleId>/<nonNegativeHash(name)>/<name>}), then, for each thread count
 * and registry, rebuilds the registry (fresh statuses at the lost executor) and times recover()
 * several times, interleaving thread counts so a load change on the shared machine hits all of
 * them alike. Two registries: an in-memory one (the plugin's own cost: verification and
 * bookkeeping) and Spark's own MapOutputTrackerMaster through {@link SparkInternals} (adds
 * Spark's updateMapOutput per output). Prints the store's request counts per output (Hadoop
 * storage statistics of one run).
 *
 * <p>Arguments: {@code <base URI> <outputs> <threads,...> <runs> <registries: memory,spark>
 * [key=value Hadoop options]}.
 */
public final class RepointBench {
  private static final String APP = "app-bench-repoint";
  private static final int SHUFFLES = 4;
  private static final int REDUCERS = 64;
  /** Bytes per reduce partition: small, as verification only reads the index and sizes the data. */
  private static final long PART_BYTES = 16;
  private static final BlockManagerId LOST = BlockManagerId$.MODULE$.apply("1", "10.0.0.1", 7337, Option.empty());

  private RepointBench() {}

  public static void main(String[] args) throws Exception {
    Path base = new Path(args[0]);
    int outputs = Integer.parseInt(args[1]);
    int[] threads = Arrays.stream(args[2].split(",")).mapToInt(Integer::parseInt).toArray();
    int runs = Integer.parseInt(args[3]);
    String[] registries = args[4].split(",");
    Configuration hadoop = new Configuration();
    for (int i = 5; i < args.length; i++) {
      String[] kv = args[i].split("=", 2);
      hadoop.set(kv[0], kv[1]);
    }
    FileSystem fs = base.getFileSystem(hadoop);
    // The agent writes no .crc side files; the local file system would otherwise write and check them.
    fs.setWriteChecksum(false);
    fs.setVerifyChecksum(false);
    int perShuffle = (outputs + SHUFFLES - 1) / SHUFFLES;
    CopyVerifier verifier = new CopyVerifier(fs, base, () -> APP, 64L << 20, new ShuffleGuard());
    long t0 = System.nanoTime();
    writeCopies(fs, verifier, outputs, perShuffle);
    System.out.printf("wrote %d copies (%d reducers each) to %s in %.1f s%n", outputs, REDUCERS, base,
        (System.nanoTime() - t0) / 1e9);

    SparkConf sparkConf = new SparkConf(false);
    MapOutputTrackerMaster tracker = new MapOutputTrackerMaster(sparkConf, new BroadcastManager(true, sparkConf), true);
    BlockManagerId fallback = FallbackStorage.FALLBACK_BLOCK_MANAGER_ID();
    Map<String, List<Long>> times = new TreeMap<>();
    for (int run = 0; run <= runs; run++) { // run 0 warms the JIT and the file system's caches
      for (String kind : registries) {
        for (int n : threads) {
          MapOutputRegistry registry = kind.equals("memory")
              ? new MemoryRegistry(outputs, perShuffle, fallback)
              : sparkRegistry(tracker, outputs, perShuffle, fallback);
          // A deadline far out: a slow store is measured, not cut short into recomputes.
          SparkConf c = new SparkConf(false).set(AgentConf.VERIFY_THREADS, Integer.toString(n))
              .set(AgentConf.VERIFY_TIMEOUT, "1h");
          Map<String, Long> before = counters(fs.getStorageStatistics());
          try (LostExecutorRecovery recovery = new LostExecutorRecovery(registry, verifier, AgentConf.from(c), new RecoveryMetrics())) {
            long start = System.nanoTime();
            RecoveryResult r = recovery.recover(LOST.executorId(), "bench");
            long nanos = System.nanoTime() - start;
            if (r.repointed() != outputs) {
              throw new IllegalStateException("re-pointed " + r.repointed() + " of " + outputs + ": " + r);
            }
            String key = String.format("%-6s %3d threads", kind, n);
            if (run > 0) {
              times.computeIfAbsent(key, k -> new ArrayList<>()).add(nanos);
            }
          }
          if (run == 1 && kind.equals(registries[0])) {
            printRequests(before, counters(fs.getStorageStatistics()), outputs, n);
          }
        }
      }
    }
    // No tracker.stop(): it would ask a driver endpoint this tracker never had; its threads are daemons.
    System.out.printf("recover() of %d outputs (%d shuffles), %d runs each after a warm-up run:%n", outputs, SHUFFLES, runs);
    times.forEach((k, v) -> {
      long[] s = v.stream().mapToLong(Long::longValue).sorted().toArray();
      System.out.printf("  %s: median %.0f ms (min %.0f, max %.0f) = %.1f us per output%n", k, s[s.length / 2] / 1e6,
          s[0] / 1e6, s[s.length - 1] / 1e6, s[s.length / 2] / 1e3 / outputs);
    });
    fs.close();
  }

  /** The store's counters now (S3A's cannot be reset, so runs are told apart by difference). */
  private static Map<String, Long> counters(StorageStatistics stats) {
    Map<String, Long> out = new TreeMap<>();
    for (Iterator<StorageStatistics.LongStatistic> it = stats.getLongStatistics(); it.hasNext();) {
      StorageStatistics.LongStatistic s = it.next();
      out.put(s.getName(), s.getValue());
    }
    return out;
  }

  private static void printRequests(Map<String, Long> before, Map<String, Long> after, int outputs, int threads) {
    // The local file system counts none of its calls; from CopyVerifier, each output costs a stat
    // of the index, an open and read of it and a stat of the data file.
    StringBuilder b = new StringBuilder();
    after.forEach((name, v) -> {
      long d = v - before.getOrDefault(name, 0L);
      // Requests and calls, not durations or byte counts.
      if (d > 0 && !name.contains("duration") && !name.contains("bytes")) {
        b.append(String.format(" %s=%.3f", name, (double) d / outputs));
      }
    });
    System.out.printf("store requests per output (%d threads, one run):%s%n", threads, b.length() > 0 ? b : " none counted");
  }

  /** Sizes of an output's partitions: all non-empty, as the copies' index says. */
  private static long[] sizes() {
    long[] s = new long[REDUCERS];
    Arrays.fill(s, PART_BYTES);
    return s;
  }

  private static void writeCopies(FileSystem fs, CopyVerifier verifier, int outputs, int perShuffle) throws Exception {
    ByteBuffer index = ByteBuffer.allocate((REDUCERS + 1) * 8); // big-endian, as Spark writes it
    for (int p = 0; p <= REDUCERS; p++) {
      index.putLong(p * PART_BYTES);
    }
    byte[] indexBytes = index.array();
    byte[] data = new byte[(int) (REDUCERS * PART_BYTES)];
    ExecutorService pool = Executors.newFixedThreadPool(16);
    try {
      List<Future<Void>> writes = new ArrayList<>();
      for (int i = 0; i < outputs; i++) {
        MapOutputRef o = new MapOutputRef(i / perShuffle, i % perShuffle, i, null, null); // names only
        writes.add(pool.submit(() -> {
          put(fs, verifier.objectPath(o.shuffleId(), o.dataName()), data);
          put(fs, verifier.objectPath(o.shuffleId(), o.indexName()), indexBytes);
          return null;
        }));
      }
      for (Future<Void> w : writes) {
        w.get();
      }
    } finally {
      pool.shutdownNow();
    }
  }

  private static void put(FileSystem fs, Path p, byte[] bytes) throws IOException {
    if ("file".equals(fs.getScheme())) {
      // Hadoop's local create() checks every parent directory: 10x slower here, and only set-up.
      java.nio.file.Path local = java.nio.file.Path.of(p.toUri());
      Files.createDirectories(local.getParent());
      Files.write(local, bytes);
      return;
    }
    try (FSDataOutputStream out = fs.create(p, true)) {
      out.write(bytes);
    }
  }

  private static MapStatus status(int i) {
    return MapStatus$.MODULE$.apply(LOST, sizes(), i);
  }

  /**
   * Spark's tracker with every output registered at the lost executor: output {@code i} is map
   * {@code i % perShuffle} of shuffle {@code i / perShuffle}, with map id {@code i}.
   */
  private static MapOutputRegistry sparkRegistry(MapOutputTrackerMaster tracker, int outputs, int perShuffle,
      BlockManagerId fallback) {
    for (int s = 0; s < SHUFFLES; s++) {
      if (tracker.containsShuffle(s)) {
        tracker.unregisterShuffle(s);
      }
      tracker.registerShuffle(s, perShuffle, REDUCERS);
    }
    for (int i = 0; i < outputs; i++) {
      tracker.registerMapOutput(i / perShuffle, i % perShuffle, status(i));
    }
    return new SparkInternals(tracker, fallback);
  }

  /**
   * The tracker's state as plain arrays, with the same checks as SparkInternals: what recovery
   * costs without Spark's per-update work.
   */
  private static final class MemoryRegistry implements MapOutputRegistry {
    /** What SparkInternals's handle holds: the status listed, and where it was then. */
    private static final class Held implements MapOutputRegistry.Handle {
      final MapStatus status;
      final BlockManagerId location;

      Held(MapStatus status) {
        this.status = status;
        this.location = status.location();
      }
    }

    private final MapStatus[][] statuses = new MapStatus[SHUFFLES][];
    private final BlockManagerId fallback;

    MemoryRegistry(int outputs, int perShuffle, BlockManagerId fallback) {
      this.fallback = fallback;
      for (int s = 0; s < SHUFFLES; s++) {
        statuses[s] = new MapStatus[perShuffle];
      }
      for (int i = 0; i < outputs; i++) {
        statuses[i / perShuffle][i % perShuffle] = status(i);
      }
    }

    @Override
    public List<MapOutputRef> outputsOn(String executorId) {
      List<MapOutputRef> out = new ArrayList<>();
      for (int s = 0; s < SHUFFLES; s++) {
        MapStatus[] st = statuses[s];
        for (int m = 0; m < st.length; m++) {
          if (st[m] != null && executorId.equals(st[m].location().executorId())) {
            out.add(new MapOutputRef(s, m, st[m].mapId(), SparkInternals.reportedSizes(st[m]), new Held(st[m])));
          }
        }
      }
      return out;
    }

    @Override
    public int mapCount(int shuffleId) {
      return statuses[shuffleId].length;
    }

    @Override
    public boolean repointToFallback(MapOutputRef output) {
      MapStatus[] st = statuses[output.shuffleId()];
      // The tracker's write lock: one per shuffle.
      synchronized (st) {
        MapStatus current = st[output.mapIndex()];
        Held held = (Held) output.handle();
        if (current != held.status || !held.location.equals(current.location())) {
          return false;
        }
        current.updateLocation(fallback);
        return true;
      }
    }

    @Override
    public void unregister(MapOutputRef output) {
      MapStatus[] st = statuses[output.shuffleId()];
      synchronized (st) {
        st[output.mapIndex()] = null;
      }
    }

    @Override
    public void incrementEpoch() {
      // No executor caches these statuses.
    }

    @Override
    public void unregisterAllOn(String executorId) {
      for (MapStatus[] st : statuses) {
        synchronized (st) {
          for (int m = 0; m < st.length; m++) {
            if (st[m] != null && executorId.equals(st[m].location().executorId())) {
              st[m] = null;
            }
          }
        }
      }
    }
  }
}
