package io.github.sparkshuffleagent;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * Whole copies, on the executor's local disk, of small data objects at the fallback location.
 *
 * <p>A reduce task reads one block of each lost map output, and the executor runs many reduce
 * tasks: at 300 reducers, an output's data object is asked for 300 times, a few KiB each time, and
 * every request pays the store's first byte (tens of ms on S3) and a signed request's CPU on both
 * ends. An object of at most {@code read.wholeObjectMaxBytes} is instead fetched whole, once per
 * executor, in one streamed GET written straight to local disk (never held in heap), and every
 * block of it is then read from that file. The copies take at most {@code read.localCopyBytes} of
 * disk; the least recently used are deleted first. A copy's content never changes: Spark names a
 * map output by its task attempt, and the agent writes each output once.
 */
final class LocalCopies {
  /** Opens the whole data object of an output, {@code dataLen} bytes, as one stream. */
  interface Fetcher {
    InputStream open(int shuffleId, long mapId, long dataLen) throws IOException;
  }

  /** Writing or reading the local copy failed (the disk, not the store): read from the store instead. */
  static final class LocalDiskException extends IOException {
    private static final long serialVersionUID = 1L;

    LocalDiskException(String message, IOException cause) {
      super(message, cause);
    }
  }

  private static final class Entry {
    final int shuffleId;
    final long mapId;
    final long dataLen;
    final Path file;
    final CompletableFuture<Path> done = new CompletableFuture<>();

    Entry(int shuffleId, long mapId, long dataLen, Path file) {
      this.shuffleId = shuffleId;
      this.mapId = mapId;
      this.dataLen = dataLen;
      this.file = file;
    }
  }

  private final Path dir;
  private final long maxBytes;
  private final Fetcher fetcher;
  private final ReadMetrics metrics;
  /** In access order: the first entries are the least recently used. Guarded by {@code this}. */
  private final LinkedHashMap<String, Entry> entries = new LinkedHashMap<>(64, 0.75f, true);
  private long bytes;
  private long seq;
  private boolean closed;

  LocalCopies(Path dir, long maxBytes, Fetcher fetcher, ReadMetrics metrics) {
    this.dir = dir;
    this.maxBytes = maxBytes;
    this.fetcher = fetcher;
    this.metrics = metrics;
  }

  /**
   * Bytes {@code [start, start + len)} of an output's data object of {@code dataLen} bytes, from
   * the local copy, fetched whole first if this executor has none. A store error is thrown as the
   * store gave it; a local disk error as {@link LocalDiskException}.
   */
  byte[] read(int shuffleId, long mapId, long dataLen, long start, int len) throws IOException {
    for (int attempt = 0;; attempt++) {
      Path file = copy(shuffleId, mapId, dataLen);
      try {
        return readAt(file, start, len);
      } catch (NoSuchFileException e) {
        if (attempt > 0) {
          throw new LocalDiskException("local copy " + file + " vanished twice", e);
        }
        // Deleted between its fetch and this read (to make room, or by someone else): fetch it again.
        forget(shuffleId, mapId, dataLen, file);
      } catch (IOException e) {
        throw new LocalDiskException("read local copy " + file, e);
      }
    }
  }

