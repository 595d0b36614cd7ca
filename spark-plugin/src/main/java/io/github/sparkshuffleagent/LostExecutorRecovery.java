package io.github.sparkshuffleagent;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletionService;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import org.apache.hadoop.fs.FileStatus;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * When an executor is lost: every map output the tracker still holds at it is verified in the
 * fallback store, in parallel and within a deadline; verified outputs are re-pointed to the
 * store as each verdict arrives, the others unregistered at once so Spark recomputes exactly
 * those; then the epoch is bumped so executors drop cached statuses.
 *
 * <p>Safe by construction: an output is re-pointed only after its copy was verified, and any
 * failure of the plugin itself falls back to Spark's own reaction (all of the executor's outputs
 * unregistered and recomputed). Work runs on the plugin's own threads, never on the listener bus.
 */
final class LostExecutorRecovery implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(LostExecutorRecovery.class);

  private final MapOutputRegistry registry;
  private final CopyVerifier verifier;
  private final AgentConf conf;
  private final RecoveryMetrics metrics;
  private final ExecutorService events;
  private final ExecutorService verifyPool;
  /** Executors with a recovery queued or running: a second event for one is a no-op. */
  private final Set<String> inFlight = ConcurrentHashMap.newKeySet();
  private volatile Consumer<RecoveryResult> onDone = r -> {};

  LostExecutorRecovery(MapOutputRegistry registry, CopyVerifier verifier, AgentConf conf, RecoveryMetrics metrics) {
    this.registry = registry;
    this.verifier = verifier;
    this.conf = conf;
    this.metrics = metrics;
    this.events = Executors.newSingleThreadExecutor(Threads.daemon("shuffle-agent-recovery"));
    this.verifyPool = Executors.newFixedThreadPool(conf.verifyThreads, Threads.daemon("shuffle-agent-verify"));
  }

  /** For tests and benchmarks: called after each executor's recovery. */
  void onDone(Consumer<RecoveryResult> listener) {
    this.onDone = listener;
  }

  /** Queues recovery of an executor (any thread; returns at once). */
  void executorLost(String executorId, String why) {
    if (!inFlight.add(executorId)) {
      return;
    }
    try {
      events.execute(() -> {
        try {
          RecoveryResult r = recover(executorId, why);
          onDone.accept(r);
        } finally {
          inFlight.remove(executorId);
        }
      });
    } catch (java.util.concurrent.RejectedExecutionException e) {
      inFlight.remove(executorId); // shutting down
    }
  }

  /** Recovers one executor on the calling thread; never throws. */
  RecoveryResult recover(String executorId, String why) {
    long start = System.nanoTime();
    List<MapOutputRef> outputs;
    try {
      outputs = registry.outputsOn(executorId);
    } catch (RuntimeException | LinkageError e) {
      return fallBackToSpark(executorId, start, e);
    }
    if (outputs.isEmpty()) {
      LOG.debug("executor {} lost ({}): no map outputs registered at it", executorId, why);
      return new RecoveryResult(executorId, 0, 0, 0, 0);
    }
    // The fallback location itself: a re-check after a failed read keeps verified copies where they are.
    boolean recheck = SparkInternals.FALLBACK_EXECUTOR_ID.equals(executorId);
    LOG.info("{} ({}): verifying {} map outputs in the fallback store", recheck ? "fallback location" : "executor "
        + executorId + " lost", why, outputs.size());
    int repointed = 0;
    int recomputed = 0;
    try {
      Map<Integer, List<MapOutputRef>> byShuffle = new LinkedHashMap<>();
      for (MapOutputRef o : outputs) {
        byShuffle.computeIfAbsent(o.shuffleId(), k -> new ArrayList<>()).add(o);
      }
      CompletionService<Outcome> done = new ExecutorCompletionService<>(verifyPool);
      List<Future<Outcome>> futures = new ArrayList<>(outputs.size());
      for (Map.Entry<Integer, List<MapOutputRef>> e : byShuffle.entrySet()) {
        Map<String, FileStatus> listing = listingFor(e.getKey(), e.getValue().size());
        for (MapOutputRef o : e.getValue()) {
          futures.add(done.submit(() -> new Outcome(o, verifier.verify(o, listing))));
        }
      }
      long deadline = start + TimeUnit.MILLISECONDS.toNanos(conf.verifyTimeoutMs);
      // Touched by this thread only: the verdicts come back through the completion service.
      Set<MapOutputRef> pending = new HashSet<>(outputs);
      int unreadable = 0;
      for (int i = 0; i < outputs.size(); i++) {
        long left = deadline - System.nanoTime();
        Future<Outcome> f = left > 0 ? done.poll(left, TimeUnit.NANOSECONDS) : null;
        if (f == null) {
          break; // deadline: what is still pending is recomputed below
        }
        Outcome oc = result(f);
        pending.remove(oc.output);
        if (oc.verdict.verified() && (recheck || registry.repointToFallback(oc.output))) {
          repointed++;
        } else {
          if (!oc.verdict.verified()) {
            logNotVerified(executorId, oc);
            if (oc.verdict.kind() == Verdict.Kind.UNREADABLE) {
              unreadable++;
            }
          }
          registry.unregister(oc.output);
          recomputed++;
        }
      }
      if (!pending.isEmpty()) {
        futures.forEach(f -> f.cancel(true));
        LOG.warn("executor {}: {} map outputs not verified within {} ({} ms): recomputed",
            executorId, pending.size(), AgentConf.VERIFY_TIMEOUT, conf.verifyTimeoutMs);
        for (MapOutputRef o : pending) {
          registry.unregister(o);
          recomputed++;
        }
      }
      metrics.storeErrors.inc(unreadable);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return fallBackToSpark(executorId, start, e);
    } catch (RuntimeException | LinkageError e) {
      return fallBackToSpark(executorId, start, e);
    }
    bumpEpoch(executorId);
    long nanos = System.nanoTime() - start;
    metrics.recordVerification(nanos);
    metrics.outputsRecomputed.inc(recomputed);
    long ms = TimeUnit.NANOSECONDS.toMillis(nanos);
    if (recheck) {
      LOG.info("fallback location re-checked: {} of {} copies still verified, {} unregistered to recompute ({} ms)",
          repointed, outputs.size(), recomputed, ms);
    } else {
      metrics.executorsRecovered.inc();
      metrics.outputsRepointed.inc(repointed);
      LOG.info("executor {} lost: {} of {} map outputs re-pointed to the fallback store, {} left to recompute ({} ms)",
          executorId, repointed, outputs.size(), recomputed, ms);
    }
    return new RecoveryResult(executorId, outputs.size(), repointed, recomputed, ms);
  }

  /**
   * The shuffle's listing when it costs fewer requests than asking per object (object stores:
   * one LIST per 1000 keys against two HEADs per output), else null.
   */
  private Map<String, FileStatus> listingFor(int shuffleId, int outputsHere) {
    if (!verifier.listingIsCheap()) {
      return null;
    }
    long pages = (2L * registry.mapCount(shuffleId) + 999) / 1000;
    if (pages >= 2L * outputsHere) {
      return null;
    }
    try {
      return verifier.listShuffle(shuffleId);
    } catch (java.io.IOException | RuntimeException e) {
      LOG.warn("listing shuffle {} in the fallback store failed ({}); verifying object by object", shuffleId, e.toString());
      return null;
    }
  }

  private static Outcome result(Future<Outcome> f) throws InterruptedException {
    try {
      return f.get();
    } catch (ExecutionException e) {
      // verify() never throws; anything here is a bug of ours, handled like a failed plugin.
      throw new IllegalStateException("verification task failed", e.getCause());
    }
  }

  private void logNotVerified(String executorId, Outcome oc) {
    MapOutputRef o = oc.output;
    if (oc.verdict.kind() == Verdict.Kind.MISSING) {
      LOG.info("executor {}: shuffle {} map {} (map id {}) has no copy yet: recomputed", executorId,
          o.shuffleId(), o.mapIndex(), o.mapId());
    } else {
      LOG.warn("executor {}: shuffle {} map {} (map id {}) copy not usable, {}: {}; recomputed", executorId,
          o.shuffleId(), o.mapIndex(), o.mapId(), oc.verdict.kind(), oc.verdict.reason());
    }
  }

  private RecoveryResult fallBackToSpark(String executorId, long start, Throwable cause) {
    LOG.error("executor {}: recovery failed; every map output still registered at it is recomputed, "
        + "as stock Spark does", executorId, cause);
    try {
      registry.unregisterAllOn(executorId);
    } catch (RuntimeException | LinkageError e) {
      LOG.error("executor {}: could not unregister its outputs either; reducers' fetch failures will", executorId, e);
    }
    bumpEpoch(executorId);
    return new RecoveryResult(executorId, -1, 0, -1, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
  }

  private void bumpEpoch(String executorId) {
    try {
      registry.incrementEpoch();
    } catch (RuntimeException | LinkageError e) {
      LOG.error("executor {}: could not increment the map output epoch", executorId, e);
    }
  }

  @Override
  public void close() {
    events.shutdownNow();
    verifyPool.shutdownNow();
  }

  private record Outcome(MapOutputRef output, Verdict verdict) {}
}
