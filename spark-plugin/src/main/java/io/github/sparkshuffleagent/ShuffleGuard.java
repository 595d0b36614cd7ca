package io.github.sparkshuffleagent;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * Keeps a dropped shuffle's delete and a lost executor's verification of that shuffle apart:
 * verification enters the shuffle before it reads a copy and leaves after; the delete first marks
 * the shuffle dropped (no verification enters it any more) and then waits until none is inside.
 * A verdict is therefore never based on a copy half deleted, and recovery of other shuffles never
 * waits for a delete.
 */
final class ShuffleGuard {
  private final Map<Integer, Integer> inside = new HashMap<>();
  /** Shuffle ids only (a few bytes each): an app drops at most as many as it ran. */
  private final Set<Integer> dropped = new HashSet<>();

  /** False when the driver dropped the shuffle: its copies are going, there is nothing to verify. */
  synchronized boolean enter(int shuffleId) {
    if (dropped.contains(shuffleId)) {
      return false;
    }
    inside.merge(shuffleId, 1, Integer::sum);
    return true;
  }

  synchronized void exit(int shuffleId) {
    inside.computeIfPresent(shuffleId, (k, n) -> n == 1 ? null : n - 1);
    notifyAll();
  }

  /** Marks the shuffle dropped, then returns once no verification reads it. */
  synchronized void drop(int shuffleId) throws InterruptedException {
    dropped.add(shuffleId);
    while (inside.containsKey(shuffleId)) {
      wait();
    }
  }
}
