package io.github.sparkshuffleagent;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.ExecutionException;

import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * The executor's reads of map output copies in the fallback store, at the keys Spark's
 * FallbackStorage uses ({@code <path><appId>/<shuffleId>/<nonNegativeHash(name)>/<name>}), each
 * attempt retried by {@link ReadRetry}.
 *
 * <p>Requests: an index object costs one GET when its length is known (the shuffle's reduce
 * partitions + 1 offsets, from the reader's handle), otherwise what an open and a whole read cost
 * (on S3A a HEAD and a GET); once per output and executor, see {@link IndexCache}; a block costs one
 * ranged GET of exactly its bytes: the data object is opened with its length known from the index
 * (no HEAD) and random-access read policy (no read to the object's end, no aborted connection).
 */
final class FallbackStore {
  /** S3A's read policy key (Hadoop 3.3); later Hadoop also reads the standard key below. */
  private static final String S3A_FADVISE = "fs.s3a.experimental.input.fadvise";
  private static final String READ_POLICY = "fs.option.openfile.read.policy";
  private static final String OPEN_LENGTH = "fs.option.openfile.length";

  private final FileSystem fs;
  private final Path appDir;
  private final ReadRetry retry;
  private final long maxIndexBytes;

  FallbackStore(FileSystem fs, Path base, String appId, ReadRetry retry, long maxIndexBytes) {
    this.fs = fs;
    this.appDir = new Path(base, appId);
    this.retry = retry;
    this.maxIndexBytes = maxIndexBytes;
  }

  Path objectPath(int shuffleId, String name) {
    return new Path(new Path(appDir, Integer.toString(shuffleId)), CopyVerifier.nonNegativeHash(name) + "/" + name);
  }

  static String indexName(int shuffleId, long mapId) {
    return "shuffle_" + shuffleId + "_" + mapId + "_0.index";
  }

  static String dataName(int shuffleId, long mapId) {
    return "shuffle_" + shuffleId + "_" + mapId + "_0.data";
  }

  /**
   * The offsets of an output's index object, checked to be Spark's format. With {@code knownLength}
   * (the shuffle's reduce partitions + 1, times 8; 0 when unknown) the object is opened with that
   * length: one GET, no HEAD; an object shorter than that is not a copy of this shuffle's output.
   */
  long[] readIndex(int shuffleId, long mapId, long knownLength) throws IOException {
    Path p = objectPath(shuffleId, indexName(shuffleId, mapId));
    if (knownLength > maxIndexBytes) {
      throw new ReadRetry.CorruptCopyException(p + " would be " + knownLength + " bytes, larger than " + AgentConf.MAX_INDEX_BYTES + " (" + maxIndexBytes + " bytes)");
    }
    byte[] bytes = retry.run("read " + p, () -> knownLength > 0 ? readKnown(p, (int) knownLength) : readWhole(p));
    if (bytes.length < 8 || bytes.length % 8 != 0) {
      throw new ReadRetry.CorruptCopyException(p + " has " + bytes.length + " bytes, not a multiple of 8 of at least 8");
    }
    ByteBuffer bb = ByteBuffer.wrap(bytes);
    long[] offsets = new long[bytes.length / 8];
    for (int i = 0; i < offsets.length; i++) {
      offsets[i] = bb.getLong();
      if (i == 0 ? offsets[0] != 0 : offsets[i] < offsets[i - 1]) {
        throw new ReadRetry.CorruptCopyException(p + " is not a Spark index (offset " + i + " is " + offsets[i] + ")");
      }
    }
    return offsets;
  }

  private byte[] readKnown(Path p, int len) throws IOException {
    byte[] buf = new byte[len];
    try (FSDataInputStream in = open(p, len, "sequential")) {
      in.readFully(0, buf, 0, len);
    } catch (java.io.EOFException e) {
      throw new ReadRetry.CorruptCopyException(p + " is shorter than the " + (len / 8 - 1)
          + " reduce partitions of its shuffle need (" + len + " bytes)");
    }
    return buf;
  }

  private byte[] readWhole(Path p) throws IOException {
    try (FSDataInputStream in = fs.open(p)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream(1024);
      byte[] buf = new byte[8192];
      for (int n; (n = in.read(buf)) > 0;) {
        out.write(buf, 0, n);
        if (out.size() > maxIndexBytes) {
          throw new ReadRetry.CorruptCopyException(p + " is larger than " + AgentConf.MAX_INDEX_BYTES + " (" + maxIndexBytes + " bytes)");
        }
      }
      return out.toByteArray();
    }
  }

  /** Bytes {@code [start, start + len)} of an output's data object of {@code dataLen} bytes: one request. */
  byte[] readRange(int shuffleId, long mapId, long dataLen, long start, int len) throws IOException {
    Path p = objectPath(shuffleId, dataName(shuffleId, mapId));
    return retry.run("read " + p, () -> {
      byte[] buf = new byte[len];
      try (FSDataInputStream in = open(p, dataLen, "random")) {
        noReadahead(in);
        in.readFully(start, buf, 0, len);
      }
      return buf;
    });
  }

  /**
   * Asks for exactly the bytes read. S3A's random-access GET otherwise covers at least its
   * readahead range ({@code fs.s3a.readahead.range}, 64 KiB by default) and drains the rest when
   * the stream closes: ten times a typical block's bytes through the store, the network and the
   * SDK's stream wrappers, which profiling showed as most of the executor's CPU per block.
   */
  private static void noReadahead(FSDataInputStream in) {
    try {
      in.setReadahead(0L);
    } catch (UnsupportedOperationException e) {
      // A file system without readahead reads what it is asked.
    } catch (IOException e) {
      // Never thrown by S3A's setReadahead; a file system that fails here reads as before.
    }
  }

  /**
   * A stream of bytes {@code [start, start + len)} of the data object, for blocks too large to hold:
   * one sequential GET, reopened where it broke off after a transient error.
   */
  InputStream openRange(int shuffleId, long mapId, long dataLen, long start, long len) throws IOException {
    Path p = objectPath(shuffleId, dataName(shuffleId, mapId));
    return new RangeStream(p, dataLen, start, len);
  }

  private FSDataInputStream open(Path p, long dataLen, String policy) throws IOException {
    try {
      return fs.openFile(p).withFileStatus(KnownFileStatus.of(fs, p, dataLen)).opt(S3A_FADVISE, policy)
          .opt(READ_POLICY, policy).opt(OPEN_LENGTH, Long.toString(dataLen)).build().get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("open " + p);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof IOException) {
        throw (IOException) c;
      }
      throw new IOException("open " + p, c);
    }
  }

  /** Bounded view of a range, reopening the object at the current position on transient errors. */
  private final class RangeStream extends InputStream {
    private final Path path;
    private final long dataLen;
    private long pos;
    private final long end;
    private FSDataInputStream in;

    RangeStream(Path path, long dataLen, long start, long len) throws IOException {
      this.path = path;
      this.dataLen = dataLen;
      this.pos = start;
      this.end = start + len;
      reopen();
    }

    private void reopen() throws IOException {
      closeQuietly();
      long at = pos;
      in = retry.run("open " + path, () -> {
        FSDataInputStream s = open(path, dataLen, "sequential");
        try {
          s.seek(at);
        } catch (IOException e) {
          s.close();
          throw e;
        }
        return s;
      });
    }

    @Override
    public int read() throws IOException {
      byte[] one = new byte[1];
      int n = read(one, 0, 1);
      return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      if (pos >= end) {
        return -1;
      }
      int want = (int) Math.min(len, end - pos);
      for (int attempt = 0;; attempt++) {
        try {
          int n = in.read(b, off, want);
          if (n < 0) {
            throw new java.io.EOFException(path + " ended at " + pos + ", before " + end);
          }
          pos += n;
          return n;
        } catch (IOException e) {
          if (!ReadRetry.isTransient(e) || attempt >= 2) {
            throw e;
          }
          reopen(); // itself retried with backoff
        }
      }
    }

    @Override
    public long skip(long n) throws IOException {
      long k = Math.max(0, Math.min(n, end - pos));
      pos += k;
      in.seek(pos);
      return k;
    }

    @Override
    public int available() {
      return 0;
    }

    private void closeQuietly() {
      if (in != null) {
        try {
          in.close();
        } catch (IOException e) {
          // A failed close of a read stream loses nothing.
        }
        in = null;
      }
    }

    @Override
    public void close() {
      closeQuietly();
      pos = end;
    }
  }

  /** A status with the length already known, so the open needs no HEAD. */
  static final class KnownFileStatus {
    private KnownFileStatus() {}

    static FileStatus of(FileSystem fs, Path p, long len) {
      if ("s3a".equals(fs.getScheme())) {
        try {
          // Hadoop 3.3's S3A honours only its own status type (later versions take any status).
          return S3aFileStatuses.of(p, len);
        } catch (LinkageError e) {
          // hadoop-aws of another shape: a plain status, which Hadoop 3.4+ accepts.
        }
      }
      return new FileStatus(len, false, 1, 0, 0, p);
    }
  }
}
