package io.github.sparkshuffleagent.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.spark.FetchFailed;
import org.apache.spark.executor.ShuffleReadMetrics;
import org.apache.spark.Success$;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerExecutorRemoved;
import org.apache.spark.scheduler.SparkListenerStageCompleted;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;

/**
 * Test-only listener ({@code spark.extraListeners}): counts what the real-Spark tests assert on,
 * read from Python through py4j with {@link #snapshot()}. Successful ShuffleMapTask ends per
 * stage and per executor prove whether map tasks ran again; fetch failures and failed stage
 * attempts show which race a run took. Shuffle bytes read (successful tasks) are for
 * bench:spark-kill: Spark counts blocks read from the fallback store as local reads. Each map
 * output computed is listed with its shuffle, partition, executor and map id (the task id, which
 * names its files), so a test can tell WHICH outputs were computed again and where they had been.
 */
public final class TaskCounter extends SparkListener {
  private static final Object LOCK = new Object();
  private static final Map<String, Integer> MAP_TASKS_BY_STAGE = new TreeMap<>();
  private static final Map<String, Integer> MAP_TASKS_BY_EXECUTOR = new TreeMap<>();
  private static final List<String> REMOVED = new ArrayList<>();
  /** Stage id -> the id of the shuffle its map tasks write (map stages only). */
  private static final Map<Integer, Integer> SHUFFLE_OF_STAGE = new TreeMap<>();
  /** One JSON array per successful map task: [shuffleId, partition, executorId, mapId]. */
  private static final List<String> MAP_OUTPUTS = new ArrayList<>();
  private static int mapTasks;
  private static int resultTasks;
  private static int fetchFailures;
  private static int failedStages;
  private static long shuffleLocalBytesRead;
  private static long shuffleRemoteBytesRead;

  @Override
  public void onStageSubmitted(SparkListenerStageSubmitted e) {
    synchronized (LOCK) {
      if (e.stageInfo().shuffleDepId().isDefined()) {
        SHUFFLE_OF_STAGE.put(e.stageInfo().stageId(), (Integer) e.stageInfo().shuffleDepId().get());
      }
    }
  }

  @Override
  public void onTaskEnd(SparkListenerTaskEnd e) {
    synchronized (LOCK) {
      if (e.reason() instanceof FetchFailed) {
        fetchFailures++;
      }
      if (e.reason() != Success$.MODULE$) {
        return;
      }
      if (e.taskMetrics() != null) {
        ShuffleReadMetrics r = e.taskMetrics().shuffleReadMetrics();
        shuffleLocalBytesRead += r.localBytesRead();
        shuffleRemoteBytesRead += r.remoteBytesRead();
      }
      if ("ShuffleMapTask".equals(e.taskType())) {
        mapTasks++;
        MAP_TASKS_BY_STAGE.merge(e.stageId() + "." + e.stageAttemptId(), 1, Integer::sum);
        MAP_TASKS_BY_EXECUTOR.merge(e.taskInfo().executorId(), 1, Integer::sum);
        // The listener bus delivers a stage's submission before its tasks' ends.
        MAP_OUTPUTS.add("[" + SHUFFLE_OF_STAGE.getOrDefault(e.stageId(), -1) + "," + e.taskInfo().partitionId() + ",\""
            + e.taskInfo().executorId() + "\"," + e.taskInfo().taskId() + "]");
      } else if ("ResultTask".equals(e.taskType())) {
        resultTasks++;
      }
    }
  }

  @Override
  public void onStageCompleted(SparkListenerStageCompleted e) {
    synchronized (LOCK) {
      if (e.stageInfo().failureReason().isDefined()) {
        failedStages++;
      }
    }
  }

  @Override
  public void onExecutorRemoved(SparkListenerExecutorRemoved e) {
    synchronized (LOCK) {
      REMOVED.add(e.executorId());
    }
  }

  /** The counts as one JSON object. */
  public static String snapshot() {
    synchronized (LOCK) {
      return "{\"mapTasks\":" + mapTasks + ",\"resultTasks\":" + resultTasks + ",\"fetchFailures\":" + fetchFailures
          + ",\"failedStages\":" + failedStages + ",\"shuffleLocalBytesRead\":" + shuffleLocalBytesRead
          + ",\"shuffleRemoteBytesRead\":" + shuffleRemoteBytesRead + ",\"mapTasksByStage\":" + json(MAP_TASKS_BY_STAGE)
          + ",\"mapTasksByExecutor\":" + json(MAP_TASKS_BY_EXECUTOR) + ",\"removedExecutors\":" + jsonList(REMOVED) + ",\"mapOutputs\":[" + String.join(",", MAP_OUTPUTS) + "]}";
    }
  }

  private static String json(Map<String, Integer> m) {
    StringBuilder b = new StringBuilder("{");
    m.forEach((k, v) -> b.append(b.length() > 1 ? "," : "").append('"').append(k).append("\":").append(v));
    return b.append('}').toString();
  }

  private static String jsonList(List<String> l) {
    StringBuilder b = new StringBuilder("[");
    l.forEach(s -> b.append(b.length() > 1 ? "," : "").append('"').append(s).append('"'));
    return b.append(']').toString();
  }
}
