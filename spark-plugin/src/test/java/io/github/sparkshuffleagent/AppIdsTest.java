package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 17, item 7: a user-chosen {@code spark.app.id} never makes the plugin read, write or
 * delete outside the app's prefix, and never throws into Spark (registerMetrics, which Spark does
 * not catch, starts the heartbeat).
 */
class AppIdsTest {
  private static final List<String> HOSTILE = List.of("..", "x/../other", "a:b", "../other", "other/..", "", "/abs",
      "x y", ".hidden", "a\\b");

  @TempDir Path dir;

  @Test
  void sparkIdsPassAndHostileOnesDoNot() {
    for (String ok : List.of("spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9", "app-20261202000000-0000", "local-1764979200000")) {
      assertNull(AppIds.problem(ok), ok);
    }
    for (String bad : HOSTILE) {
      assertNotNull(AppIds.problem(bad), bad);
    }
    assertNotNull(AppIds.problem(null));
  }

  @Test
  void theHeartbeatOfAHostileIdWritesNothingAndDoesNotThrow() throws IOException {
    org.apache.hadoop.fs.Path base = new org.apache.hadoop.fs.Path(dir.resolve("fallback").toUri());
    FileSystem fs = base.getFileSystem(new Configuration());
    try (AppHeartbeat heartbeat = new AppHeartbeat(fs, base, 60_000)) {
      for (String bad : HOSTILE) {
        assertFalse(heartbeat.start(bad), bad);
      }
    }
    assertFalse(Files.exists(dir.resolve("fallback")));
    assertFalse(Files.exists(dir.resolve("_heartbeat")));
  }

  @Test
  void aDroppedShuffleOfAHostileIdDeletesNothingOutsideTheAppPrefix() throws IOException, InterruptedException {
    Path victim = dir.resolve("fallback").resolve("other").resolve("0");
    Files.createDirectories(victim);
    Files.write(victim.resolve("copy"), new byte[] {1});
    org.apache.hadoop.fs.Path base = new org.apache.hadoop.fs.Path(dir.resolve("fallback").toUri());
    FileSystem fs = base.getFileSystem(new Configuration());
    ShuffleGuard guard = new ShuffleGuard();
    CopyVerifier verifier = new CopyVerifier(fs, base, () -> "x/../other", 1 << 20, guard);
    ShuffleCleanup cleanup = ShuffleCleanup.start(fs, verifier::shuffleDir, guard);
    ShuffleCleanup.shuffleRemoved(0);
    cleanup.close(); // waits for the queued delete
    assertTrue(Files.exists(victim.resolve("copy")), "the other app's copies are still there");
    // Verification of the same id reads nothing either.
    Verdict v = verifier.verify(new MapOutputRef(0, 0, 1, null, null), null);
    assertEquals(Verdict.Kind.UNREADABLE, v.kind());
  }
}
