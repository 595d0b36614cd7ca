package io.github.sparkshuffleagent;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

import org.apache.spark.network.buffer.ManagedBuffer;

/**
 * One fallback block as Spark's reader sees it: its size is known at once (from the cached index),
 * its bytes arrive later. Small blocks are fetched ahead by {@link TaskReads}; a block larger than
 * the task's budget is streamed from the store when the reader gets to it, never held whole.
 *
 * <p>Errors surface from the stream's {@code read()}, never from {@link #createInputStream()}
 * (Spark asserts that only file-backed buffers fail there), and as Spark's FetchFailedException,
 * thrown after the driver has unregistered the output (see {@link ReadFailures}), so that Spark
 * recomputes that output and blames neither the reading executor nor every re-pointed output.
 *
 * <p>{@link #retain()} and {@link #release()} count nothing (as for Spark's heap buffers): the
 * bytes are dropped when the reader closes the stream, or when the task ends.
 */
final class FallbackBlock extends ManagedBuffer {
  /** What fetches a block's bytes, and what opens its stream. */
  interface Source {
    byte[] read(FallbackBlock b) throws IOException;

    InputStream open(FallbackBlock b) throws IOException;
  }

  final int shuffleId;
  final long mapId;
  final int startReduceId;
  final int endReduceId;
  private final long size;
  private final boolean streamed;
  private final Source source;
  private final TaskReads owner;
  private final ReadFailures failures;
  private final CompletableFuture<byte[]> data = new CompletableFuture<>();
  private long start;
  private long dataLength;
  private volatile boolean started;
  private volatile boolean freed;

  FallbackBlock(int shuffleId, long mapId, int startReduceId, int endReduceId, long size, boolean streamed,
      Source source, TaskReads owner, ReadFailures failures) {
    this.shuffleId = shuffleId;
    this.mapId = mapId;
    this.startReduceId = startReduceId;
    this.endReduceId = endReduceId;
    this.size = size;
    this.streamed = streamed;
    this.source = source;
    this.owner = owner;
    this.failures = failures;
  }

  /**
   * A block whose read already failed (its index could not be read): fails at the first read. Its
   * size is 1, not 0: Spark's reader fails a zero-size block itself, blaming the reading executor.
   */
  static FallbackBlock failed(int shuffleId, long mapId, int startReduceId, int endReduceId, IOException cause,
      ReadFailures failures) {
    FallbackBlock b = new FallbackBlock(shuffleId, mapId, startReduceId, endReduceId, 1, false, null, null, failures);
    b.data.completeExceptionally(cause);
    return b;
  }

  /** Where the block sits in its data object, and that object's length (from the index). */
  void range(long startOffset, long dataObjectLength) {
    this.start = startOffset;
    this.dataLength = dataObjectLength;
  }

  long start() {
    return start;
  }

  long dataLength() {
    return dataLength;
  }

  boolean streamed() {
    return streamed;
  }

  boolean fetchedAhead() {
    return started;
  }

  /** Counted in the task's budget from now until {@link #free()}. */
  void markStarted() {
    started = true;
  }

  /** On a read thread: fetches the bytes (unless the task ended meanwhile). */
  void fetch() {
    if (freed) {
      data.completeExceptionally(new IOException("task ended"));
      return;
    }
    try {
      data.complete(source.read(this));
    } catch (IOException | RuntimeException e) {
      data.completeExceptionally(e);
    }
  }

  void fail(IOException e) {
    data.completeExceptionally(e);
  }

  /** Drops the bytes and gives them back to the task's budget; idempotent. */
  void free() {
    if (freed) {
      return;
    }
    freed = true;
    // The future keeps the array reachable: replace the value so the heap can take it back.
    data.obtrudeException(new IOException("block freed"));
    if (owner != null) {
      owner.freed(this);
    }
  }

  @Override
  public long size() {
    return size;
  }

  @Override
  public ByteBuffer nioByteBuffer() throws IOException {
    if (streamed) {
      throw new IOException("fallback block of shuffle " + shuffleId + " map " + mapId + " (" + size
          + " bytes) is streamed, not held in memory");
    }
    return ByteBuffer.wrap(await());
  }

  @Override
  public InputStream createInputStream() {
    return new BlockStream();
  }

  @Override
  public ManagedBuffer retain() {
    return this;
  }

  @Override
  public ManagedBuffer release() {
    return this;
  }

  @Override
  public Object convertToNetty() {
    throw new UnsupportedOperationException("fallback blocks are read by their own executor, never served");
  }

  /** Spark 4's abstract method; same answer. */
  public Object convertToNettyForSsl() {
    return convertToNetty();
  }

  private byte[] await() throws IOException {
    try {
      return data.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("waiting for fallback block of shuffle " + shuffleId + " map " + mapId);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      throw c instanceof IOException ? (IOException) c : new IOException(c);
    }
  }

  /** The reader's stream: bytes fetched ahead, or the store's stream for a streamed block. */
  private final class BlockStream extends InputStream {
    private InputStream in;
    private boolean closed;

    private InputStream in() {
      if (in == null) {
        try {
          if (!streamed && owner != null) {
            owner.demand(FallbackBlock.this);
          }
          in = streamed ? source.open(FallbackBlock.this) : new ByteArrayInputStream(await());
        } catch (IOException e) {
          if (e instanceof InterruptedIOException && Thread.currentThread().isInterrupted()) {
            throw Sneaky.raise(e); // the task was killed: not the copy's fault
          }
          throw failures.failed(FallbackBlock.this, e);
        }
      }
      return in;
    }

    @Override
    public int read() {
      try {
        return in().read();
      } catch (IOException e) {
        throw failures.failed(FallbackBlock.this, e);
      }
    }

    @Override
    public int read(byte[] b, int off, int len) {
      try {
        return in().read(b, off, len);
      } catch (IOException e) {
        throw failures.failed(FallbackBlock.this, e);
      }
    }

    @Override
    public long skip(long n) {
      try {
        return in().skip(n);
      } catch (IOException e) {
        throw failures.failed(FallbackBlock.this, e);
      }
    }

    @Override
    public void close() throws IOException {
      if (closed) {
        return;
      }
      closed = true;
      try {
        if (in != null) {
          in.close();
        }
      } finally {
        in = null;
        free();
      }
    }
  }
}
