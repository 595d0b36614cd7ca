package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

/** A dropped shuffle's delete waits for verifications inside it; later ones do not enter. */
class ShuffleGuardTest {
  @Test
  void dropWaitsUntilTheLastVerificationLeaves() throws InterruptedException {
    ShuffleGuard guard = new ShuffleGuard();
    assertTrue(guard.enter(3));
    assertTrue(guard.enter(3));
    Thread deleter = new Thread(() -> {
      try {
        guard.drop(3);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    });
    deleter.start();
    // The deleter marks the shuffle dropped, then waits: no new verification gets in.
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (deleter.getState() != Thread.State.WAITING) {
      assertTrue(System.nanoTime() < deadline, "the delete never waited");
      Thread.onSpinWait();
    }
    assertFalse(guard.enter(3));
    assertTrue(guard.enter(4), "other shuffles are not held up");
    guard.exit(3);
    assertTrue(deleter.isAlive(), "one verification is still inside");
    guard.exit(3);
    deleter.join(10_000);
    assertFalse(deleter.isAlive());
  }
}
