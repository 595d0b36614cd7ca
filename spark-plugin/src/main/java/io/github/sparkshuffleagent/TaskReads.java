package io.github.sparkshuffleagent;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * One task's fallback blocks, fetched ahead of the reader on the executor's read threads, in the
 * order Spark's reader will consume them, under the task's byte budget and request cap.
 *
 * <p>Spark asks for every fallback block of a task before returning its first record, and then
 * consumes them in that order. So blocks are started first come first served while the bytes held
 * (fetched or being fetched, not yet consumed) stay within {@code maxBytes} and the requests in
 * flight within {@code maxRequests}; a block's bytes are given back when the reader closes its
 * stream, or at the end of the task. A block larger than the budget is never fetched ahead: the
 * reader streams it when it gets there (see {@link FallbackBlock}). A block alone may always
 * start, so the reader never waits for a block that cannot be fetched.
 */
final class TaskReads {
  private final long maxBytes;
  private final int maxRequests;
  private final Executor pool;
  private final ArrayDeque<FallbackBlock> waiting = new ArrayDeque<>();
  /** Every block handed out, to free them all at the task's end. Guarded by {@code this}. */
  private final List<FallbackBlock> all = new ArrayList<>();
  private final java.util.Set<Integer> shufflesSeen = new java.util.HashSet<>();
  private long bytesHeld;
  private long peakBytesHeld;
  private int requestsInFlight;
  private boolean closed;
  private int blocks;
  private long bytes;

  TaskReads(long maxBytes, int maxRequests, Executor pool) {
    this.maxBytes = maxBytes;
    this.maxRequests = maxRequests;
    this.pool = pool;
  }

  /** True the first time a task reads a block of this shuffle. */
  synchronized boolean firstBlockOf(int shuffleId) {
    return shufflesSeen.add(shuffleId);
  }

  /** Registers a block in consumption order; fetches it ahead unless it is streamed. */
  synchronized void add(FallbackBlock b) {
    if (closed) {
      return;
    }
    all.add(b);
    blocks++;
    bytes += b.size();
    if (!b.streamed()) {
      waiting.add(b);
      pump();
    }
  }

  private void pump() {
    while (!closed && !waiting.isEmpty() && requestsInFlight < maxRequests) {
      FallbackBlock next = waiting.peek();
      if (bytesHeld > 0 && bytesHeld + next.size() > maxBytes) {
        return;
      }
      waiting.poll();
      start(next);
    }
  }

  /**
   * The reader waits for this block: start it now if it has not started, whatever the budget
   * says. Spark closes each block's stream when it has read it, which frees the budget; should a
   * stream stay open, the reader still never waits for a block nobody fetches.
   */
  synchronized void demand(FallbackBlock b) {
    if (!closed && waiting.remove(b)) {
      start(b);
    }
  }

  private void start(FallbackBlock next) {
    next.markStarted();
    bytesHeld += next.size();
    peakBytesHeld = Math.max(peakBytesHeld, bytesHeld);
    requestsInFlight++;
    try {
      pool.execute(() -> {
        try {
          next.fetch();
        } finally {
          fetched();
        }
      });
    } catch (RejectedExecutionException e) {
      // The executor is stopping: the block fails when read, like any store error.
      requestsInFlight--;
      next.fail(new java.io.IOException("the executor's read threads are stopped"));
    }
  }

  private synchronized void fetched() {
    requestsInFlight--;
    pump();
  }

  /** The reader is done with a fetched block: its bytes leave the budget. */
  synchronized void freed(FallbackBlock b) {
    if (b.fetchedAhead()) {
      bytesHeld -= b.size();
    }
    pump();
  }

  /** The task ended: nothing more is fetched, and every block's bytes are dropped. */
  void close() {
    List<FallbackBlock> blocksToFree;
    synchronized (this) {
      if (closed) {
        return;
      }
      closed = true;
      waiting.clear();
      blocksToFree = new ArrayList<>(all);
      all.clear();
    }
    for (FallbackBlock b : blocksToFree) {
      b.free();
    }
  }

  synchronized int blocks() {
    return blocks;
  }

  synchronized long bytes() {
    return bytes;
  }

  /** Most bytes this task held at once (fetched ahead, not yet consumed). */
  synchronized long peakBytesHeld() {
    return peakBytesHeld;
  }

  synchronized long bytesHeld() {
    return bytesHeld;
  }
}
