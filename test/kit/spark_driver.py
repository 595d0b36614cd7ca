"""A real Spark driver the tests steer line by line (JSON on stdin, JSON on stdout after '@@').

argv[1] is a JSON object: {"master": "local-cluster[2,1,1024]", "conf": {...}}. The driver
starts a SparkSession, prints {"event": "started", ...}, then answers one command per line:

  {"cmd": "define", "name": "a", "rows": N, "maps": M, "reducers": R, "keys": K, "pad": P, "random": B, "work": W}
      an RDD of N rows (i % K, i, padding of P bytes) in M map partitions, partitioned into R
      reduce partitions; an accumulator counts map partitions computed (each re-run adds 1).
      With B true the padding is pseudo-random bytes seeded by the partition (deterministic,
      and incompressible, so the shuffle's size on disk is about N * P bytes). W > 0 makes the
      map side CPU-bound: W SHA-256 rounds over each row's padding (the result is not kept).
  {"cmd": "action", "name": "a", "slowReduce": S, "marker": PATH}
      sums per key through the shuffle; with S > 0 each reduce task first creates PATH.<id>
      and sleeps S seconds (so a test can kill an executor while reducers run).
  {"cmd": "defineSql", "name": "q", "kind": "join", "rows": N, "maps": M, "keys": K, "pad": P}
      a multi-stage SQL plan: N rows (k = i % K, v = i, P bytes of padding) in M partitions,
      sort-merge joined on k with 3 * K rows (k = j % K, w = j) in 2 partitions, then summed by
      k % 7: three shuffles, one of them written by a stage that reads the other two (make it
      a sort-merge join with spark.sql.autoBroadcastJoinThreshold=-1; AQE coalesces the reads).
  {"cmd": "defineSql", "name": "big", "kind": "big", "rows": N, "width": W}
      N rows (id, W bytes: id's last digit repeated, not a constant the optimizer folds) in ONE map partition, hash-partitioned into ONE reduce
      partition, then counted: one shuffle block of about N * (W + 28) bytes.
  {"cmd": "actionSql", "name": "q"}
      collects q (the same DataFrame each time, so its shuffles are reused) and checks the
      result against the one computed in Python; answers "correct" and the executed "plan".
  {"cmd": "shuffleId", "name": "a"}    RDD a's shuffle id
  {"cmd": "dropShuffle", "name": "a"}
      drops RDD a's shuffle as Spark's ContextCleaner does once the shuffle's dependency is
      garbage collected (ContextCleaner.doCleanupShuffle, blocking), and forgets the RDD;
      answers its shuffleId.
  {"cmd": "counts"}            the TaskCounter listener's counts
  {"cmd": "pluginMetrics"}     the plugin's counters from the driver's metrics servlet
  {"cmd": "stop"}

Every answer carries "ok"; a failed action answers ok=false with the error, it never kills the
driver, so a test can assert a job failed.
"""

