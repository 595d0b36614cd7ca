package io.github.sparkshuffleagent;

import java.util.function.Predicate;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerBlockManagerRemoved;
import org.apache.spark.scheduler.SparkListenerExecutorRemoved;

/**
 * Turns Spark's loss events into recovery requests. Both events can come first: the block
 * manager's removal is posted when the DAGScheduler handles the loss (also for Kubernetes'
 * "loss reason pending"), the executor's after the scheduler backend acted. Recovery runs on
 * its own thread, so the listener bus is never held.
 *
 * <p>A block manager is also removed when Spark blames a fetch failure on a healthy executor
 * (the DAGScheduler then drops that executor's outputs, and the executor registers again): that
 * executor is not lost and its outputs are not re-pointed. The scheduler backend tells the two
 * apart (a lost, disconnected or decommissioning executor is no longer active). Such a fetch
 * failure may be a copy at the fallback location that Spark's stock reader could not read, so the
 * fallback location is re-checked: a broken copy left registered would fail every stage retry.
 */
final class ExecutorLossListener extends SparkListener {
  private final LostExecutorRecovery recovery;
  private final Predicate<String> executorActive;

  ExecutorLossListener(LostExecutorRecovery recovery, Predicate<String> executorActive) {
    this.recovery = recovery;
    this.executorActive = executorActive;
  }

  @Override
  public void onExecutorRemoved(SparkListenerExecutorRemoved event) {
    recovery.executorLost(event.executorId(), "executor removed: " + event.reason());
  }

  @Override
  public void onBlockManagerRemoved(SparkListenerBlockManagerRemoved event) {
    String id = event.blockManagerId().executorId();
    String fallback = SparkInternals.FALLBACK_EXECUTOR_ID;
    if ("driver".equals(id) || fallback.equals(id)) {
      return;
    }
    if (executorActive.test(id)) {
      recovery.executorLost(fallback, "a fetch failure was blamed on executor " + id + ", which still runs");
    } else {
      recovery.executorLost(id, "block manager removed");
    }
  }
}
