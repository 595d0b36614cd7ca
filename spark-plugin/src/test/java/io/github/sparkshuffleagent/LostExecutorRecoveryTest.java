package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FilterFileSystem;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LostExecutorRecovery against a fake MapOutputRegistry (the tracker's few operations, with its
 * "only if it still holds this very status" rule) and the real CopyVerifier on a local Hadoop file
 * system whose calls a test can hook: the races of a loss, without a running Spark.
 */
class LostExecutorRecoveryTest {
  private static final String APP = "app-20261206000000-0000";
  private static final String LOST = "3";

  /** The tracker, reduced to what recovery asks of it; it acts only on the status it still holds. */
  private static class FakeRegistry implements MapOutputRegistry {
    /** Current status per (shuffle, map index), and where it is. */
    final Map<String, MapOutputRef> current = new ConcurrentHashMap<>();
    final Map<String, String> atFallback = new ConcurrentHashMap<>();
    final AtomicInteger epochs = new AtomicInteger();
    final List<String> unregisteredAll = new ArrayList<>();

    static String key(MapOutputRef o) {
      return o.shuffleId() + "/" + o.mapIndex();
    }

    void register(MapOutputRef o) {
      current.put(key(o), o);
    }

    @Override
    public List<MapOutputRef> outputsOn(String executorId) {
      List<MapOutputRef> out = new ArrayList<>(current.values());
      out.sort((a, b) -> Long.compare(a.mapId(), b.mapId()));
      return out;
    }

    @Override
    public int mapCount(int shuffleId) {
      return current.size();
    }

    @Override
    public boolean repointToFallback(MapOutputRef output) {
      MapOutputRef now = current.get(key(output));
      if (now == null || now.handle() != output.handle()) {
        return false;
      }
      atFallback.put(key(output), "fallback");
      return true;
    }

    @Override
    public void unregister(MapOutputRef output) {
      current.computeIfPresent(key(output), (k, now) -> now.handle() == output.handle() ? null : now);
    }

    @Override
    public void incrementEpoch() {
      epochs.incrementAndGet();
    }

    @Override
    public void unregisterAllOn(String executorId) {
      unregisteredAll.add(executorId);
      current.clear();
    }
  }

  /** The local file system, with a hook run before each status lookup (by object name). */
  private static final class HookedFs extends FilterFileSystem {
    interface Hook {
      void run() throws IOException;
    }

    final Map<String, Hook> hooks = new ConcurrentHashMap<>();

    HookedFs(FileSystem fs) {
      super(fs);
    }

    @Override
    public String getScheme() {
      return "file";
    }

    @Override
    public FileStatus getFileStatus(Path p) throws IOException {
      Hook h = hooks.get(p.getName());
      if (h != null) {
        h.run();
      }
      return super.getFileStatus(p);
    }
  }

  @TempDir java.nio.file.Path dir;
  private LocalFallbackDir copies;
  private HookedFs fs;
  private FakeRegistry registry;
  private RecoveryMetrics metrics;
  private LostExecutorRecovery recovery;

  @BeforeEach
  void setUp() throws IOException {
    copies = new LocalFallbackDir(dir, APP);
    fs = new HookedFs(copies.fs);
    registry = new FakeRegistry();
    metrics = new RecoveryMetrics();
  }

  @AfterEach
  void tearDown() {
    if (recovery != null) {
      recovery.close();
    }
  }

  private LostExecutorRecovery recovery(long verifyTimeoutMs) {
    Map<String, String> settings = new HashMap<>();
    settings.put(AgentConf.FALLBACK_PATH, dir.toUri().toString());
    settings.put(AgentConf.VERIFY_THREADS, "4");
    settings.put(AgentConf.VERIFY_TIMEOUT, verifyTimeoutMs + "ms");
    settings.put(AgentConf.MAX_INDEX_BYTES, String.valueOf(1 << 20));
    settings.put(AgentConf.CLEANUP_SHUFFLES, "false");
    AgentConf conf = AgentConf.from(new AgentConf.Settings(settings::get));
    CopyVerifier verifier = new CopyVerifier(fs, copies.base, () -> APP, 1 << 20, new ShuffleGuard());
    recovery = new LostExecutorRecovery(registry, verifier, conf, metrics);
    return recovery;
  }

  private static MapOutputRef output(int mapIndex, long mapId, long... sizes) {
    return ExactSizeStatus.ref(mapIndex, mapId, sizes);
  }

  /** Stores the copy the agent would have written: Spark's index and data, in FallbackStorage's layout. */
  private void store(MapOutputRef o, long... lengths) throws IOException {
    copies.store(o, lengths);
  }

