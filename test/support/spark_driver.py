"""A real Spark driver the tests steer line by line (JSON on stdin, JSON on stdout after '@@').

argv[1] is a JSON object: {"master": "local-cluster[2,1,1024]", "conf": {...}}. The driver
starts a SparkSession, prints {"event": "started", ...}, then answers one command per line:

  {"cmd": "define", "name": "a", "rows": N, "maps": M, "reducers": R, "keys": K, "pad": P, "random": B, "work": W}
      an RDD of N rows (i % K, i, padding of P bytes) in M map partitions, partitioned into R
      reduce partitions; an accumulator counts map partitions computed (each re-run adds 1).
      With B true the padding is pseudo-random bytes seeded by the partition (deterministic,
      and incompressible, so the shuffle's size on disk is about N * P bytes). With W > 0 each
      row first costs W rounds of SHA-256 (map-side CPU, so recomputing an output is not free;
      the rows are the same).
  {"cmd": "action", "name": "a", "slowReduce": S, "marker": PATH}
      sums per key through the shuffle; with S > 0 each reduce task first creates PATH.<id>
      and sleeps S seconds (so a test can kill an executor while reducers run).
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
                h = b"%d" % i
                for _ in range(work):
                    h = hashlib.sha256(h).digest()
                yield (i % keys, (i, r.randbytes(pad) if rand else padding))

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

    handlers = {"define": define, "action": action, "shuffleId": lambda c: {"shuffleId": shuffle_id(rdds[c["name"]][0])},
                "dropShuffle": drop_shuffle, "counts": counts,
                "pluginMetrics": plugin_metrics}
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
