/*
 * A grpc-java client of spark-shuffle-agent, for the Java interop test and the serve benchmark.
 * Spark executors are JVMs: this is the contract as grpc-java (Debian's libgrpc-java, Netty
 * transport) compiles and speaks it. Stubs are generated from proto/ by test/kit/java-client.ts
 * (protoc --java_out, grpc_java_plugin) and compiled with this file; no build tool.
 *
 * Usage (one JSON line on stdout per run; failures go to stderr with exit status 1):
 *   fetch TARGET APP SHUFFLE MAP START END OUT_FILE [TOKEN]
 *       Partitions [START, END) into OUT_FILE: {"bytes", "chunks", "source"}.
 *   parts TARGET APP SHUFFLE MAP OUT_DIR [TOKEN]
 *       Lists the app's outputs, finds MAP, fetches every partition into OUT_DIR/<r>.bin:
 *       {"partitions", "location", "map_id"}.
 *   errors TARGET APP
 *       Status codes of bad requests: {"bad_app", "negative_map", "unknown_map", "no_token"}.
 *   bench TARGET APP SHUFFLE MAP PARTITIONS CONCURRENCY SECONDS [WARM_UP_SECONDS]
 *       Keeps CONCURRENCY single-partition fetches (p, p+1), p cycling over [0, PARTITIONS), in
 *       flight on one channel, for SECONDS after a warm-up (1 s by default; the JIT's C2 compiler
 *       is still busy after it on 2 cores): {"fetches", "bytes", "seconds", "fetches_per_s",
 *       "mib_per_s"}. Every fetch is checked against the listed length.
 *   bench-whole TARGET APP SHUFFLE MAP START END REPEAT
 *       Fetches the range REPEAT times, discarding bytes: {"bytes", "seconds", "mib_per_s"}.
 */
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import spark.shuffleagent.v1.Chunk;
import spark.shuffleagent.v1.FetchShuffleBlockRequest;
import spark.shuffleagent.v1.GetStatusRequest;
import spark.shuffleagent.v1.ListMapOutputsRequest;
import spark.shuffleagent.v1.MapOutputInfo;
import spark.shuffleagent.v1.ShuffleAgentGrpc;

public final class ShuffleAgentJavaClient {
  /** The server's chunks are 1 MiB by default; the contract asks clients for at least 4 MiB. */
  private static final int MAX_INBOUND_MESSAGE = 8 * 1024 * 1024;
  /** HTTP/2 window per stream and connection: large enough that loopback is not window-bound. */
  private static final int FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

  private ShuffleAgentJavaClient() {}

  public static void main(String[] args) throws Exception {
    try {
      System.out.println(run(args));
    } catch (Exception e) {
      e.printStackTrace();
      System.exit(1);
    }
  }

