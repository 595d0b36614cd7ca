package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The driver's handling of a failed fallback read, against copies on a real local Hadoop file
 * system and a map output registry that records what is registered where.
 */
class FailedReadHandlerTest {
  private static final String APP = "app-20261206000000-0001";
  private static final String FALLBACK = SparkInternals.FALLBACK_EXECUTOR_ID;

  /** Where each output is registered: executor id, or absent once unregistered. */
  private final Map<MapOutputRef, String> at = new HashMap<>();
  private int epochs;

  private final MapOutputRegistry registry = new MapOutputRegistry() {
    @Override
    public List<MapOutputRef> outputsOn(String executorId) {
      List<MapOutputRef> out = new ArrayList<>();
      at.forEach((o, e) -> {
        if (e.equals(executorId)) {
          out.add(o);
        }
      });
      return out;
    }

    @Override
    public int mapCount(int shuffleId) {
      return 3;
    }

    @Override
    public boolean repointToFallback(MapOutputRef output) {
      return at.replace(output, FALLBACK) != null;
    }

    @Override
    public void unregister(MapOutputRef output) {
      at.remove(output);
    }

    @Override
    public void incrementEpoch() {
      epochs++;
    }

    @Override
    public void unregisterAllOn(String executorId) {
      at.values().removeIf(executorId::equals);
    }
  };

  @TempDir Path dir;
  private LocalFallbackDir copies;
  private LostExecutorRecovery recovery;
  private FailedReadHandler handler;
  private final List<MapOutputRef> outputs = new ArrayList<>();

  @BeforeEach
  void setUp() throws IOException {
    copies = new LocalFallbackDir(dir, APP);
    CopyVerifier verifier = new CopyVerifier(copies.fs, copies.base, () -> APP, 1 << 20, new ShuffleGuard());
    recovery = new LostExecutorRecovery(registry, verifier, AgentConf.from(new AgentConf.Settings(k -> null)), new RecoveryMetrics());
    handler = new FailedReadHandler(registry, recovery);
    for (int i = 0; i < 3; i++) {
      MapOutputRef o = ExactSizeStatus.ref(i, 100 + i, 10, 20);
      outputs.add(o);
      at.put(o, FALLBACK);
      store(o);
    }
  }

  @AfterEach
  void tearDown() {
    recovery.close();
  }

  private Path object(String name) throws IOException {
    return copies.object(name);
  }

  private void store(MapOutputRef o) throws IOException {
    copies.store(o, 10, 20);
  }

  private void delete(MapOutputRef o) throws IOException {
    Files.delete(object(o.indexName()));
    Files.delete(object(o.dataName()));
  }

  private Object report(MapOutputRef o) {
    return handler.receive(ReadReports.FAILED + "\t" + o.shuffleId() + "\t" + o.mapId() + "\tgone");
  }

  @Test
  void unregistersTheFailedOutputAndEveryOtherBrokenCopyOnce() throws IOException {
    delete(outputs.get(0));
    delete(outputs.get(2));
    assertEquals(0, report(outputs.get(0))); // its map index
    // The re-check found the other deleted copy; the good one stays at the fallback location.
    assertEquals(Map.of(outputs.get(1), FALLBACK), at);
    assertEquals(2, handler.outputsUnregistered.getCount());
    assertEquals(1, epochs);
    // A second task reporting the other one finds it already handled.
    assertEquals(-1, report(outputs.get(2)));
    assertEquals(2, handler.outputsUnregistered.getCount());
    assertEquals(2, handler.failuresReported.getCount());
  }

  @Test
  void whenEveryCopyIsGoneEveryOutputIsUnregisteredAtTheFirstReport() throws IOException {
    for (MapOutputRef o : outputs) {
      delete(o);
    }
    assertEquals(1, report(outputs.get(1)));
    assertEquals(Map.of(), at);
    assertEquals(3, handler.outputsUnregistered.getCount());
  }

  @Test
  void readTotalsAreSummedOverExecutorsAndNeverGoBack() {
    handler.receive(ReadReports.STATS + "\t1\t10\t1000\t11\t1\t0\t0");
    handler.receive(ReadReports.STATS + "\t2\t5\t500\t5\t0\t0\t0");
    handler.receive(ReadReports.STATS + "\t1\t8\t800\t9\t1\t0\t0"); // late and older: ignored
    assertEquals(15, handler.total(0));
    assertEquals(1500, handler.total(1));
    assertEquals(16, handler.total(2));
    assertEquals(null, handler.receive("something else"));
  }
}