  private java.nio.file.Path object(String name) throws IOException {
    return copies.object(name);
  }

  @Test
  void verifiedCopiesArePointedToTheStoreAndMissingOnesRecomputed() throws IOException {
    MapOutputRef a = output(0, 100, 10, 0, 5);
    MapOutputRef b = output(1, 101, 7, 7, 7);
    registry.register(a);
    registry.register(b);
    store(a, 10, 0, 5);
    RecoveryResult r = recovery(10_000).recover(LOST, "test");
    assertEquals(1, r.repointed());
    assertEquals(1, r.recomputed());
    assertEquals("fallback", registry.atFallback.get("0/0"));
    assertFalse(registry.current.containsKey("0/1"), "the output without a copy is unregistered");
    assertEquals(1, registry.epochs.get());
    assertEquals(1, metrics.outputsRepointed.getCount());
    assertEquals(1, metrics.outputsRecomputed.getCount());
  }

  @Test
  void aStatusReplacedWhileVerifyingIsLeftAlone() throws IOException {
    MapOutputRef lost = output(0, 100, 4, 4);
    registry.register(lost);
    store(lost, 4, 4);
    // While its copy is being verified, a new attempt of the map registers elsewhere.
    MapOutputRef fresh = output(0, 200, 4, 4);
    fs.hooks.put(lost.indexName(), () -> registry.register(fresh));
    RecoveryResult r = recovery(10_000).recover(LOST, "test");
    assertEquals(0, r.repointed());
    assertSame(fresh, registry.current.get("0/0"), "the new attempt's status stays registered");
    assertFalse(registry.atFallback.containsKey("0/0"), "and is not pointed to the lost executor's copy");
  }

  @Test
  void outputsNotVerifiedBeforeTheDeadlineAreRecomputed() throws IOException {
    MapOutputRef quick = output(0, 100, 3);
    MapOutputRef stuck = output(1, 101, 3);
    registry.register(quick);
    registry.register(stuck);
    store(quick, 3);
    store(stuck, 3);
    CountDownLatch release = new CountDownLatch(1);
    fs.hooks.put(stuck.indexName(), () -> {
      try {
        release.await(); // a store that stopped answering; cancelled at the deadline
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new java.io.InterruptedIOException("cancelled");
      }
    });
    long t0 = System.nanoTime();
    RecoveryResult r = recovery(300).recover(LOST, "test");
    release.countDown();
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertTrue(ms < 5_000, "recovery ends at its deadline, not when the store answers (" + ms + " ms)");
    assertEquals(1, r.repointed());
    assertEquals(1, r.recomputed());
    assertFalse(registry.current.containsKey("0/1"));
    assertEquals("fallback", registry.atFallback.get("0/0"));
  }

  @Test
  void aStoreErrorCountsAndRecomputesThatOutputOnly() throws IOException {
    MapOutputRef good = output(0, 100, 2, 2);
    MapOutputRef bad = output(1, 101, 2, 2);
    registry.register(good);
    registry.register(bad);
    store(good, 2, 2);
    store(bad, 2, 2);
    fs.hooks.put(bad.indexName(), () -> {
      throw new IOException("503 SlowDown");
    });
    RecoveryResult r = recovery(10_000).recover(LOST, "test");
    assertEquals(1, r.repointed());
    assertEquals(1, r.recomputed());
    assertEquals(1, metrics.storeErrors.getCount());
    assertFalse(registry.current.containsKey("0/1"));
    assertTrue(registry.unregisteredAll.isEmpty(), "one output's store error is not a failure of the plugin");
  }

  @Test
  void aFailingRegistryFallsBackToSparksOwnReaction() {
    MapOutputRegistry broken = new FakeRegistry() {
      @Override
      public List<MapOutputRef> outputsOn(String executorId) {
        throw new IllegalStateException("tracker internals changed");
      }
    };
    Map<String, String> seen = new HashMap<>();
    registry = new FakeRegistry() {
      @Override
      public List<MapOutputRef> outputsOn(String executorId) {
        return broken.outputsOn(executorId);
      }

      @Override
      public void unregisterAllOn(String executorId) {
        seen.put("unregisterAllOn", executorId);
      }
    };
    RecoveryResult r = recovery(10_000).recover(LOST, "test");
    assertEquals(-1, r.outputs());
    assertEquals(LOST, seen.get("unregisterAllOn"));
    assertEquals(1, registry.epochs.get(), "the epoch is bumped all the same");
  }
}
