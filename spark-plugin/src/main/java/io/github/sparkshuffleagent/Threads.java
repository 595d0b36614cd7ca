package io.github.sparkshuffleagent;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/** The plugin's threads: daemons (they never keep a driver alive), named for thread dumps. */
final class Threads {
  private Threads() {}

  static ThreadFactory daemon(String prefix) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, prefix + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  /** Lets submitted work finish for up to {@code waitMs}, then interrupts what is left. */
  static void shutdownWithin(ExecutorService executor, long waitMs) {
    executor.shutdown();
    try {
      if (!executor.awaitTermination(waitMs, TimeUnit.MILLISECONDS)) {
        executor.shutdownNow();
      }
    } catch (InterruptedException e) {
      executor.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }
}