import hashlib
import json
import os
import random
import sys
import time
import traceback
import urllib.request

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def send(obj):
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    cfg = json.loads(sys.argv[1])
    builder = SparkSession.builder.master(cfg["master"]).appName(cfg.get("appName", "shuffle-agent-test"))
    for k, v in cfg.get("conf", {}).items():
        builder = builder.config(k, str(v))
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel(cfg.get("logLevel", "WARN"))
    jvm = sc._jvm
    send({"event": "started", "appId": sc.applicationId, "ui": sc.uiWebUrl})

    rdds = {}

    def define(c):
        acc = sc.accumulator(0)
        rows, keys, pad = int(c["rows"]), int(c["keys"]), int(c.get("pad", 0))
        padding = "x" * pad
        rand = bool(c.get("random", False))
        work = int(c.get("work", 0))

        def gen(index, it):
            acc.add(1)
            r = random.Random(index)
            for i in it:
                p = r.randbytes(pad) if rand else padding
                for _ in range(work):
                    hashlib.sha256(p).digest()
                yield (i % keys, (i, p))

        rdd = sc.parallelize(range(rows), int(c["maps"])).mapPartitionsWithIndex(gen).partitionBy(int(c["reducers"]))
        rdds[c["name"]] = (rdd, acc, rows, keys)
        return {}

    def action(c):
        rdd, acc, rows, keys = rdds[c["name"]]
        slow = float(c.get("slowReduce", 0))
        marker = c.get("marker", "")

        def reduce_part(index, it):
            if slow > 0:
                open(f"{marker}.{index}", "w").close()
                time.sleep(slow)
            sums = {}
            for k, (i, _) in it:
                sums[k] = sums.get(k, 0) + i
            return iter(sums.items())

        t0 = time.time()
        got = dict(rdd.mapPartitionsWithIndex(reduce_part).collect())
        wall = time.time() - t0
        expected = {}
        for i in range(rows):
            expected[i % keys] = expected.get(i % keys, 0) + i
        return {"correct": got == expected, "keys": len(got), "mapPartitionsComputed": acc.value, "wall": wall}

    dataframes = {}

    def define_sql(c):
        rows, kind = int(c["rows"]), c["kind"]
        if kind == "join":
            maps, keys, pad = int(c["maps"]), int(c["keys"]), int(c.get("pad", 0))
            t1 = spark.range(0, rows, 1, maps).selectExpr(f"id % {keys} AS k", "id AS v", f"repeat('x', {pad}) AS p")
            t2 = spark.range(0, 3 * keys, 1, 2).selectExpr(f"id % {keys} AS k", "id AS w")
            df = (t1.join(t2, "k").selectExpr("k % 7 AS g", "v + w + length(p) - length(p) AS x")
                  .groupBy("g").agg(F.sum("x").alias("total")))
            sums = {}
            for i in range(rows):
                k = i % keys
                # t2 holds k, k + K and k + 2K for every k: three matches per row of t1.
                sums[k % 7] = sums.get(k % 7, 0) + 3 * i + 3 * k + 3 * keys
            expected = sorted(sums.items())
        elif kind == "big":
            width = int(c["width"])
            df = (spark.range(0, rows, 1, 1).selectExpr("id", f"repeat(CAST(id % 10 AS STRING), {width}) AS s")
                  .repartition(1, "id").selectExpr("count(1) AS n", "sum(length(s)) AS chars", "sum(id) AS ids"))
            expected = [(rows, rows * width, rows * (rows - 1) // 2)]
        else:
            raise ValueError(f"unknown kind {kind}")
        dataframes[c["name"]] = (df, expected)
        return {}

    def action_sql(c):
        df, expected = dataframes[c["name"]]
        t0 = time.time()
        got = sorted(tuple(r) for r in df.collect())
        wall = time.time() - t0
        return {"correct": got == expected, "wall": wall, "plan": df._jdf.queryExecution().executedPlan().toString()}

    def shuffle_id(rdd):
        r = rdd._jrdd.rdd()
        while True:
            dep = r.dependencies().head()
            if dep.getClass().getSimpleName() == "ShuffleDependency":
                return dep.shuffleId()
            r = dep.rdd()

    def drop_shuffle(c):
        # The cleaner's own method, called directly: waiting for the JVM's and py4j's garbage
        # collectors to let go of the dependency is not deterministic.
        rdd = rdds.pop(c["name"])[0]
        sid = shuffle_id(rdd)
        sc._jsc.sc().cleaner().get().doCleanupShuffle(sid, True)
        return {"shuffleId": sid}

    def counts(_):
        return json.loads(jvm.io.github.sparkshuffleagent.testing.TaskCounter.snapshot())

    def plugin_metrics(_):
        url = sc.uiWebUrl.rstrip("/") + "/metrics/json/"
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.load(r)
        prefix = "plugin.io.github.sparkshuffleagent.ShuffleAgentPlugin."
        out = {}
        for section in ("counters", "timers", "gauges"):
            for name, v in doc.get(section, {}).items():
                if prefix in name:
                    key = name.split(prefix, 1)[1]
                    out[key] = v.get("count") if section == "counters" else v.get("value") if section == "gauges" else v
        return out

    def executor_target(c):
        # Asks the cluster manager to keep at most n executors (the standalone master then starts
        # no replacement for one that dies, as a lost spot node's replacement starts elsewhere).
        empty = jvm.org.apache.spark.api.python.PythonUtils.toScalaMap(jvm.java.util.HashMap())
        return {"accepted": bool(sc._jsc.sc().requestTotalExecutors(int(c["n"]), 0, empty))}

    handlers = {"define": define, "executorTarget": executor_target, "action": action, "shuffleId": lambda c: {"shuffleId": shuffle_id(rdds[c["name"]][0])},
                "dropShuffle": drop_shuffle, "counts": counts,
                "pluginMetrics": plugin_metrics, "defineSql": define_sql, "actionSql": action_sql,
                "javaVersion": lambda c: {"javaVersion": jvm.java.lang.System.getProperty("java.specification.version")}}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        c = json.loads(line)
        if c["cmd"] == "stop":
            break
        try:
            send({"ok": True, **handlers[c["cmd"]](c)})
        except Exception as e:  # the test asserts on it
            send({"ok": False, "error": f"{type(e).__name__}: {e}"[:4000], "trace": traceback.format_exc()[-4000:]})
    spark.stop()
    send({"event": "stopped"})


if __name__ == "__main__":
    main()
