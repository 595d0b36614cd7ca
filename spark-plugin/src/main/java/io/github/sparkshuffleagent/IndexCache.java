package io.github.sparkshuffleagent;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;

/**
 * An executor's index objects (offsets of each reduce partition in a copy), read once and kept,
 * bounded in bytes, least recently used dropped first. Reducers of the same executor ask for the
 * same outputs' indexes at once: one read serves them all. A failed read is not kept, so a later
 * task asks the store again.
 */
final class IndexCache {
  /** Reads one output's offsets. */
  interface Loader {
    long[] load(int shuffleId, long mapId) throws IOException;
  }

  /** Per-entry bookkeeping of a HashMap entry, key and array header, counted against the bound. */
  static final long ENTRY_OVERHEAD = 96;

  private final long maxBytes;
  private final Loader loader;
  private final Map<Key, CompletableFuture<long[]>> loading = new ConcurrentHashMap<>();
  /** Access-ordered: iteration starts at the least recently used. Guarded by {@code this}. */
  private final LinkedHashMap<Key, long[]> entries = new LinkedHashMap<>(64, 0.75f, true);
  private long bytes;

  IndexCache(long maxBytes, Loader loader) {
    this.maxBytes = maxBytes;
    this.loader = loader;
  }

  long[] get(int shuffleId, long mapId) throws IOException {
    Key key = new Key(shuffleId, mapId);
    synchronized (this) {
      long[] hit = entries.get(key);
      if (hit != null) {
        return hit;
      }
    }
    CompletableFuture<long[]> mine = new CompletableFuture<>();
    CompletableFuture<long[]> f = loading.putIfAbsent(key, mine);
    if (f == null) {
      f = mine;
      try {
        long[] offsets = loader.load(shuffleId, mapId);
        put(key, offsets);
        mine.complete(offsets);
      } catch (IOException | RuntimeException e) {
        mine.completeExceptionally(e);
      } finally {
        loading.remove(key);
      }
    }
    try {
      return f.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("waiting for the index of shuffle " + shuffleId + " map " + mapId);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      if (c instanceof IOException) {
        throw (IOException) c;
      }
      throw (RuntimeException) c;
    }
  }

  private synchronized void put(Key key, long[] offsets) {
    long size = sizeOf(offsets);
    if (size > maxBytes) {
      return; // larger than the whole cache: served to this caller, not kept
    }
    long[] old = entries.put(key, offsets);
    bytes += size - (old == null ? 0 : sizeOf(old));
    Iterator<Map.Entry<Key, long[]>> it = entries.entrySet().iterator();
    while (bytes > maxBytes && it.hasNext()) {
      Map.Entry<Key, long[]> eldest = it.next();
      bytes -= sizeOf(eldest.getValue());
      it.remove();
    }
  }

  /** Drops a shuffle's entries (the shuffle was unregistered). */
  synchronized void dropShuffle(int shuffleId) {
    Iterator<Map.Entry<Key, long[]>> it = entries.entrySet().iterator();
    while (it.hasNext()) {
      Map.Entry<Key, long[]> e = it.next();
      if (e.getKey().shuffleId == shuffleId) {
        bytes -= sizeOf(e.getValue());
        it.remove();
      }
    }
  }

  synchronized long bytes() {
    return bytes;
  }

  synchronized int size() {
    return entries.size();
  }

  static long sizeOf(long[] offsets) {
    return 8L * offsets.length + ENTRY_OVERHEAD;
  }

  private static final class Key {
    final int shuffleId;
    final long mapId;

    Key(int shuffleId, long mapId) {
      this.shuffleId = shuffleId;
      this.mapId = mapId;
    }

    @Override
    public boolean equals(Object o) {
      if (!(o instanceof Key)) {
        return false;
      }
      Key k = (Key) o;
      return k.shuffleId == shuffleId && k.mapId == mapId;
    }

    @Override
    public int hashCode() {
      return 31 * shuffleId + Long.hashCode(mapId);
    }
  }
}
