package io.github.sparkshuffleagent;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.function.Supplier;

import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;

/**
 * Decides whether the fallback store holds a map output reducers can read, through Spark's own
 * Hadoop file system for {@code spark.storage.decommission.fallbackStorage.path} (s3a://,
 * file://, ...), at the keys Spark's FallbackStorage reads:
 * {@code <path>/<appId>/<shuffleId>/<nonNegativeHash(name)>/<name>}.
 *
 * <p>Verified means: the index object parses as Spark's index (a multiple of 8 bytes, first
 * offset 0, offsets never decreasing), its last offset equals the data object's length (0 and no
 * data object for an empty output), every partition's length is what the driver's map status
 * reports, within the precision of its size encoding (empty exactly where it says so; see
 * MapStatusSizes), and, where the status knows it, the copy has as many partitions as the shuffle. Nothing here asks the lost executor's agent: it died with the pod.
 *
 * <p>Requests per output: one GET of the index when the shuffle's prefix was listed (one LIST per
 * 1000 objects, shared by the shuffle's outputs), else a HEAD of the index, a GET of it and a
 * HEAD of the data object.
 */
final class CopyVerifier {
  private final FileSystem fs;
  private final Path base;
  private final Supplier<String> appId;
  private final long maxIndexBytes;
  private final ShuffleGuard guard;

  CopyVerifier(FileSystem fs, Path base, Supplier<String> appId, long maxIndexBytes, ShuffleGuard guard) {
    this.fs = fs;
    this.base = base;
    this.appId = appId;
    this.maxIndexBytes = maxIndexBytes;
    this.guard = guard;
  }

  /** Whether listing a prefix is a cheap operation (object stores) rather than a directory walk. */
  boolean listingIsCheap() {
    String scheme = fs.getScheme();
    return !"file".equals(scheme) && !"hdfs".equals(scheme);
  }

  /** The shuffle's prefix; throws (nothing is read or deleted) when the app id is not usable. */
  Path shuffleDir(int shuffleId) {
    String id = appId.get();
    String problem = AppIds.problem(id);
    if (problem != null) {
      throw new IllegalStateException(problem);
    }
    return new Path(new Path(base, id), Integer.toString(shuffleId));
  }

  Path objectPath(int shuffleId, String name) {
    return new Path(shuffleDir(shuffleId), nonNegativeHash(name) + "/" + name);
  }

  /** Spark's JavaUtils.nonNegativeHash: the directory each object name lives in. */
  static int nonNegativeHash(String s) {
    int h = s.hashCode();
    return h != Integer.MIN_VALUE ? Math.abs(h) : 0;
  }

  /**
   * Every object under a shuffle's prefix, by name. An absent prefix lists as empty (nothing
   * stored yet); other failures propagate, and the caller verifies object by object instead.
   */
  Map<String, FileStatus> listShuffle(int shuffleId) throws IOException {
    Map<String, FileStatus> byName = new HashMap<>();
    if (!guard.enter(shuffleId)) {
      return byName; // dropped by the driver: nothing of it is verified
    }
    try {
      RemoteIterator<LocatedFileStatus> it;
      try {
        it = fs.listFiles(shuffleDir(shuffleId), true);
      } catch (FileNotFoundException e) {
        return byName;
      }
      while (it.hasNext()) {
        LocatedFileStatus st = it.next();
        byName.put(st.getPath().getName(), st);
      }
      return byName;
    } finally {
      guard.exit(shuffleId);
    }
  }

  /**
   * Verdict on one output. {@code listing} is the shuffle's listing, or null to ask the store
   * object by object. Never throws: a store that cannot be read gives UNREADABLE.
   */
  Verdict verify(MapOutputRef out, Map<String, FileStatus> listing) {
    if (!guard.enter(out.shuffleId())) {
      return Verdict.missing("shuffle " + out.shuffleId() + " was dropped by the driver; its copies are being deleted");
    }
    try {
      return doVerify(out, listing);
    } catch (InterruptedIOException e) {
      Thread.currentThread().interrupt();
      return Verdict.unreadable("interrupted: " + e);
    } catch (IOException | RuntimeException e) {
      return Verdict.unreadable(e.toString());
    } finally {
      guard.exit(out.shuffleId());
    }
  }

