package io.github.sparkshuffleagent;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerBlockManagerRemoved;
import org.apache.spark.scheduler.SparkListenerExecutorRemoved;

/**
 * Turns Spark's loss events into recovery requests. Both events can come first: the block
 * manager's removal is posted when the DAGScheduler handles the loss (also for Kubernetes'
 * "loss reason pending"), the executor's after the scheduler backend acted. Recovery runs on
 * its own thread, so the listener bus is never held.
 */
final class ExecutorLossListener extends SparkListener {
  private final LostExecutorRecovery recovery;

  ExecutorLossListener(LostExecutorRecovery recovery) {
    this.recovery = recovery;
  }

  @Override
  public void onExecutorRemoved(SparkListenerExecutorRemoved event) {
    recovery.executorLost(event.executorId(), "executor removed: " + event.reason());
  }

  @Override
  public void onBlockManagerRemoved(SparkListenerBlockManagerRemoved event) {
    String id = event.blockManagerId().executorId();
    if (!"driver".equals(id) && !"fallback".equals(id)) {
      recovery.executorLost(id, "block manager removed");
    }
  }
}