  private static String run(String[] a) throws Exception {
    if (a.length < 1) throw new IllegalArgumentException("usage: fetch|parts|errors|bench|bench-whole ...");
    switch (a[0]) {
      case "fetch": {
        need(a, 8);
        ManagedChannel ch = channel(a[1], false);
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(Path.of(a[7])), 1 << 20)) {
          Fetched f = fetch(blocking(ch, arg(a, 8)), a[2], Integer.parseInt(a[3]), Long.parseLong(a[4]), Integer.parseInt(a[5]), Integer.parseInt(a[6]), out);
          return json("bytes", f.bytes, "chunks", f.chunks, "source", f.source);
        } finally {
          close(ch);
        }
      }
      case "parts": {
        need(a, 6);
        ManagedChannel ch = channel(a[1], false);
        try {
          return parts(blocking(ch, arg(a, 6)), a[2], Integer.parseInt(a[3]), Long.parseLong(a[4]), Path.of(a[5]));
        } finally {
          close(ch);
        }
      }
      case "errors": {
        need(a, 3);
        ManagedChannel ch = channel(a[1], false);
        try {
          return errors(blocking(ch, null), a[2]);
        } finally {
          close(ch);
        }
      }
      case "bench": {
        need(a, 8);
        ManagedChannel ch = channel(a[1], true);
        try {
          double warmUp = a.length > 8 ? Double.parseDouble(a[8]) : 1.0;
          return new Bench(ch, a[2], Integer.parseInt(a[3]), Long.parseLong(a[4]), Integer.parseInt(a[5]), Integer.parseInt(a[6]), Double.parseDouble(a[7])).run(warmUp);
        } finally {
          close(ch);
        }
      }
      case "bench-whole": {
        need(a, 8);
        ManagedChannel ch = channel(a[1], false);
        try {
          ShuffleAgentGrpc.ShuffleAgentBlockingStub s = blocking(ch, null);
          int repeat = Integer.parseInt(a[7]);
          long total = 0;
          long began = System.nanoTime();
          for (int i = 0; i < repeat; i++) {
            total += fetch(s, a[2], Integer.parseInt(a[3]), Long.parseLong(a[4]), Integer.parseInt(a[5]), Integer.parseInt(a[6]), null).bytes;
          }
          double seconds = (System.nanoTime() - began) / 1e9;
          return json("bytes", total, "seconds", seconds, "mib_per_s", total / 1048576.0 / seconds);
        } finally {
          close(ch);
        }
      }
      default:
        throw new IllegalArgumentException("unknown command " + a[0]);
    }
  }

  /**
   * Plaintext HTTP/2 over Netty. `direct` runs callbacks on the Netty event loop instead of
   * grpc's thread pool: for the benchmark, whose callbacks only count bytes and never block.
   */
  private static ManagedChannel channel(String target, boolean direct) {
    NettyChannelBuilder b = NettyChannelBuilder.forTarget(target)
        .usePlaintext()
        .maxInboundMessageSize(MAX_INBOUND_MESSAGE)
        .flowControlWindow(FLOW_CONTROL_WINDOW);
    if (direct) b.directExecutor();
    return b.build();
  }

  private static void close(ManagedChannel ch) throws InterruptedException {
    ch.shutdownNow();
    ch.awaitTermination(5, TimeUnit.SECONDS);
  }

  private static ShuffleAgentGrpc.ShuffleAgentBlockingStub blocking(ManagedChannel ch, String token) {
    ShuffleAgentGrpc.ShuffleAgentBlockingStub s = ShuffleAgentGrpc.newBlockingStub(ch);
    if (token == null) return s;
    Metadata headers = new Metadata();
    headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
    return s.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
  }

  private static FetchShuffleBlockRequest request(String app, int shuffle, long map, int start, int end) {
    return FetchShuffleBlockRequest.newBuilder()
        .setAppId(app)
        .setShuffleId(shuffle)
        .setMapId(map)
        .setStartReduceId(start)
        .setEndReduceId(end)
        .build();
  }

  private record Fetched(long bytes, long chunks, String source) {}

  /**
   * One range, chunk by chunk, into `sink` (null discards). Checks what the contract promises:
   * contiguous offsets, total_length on the first chunk only and equal to the bytes received.
   */
  private static Fetched fetch(ShuffleAgentGrpc.ShuffleAgentBlockingStub s, String app, int shuffle, long map, int start, int end, OutputStream sink) throws IOException {
    long size = 0;
    long chunks = 0;
    long total = 0;
    String source = "NONE";
    Iterator<Chunk> it = s.fetchShuffleBlock(request(app, shuffle, map, start, end));
    while (it.hasNext()) {
      Chunk c = it.next();
      if (c.getOffset() != size) throw new IllegalStateException("chunk at offset " + c.getOffset() + ", expected " + size);
      if (chunks == 0) {
        total = c.getTotalLength();
        source = c.getSource().name();
      } else if (c.getTotalLength() != 0) {
        throw new IllegalStateException("total_length " + c.getTotalLength() + " on chunk " + chunks + " (first chunk only)");
      }
      if (sink != null) c.getData().writeTo(sink);
      size += c.getData().size();
      chunks++;
    }
    if (chunks > 0 && total != size) throw new IllegalStateException("total_length " + total + ", received " + size);
    return new Fetched(size, chunks, source);
  }

  private static MapOutputInfo find(ShuffleAgentGrpc.ShuffleAgentBlockingStub s, String app, int shuffle, long map) {
    Iterator<MapOutputInfo> it = s.listMapOutputs(ListMapOutputsRequest.newBuilder().setAppId(app).addShuffleIds(shuffle).build());
    MapOutputInfo found = null;
    while (it.hasNext()) {
      MapOutputInfo info = it.next();
      if (info.getShuffleId() == shuffle && info.getMapId() == map) found = info;
    }
    if (found == null) throw new IllegalStateException("map output " + shuffle + "/" + map + " of " + app + " not listed");
    return found;
  }

  private static String parts(ShuffleAgentGrpc.ShuffleAgentBlockingStub s, String app, int shuffle, long map, Path outDir) throws IOException {
    MapOutputInfo info = find(s, app, shuffle, map);
    long sum = 0;
    for (int r = 0; r < info.getPartitionLengthsCount(); r++) {
      Fetched f;
      try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(outDir.resolve(r + ".bin")), 1 << 20)) {
        f = fetch(s, app, shuffle, map, r, r + 1, out);
      }
      if (f.bytes != info.getPartitionLengths(r)) {
        throw new IllegalStateException("partition " + r + ": " + f.bytes + " bytes, listed " + info.getPartitionLengths(r));
      }
      sum += f.bytes;
    }
    if (sum != info.getDataLength()) throw new IllegalStateException("data_length " + info.getDataLength() + ", partitions sum to " + sum);
    return json("partitions", info.getPartitionLengthsCount(), "location", info.getLocation().name(), "map_id", Long.toString(info.getMapId()));
  }

  private static String errors(ShuffleAgentGrpc.ShuffleAgentBlockingStub s, String app) {
    Map<String, FetchShuffleBlockRequest> bad = new LinkedHashMap<>();
    bad.put("bad_app", request("../x", 0, 0, 0, 1));
    bad.put("negative_map", request(app, 0, -1, 0, 1));
    bad.put("unknown_map", request(app, 0, 123456789, 0, 1));
    Map<String, Object> codes = new LinkedHashMap<>();
    for (Map.Entry<String, FetchShuffleBlockRequest> e : bad.entrySet()) {
      try {
        s.fetchShuffleBlock(e.getValue()).forEachRemaining(c -> {});
        codes.put(e.getKey(), "OK");
      } catch (StatusRuntimeException err) {
        codes.put(e.getKey(), err.getStatus().getCode().name());
      }
    }
    try {
      s.getStatus(GetStatusRequest.getDefaultInstance());
      codes.put("no_token", "OK");
    } catch (StatusRuntimeException err) {
      codes.put("no_token", err.getStatus().getCode().name());
    }
    return json(codes);
  }

  /**
   * CONCURRENCY async calls on one channel; each re-issues the next partition when it completes.
   * Fetches that complete inside [start + warm-up, start + warm-up + SECONDS) are counted.
   */
  private static final class Bench {
    private final ShuffleAgentGrpc.ShuffleAgentStub stub;
    private final String app;
    private final int shuffle;
    private final long map;
    private final int partitions;
    private final int concurrency;
    private final double seconds;
    private final long[] lengths;
    private final AtomicInteger next = new AtomicInteger();
    private final AtomicLong fetches = new AtomicLong();
    private final AtomicLong bytes = new AtomicLong();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private final CountDownLatch stopped;
    private long from;
    private long until;

    Bench(ManagedChannel ch, String app, int shuffle, long map, int partitions, int concurrency, double seconds) {
      MapOutputInfo info = find(ShuffleAgentGrpc.newBlockingStub(ch), app, shuffle, map);
      if (partitions < 1 || partitions > info.getPartitionLengthsCount()) {
        throw new IllegalArgumentException("PARTITIONS must be in [1, " + info.getPartitionLengthsCount() + "]");
      }
      this.stub = ShuffleAgentGrpc.newStub(ch);
      this.app = app;
      this.shuffle = shuffle;
      this.map = map;
      this.partitions = partitions;
      this.concurrency = concurrency;
      this.seconds = seconds;
      this.lengths = info.getPartitionLengthsList().stream().mapToLong(Long::longValue).toArray();
      this.stopped = new CountDownLatch(concurrency);
    }

    String run(double warmUpSeconds) throws InterruptedException {
      from = System.nanoTime() + (long) (warmUpSeconds * 1e9);
      until = from + (long) (seconds * 1e9);
      for (int i = 0; i < concurrency; i++) issue();
      if (!stopped.await((long) (warmUpSeconds + seconds) + 60, TimeUnit.SECONDS)) throw new IllegalStateException("calls still in flight 60 s after the end");
      Throwable err = failure.get();
      if (err != null) throw new IllegalStateException("bench failed", err);
      if (fetches.get() == 0) throw new IllegalStateException("no fetch completed in " + seconds + " s");
      return json("fetches", fetches.get(), "bytes", bytes.get(), "seconds", seconds,
          "fetches_per_s", fetches.get() / seconds, "mib_per_s", bytes.get() / 1048576.0 / seconds);
    }

    private void fail(Throwable t) {
      failure.compareAndSet(null, t);
      stopped.countDown();
    }

    /** Starts the next fetch, or retires this slot once time is up or a fetch failed. */
    private void issue() {
      if (System.nanoTime() >= until || failure.get() != null) {
        stopped.countDown();
        return;
      }
      int p = Math.floorMod(next.getAndIncrement(), partitions);
      stub.fetchShuffleBlock(request(app, shuffle, map, p, p + 1), new StreamObserver<Chunk>() {
        private long got;

        @Override
        public void onNext(Chunk c) {
          if (c.getOffset() != got) failure.compareAndSet(null, new IllegalStateException("partition " + p + ": chunk at " + c.getOffset() + ", expected " + got));
          got += c.getData().size();
        }

        @Override
        public void onError(Throwable t) {
          fail(new IllegalStateException("partition " + p, t));
        }

        @Override
        public void onCompleted() {
          if (got != lengths[p]) {
            fail(new IllegalStateException("partition " + p + ": " + got + " bytes, listed " + lengths[p]));
            return;
          }
          long now = System.nanoTime();
          if (now >= from && now < until) {
            fetches.incrementAndGet();
            bytes.addAndGet(got);
          }
          issue();
        }
      });
    }
  }

  private static void need(String[] a, int n) {
    if (a.length < n) throw new IllegalArgumentException(a[0] + ": expected at least " + (n - 1) + " arguments");
  }

  private static String arg(String[] a, int i) {
    return a.length > i ? a[i] : null;
  }

  private static String json(Object... kv) {
    Map<String, Object> m = new LinkedHashMap<>();
    for (int i = 0; i < kv.length; i += 2) m.put((String) kv[i], kv[i + 1]);
    return json(m);
  }

  private static String json(Map<String, Object> m) {
    StringBuilder b = new StringBuilder("{");
    for (Map.Entry<String, Object> e : m.entrySet()) {
      if (b.length() > 1) b.append(", ");
      b.append(quote(e.getKey())).append(": ");
      Object v = e.getValue();
      b.append(v instanceof Number ? v.toString() : quote(String.valueOf(v)));
    }
    return b.append('}').toString();
  }

  private static String quote(String s) {
    return '"' + s.replace("\\", "\\\\").replace("\"", "\\\"") + '"';
  }
}