  private Verdict doVerify(MapOutputRef out, Map<String, FileStatus> listing) throws IOException {
    Path indexPath = objectPath(out.shuffleId(), out.indexName());
    FileStatus index = listing != null ? listing.get(out.indexName()) : statOrNull(indexPath);
    if (index == null) {
      return Verdict.missing("no index object " + indexPath);
    }
    if (!index.isFile()) {
      return Verdict.invalid(indexPath + " is not a file");
    }
    long len = index.getLen();
    if (len < 8 || len % 8 != 0) {
      return Verdict.invalid(indexPath + " has " + len + " bytes, not a multiple of 8 of at least 8");
    }
    if (len > maxIndexBytes) {
      return Verdict.invalid(indexPath + " has " + len + " bytes, above " + AgentConf.MAX_INDEX_BYTES + " (" + maxIndexBytes + " bytes)");
    }
    long[] offsets = readOffsets(index, (int) len);
    int partitions = offsets.length - 1;
    if (offsets[0] != 0) {
      return Verdict.invalid(indexPath + " starts at offset " + offsets[0] + ", not 0");
    }
    for (int p = 0; p < partitions; p++) {
      if (offsets[p + 1] < offsets[p]) {
        return Verdict.invalid(indexPath + " offset of partition " + (p + 1) + " decreases");
      }
    }
    long expected = offsets[partitions];
    Path dataPath = objectPath(out.shuffleId(), out.dataName());
    FileStatus data = listing != null ? listing.get(out.dataName()) : statOrNull(dataPath);
    long dataLen = data == null ? 0 : data.getLen();
    if (data != null && !data.isFile()) {
      return Verdict.invalid(dataPath + " is not a file");
    }
    if (dataLen != expected) {
      return Verdict.invalid("index " + indexPath + " expects " + expected + " data bytes, data object has "
          + (data == null ? "none" : dataLen + " bytes"));
    }
    return checkAgainstStatus(out.sizes(), offsets, indexPath);
  }

  /**
   * The copy's partitions must be the map status's: the same count where the status knows it,
   * empty exactly where it says so, and each length what the status reports within the precision
   * of its size encoding (MapStatusSizes). A foreign or stale copy is not.
   */
  static Verdict checkAgainstStatus(ReportedSizes status, long[] offsets, Path indexPath) {
    int partitions = offsets.length - 1;
    if (partitions > 0 && status.sizeOf(partitions - 1) < 0) {
      return Verdict.invalid(indexPath + " has " + partitions + " partitions, more than the shuffle's");
    }
    if (status.exactPerPartition() && status.sizeOf(partitions) >= 0) {
      return Verdict.invalid(indexPath + " has " + partitions + " partitions, fewer than the shuffle's");
    }
    long[] lengths = new long[partitions];
    for (int p = 0; p < partitions; p++) {
      lengths[p] = offsets[p + 1] - offsets[p];
    }
    String mismatch = MapStatusSizes.mismatch(status, lengths);
    return mismatch == null ? Verdict.OK : Verdict.invalid(indexPath + ": " + mismatch);
  }

  private FileStatus statOrNull(Path p) throws IOException {
    try {
      return fs.getFileStatus(p);
    } catch (FileNotFoundException e) {
      return null;
    }
  }

  private long[] readOffsets(FileStatus index, int len) throws IOException {
    byte[] buf = new byte[len];
    // openFile with the status: no second HEAD on object stores.
    try (FSDataInputStream in = awaitOpen(index)) {
      in.readFully(0, buf);
    }
    ByteBuffer bb = ByteBuffer.wrap(buf); // big-endian, as Spark's DataOutputStream wrote it
    long[] offsets = new long[len / 8];
    for (int i = 0; i < offsets.length; i++) {
      offsets[i] = bb.getLong();
    }
    return offsets;
  }

  private FSDataInputStream awaitOpen(FileStatus index) throws IOException {
    try {
      return fs.openFile(index.getPath()).withFileStatus(index).build().get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("open " + index.getPath());
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof IOException) {
        throw (IOException) c;
      }
      throw new IOException("open " + index.getPath(), c);
    }
  }
}