  private Path copy(int shuffleId, long mapId, long dataLen) throws IOException {
    // The length is part of the key: a copy written again with other bytes is another copy.
    String key = key(shuffleId, mapId, dataLen);
    Entry e;
    boolean mine = false;
    synchronized (this) {
      if (closed) {
        throw new IOException("the executor's read path is stopped");
      }
      e = entries.get(key);
      if (e == null) {
        e = new Entry(shuffleId, mapId, dataLen, dir.resolve("s" + shuffleId + "-m" + mapId + "-" + (seq++) + ".copy"));
        entries.put(key, e);
        mine = true;
      }
    }
    if (mine) {
      fetch(key, e);
    }
    try {
      return e.done.get();
    } catch (InterruptedException ie) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("waiting for the local copy of shuffle " + shuffleId + " map " + mapId);
    } catch (ExecutionException ee) {
      Throwable c = ee.getCause();
      if (c instanceof IOException) {
        throw (IOException) c;
      }
      throw new IOException("local copy of shuffle " + shuffleId + " map " + mapId, c);
    }
  }

  private static String key(int shuffleId, long mapId, long dataLen) {
    return shuffleId + "/" + mapId + "/" + dataLen;
  }

  private void fetch(String key, Entry e) {
    try {
      write(e);
      metrics.localCopies.inc();
      synchronized (this) {
        if (entries.get(key) == e) {
          bytes += e.dataLen;
          evict();
        }
      }
      e.done.complete(e.file);
    } catch (IOException | RuntimeException | Error err) {
      synchronized (this) {
        entries.remove(key, e);
      }
      deleteQuietly(e.file);
      e.done.completeExceptionally(err);
    }
  }

  /** One streamed GET of the whole object into the file; store errors pass through as they are. */
  private void write(Entry e) throws IOException {
    byte[] buf = new byte[64 * 1024];
    long written = 0;
    try (InputStream in = fetcher.open(e.shuffleId, e.mapId, e.dataLen);
        FileChannel out = openForWrite(e.file)) {
      for (int n; (n = in.read(buf)) > 0;) {
        ByteBuffer bb = ByteBuffer.wrap(buf, 0, n);
        try {
          while (bb.hasRemaining()) {
            out.write(bb);
          }
        } catch (IOException diskError) {
          throw new LocalDiskException("write local copy " + e.file, diskError);
        }
        written += n;
      }
    }
    if (written != e.dataLen) {
      throw new java.io.EOFException("data object of shuffle " + e.shuffleId + " map " + e.mapId + " ended at "
          + written + " bytes, its index says " + e.dataLen);
    }
  }

  private static FileChannel openForWrite(Path file) throws LocalDiskException {
    try {
      return FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
    } catch (IOException e) {
      throw new LocalDiskException("create local copy " + file, e);
    }
  }

  private static byte[] readAt(Path file, long start, int len) throws IOException {
    byte[] out = new byte[len];
    ByteBuffer bb = ByteBuffer.wrap(out);
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long pos = start;
      while (bb.hasRemaining()) {
        int n = ch.read(bb, pos);
        if (n < 0) {
          throw new java.io.EOFException(file + " ended at " + pos + ", before " + (start + len));
        }
        pos += n;
      }
    }
    return out;
  }

  private synchronized void forget(int shuffleId, long mapId, long dataLen, Path file) {
    String key = key(shuffleId, mapId, dataLen);
    Entry e = entries.get(key);
    if (e != null && e.file.equals(file) && e.done.isDone()) {
      entries.remove(key);
      bytes -= e.dataLen;
    }
  }

  /** Deletes the least recently used finished copies while the copies take more than the limit. */
  private void evict() {
    Iterator<Entry> it = entries.values().iterator();
    while (bytes > maxBytes && it.hasNext()) {
      Entry e = it.next();
      if (e.done.isDone()) {
        it.remove();
        bytes -= e.dataLen;
        deleteQuietly(e.file);
      }
    }
  }

  /** Spark unregistered the shuffle: its copies are not read again. */
  void dropShuffle(int shuffleId) {
    List<Entry> dropped = new ArrayList<>();
    synchronized (this) {
      for (Iterator<Map.Entry<String, Entry>> it = entries.entrySet().iterator(); it.hasNext();) {
        Entry e = it.next().getValue();
        if (e.shuffleId == shuffleId && e.done.isDone()) {
          it.remove();
          bytes -= e.dataLen;
          dropped.add(e);
        }
      }
    }
    dropped.forEach(e -> deleteQuietly(e.file));
  }

  synchronized long bytes() {
    return bytes;
  }

  /** The executor stops: every copy and the directory are deleted. */
  void close() {
    synchronized (this) {
      closed = true;
      entries.clear();
      bytes = 0;
    }
    try (var files = Files.list(dir)) {
      files.forEach(LocalCopies::deleteQuietly);
    } catch (IOException | UncheckedIOException e) {
      // The executor's local dirs go with it.
    }
    deleteQuietly(dir);
  }

  private static void deleteQuietly(Path p) {
    try {
      Files.deleteIfExists(p);
    } catch (IOException e) {
      // Left for the executor's local dirs' own clean-up.
    }
  }
}
