package io.github.sparkshuffleagent;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;

/**
 * A fallback store in a test's temp dir, on the local Hadoop file system the plugin's classes get:
 * copies written where Spark's FallbackStorage reads them
 * ({@code <dir>/<appId>/<shuffleId>/<nonNegativeHash(name)>/<name>}), in Spark's index format.
 * The JUnit tests' one set-up of a store (rather than one copy each).
 */
final class LocalFallbackDir {
  /** The store's root as a Hadoop path (the plugin's fallback path). */
  final org.apache.hadoop.fs.Path base;
  final FileSystem fs;
  private final Path dir;
  private final String appId;

  LocalFallbackDir(Path dir, String appId) throws IOException {
    this.dir = dir;
    this.appId = appId;
    this.base = new org.apache.hadoop.fs.Path(dir.toUri());
    this.fs = base.getFileSystem(new Configuration());
  }

  /** Where the object {@code name} of shuffle 0 lives; its directory is created. */
  Path object(String name) throws IOException {
    Path p = dir.resolve(appId).resolve("0").resolve(Integer.toString(CopyVerifier.nonNegativeHash(name))).resolve(name);
    Files.createDirectories(p.getParent());
    return p;
  }

  /** An index object holding these offsets as they are (a test's malformed index included). */
  void writeOffsets(String indexName, long... offsets) throws IOException {
    try (OutputStream f = Files.newOutputStream(object(indexName)); DataOutputStream out = new DataOutputStream(f)) {
      for (long o : offsets) {
        out.writeLong(o); // big-endian, as Spark's DataOutputStream writes it
      }
    }
  }

  /** The index Spark's IndexShuffleBlockResolver writes for these partition lengths; returns their sum. */
  long writeIndex(String indexName, long... partitionLengths) throws IOException {
    long[] offsets = new long[partitionLengths.length + 1];
    for (int p = 0; p < partitionLengths.length; p++) {
      offsets[p + 1] = offsets[p] + partitionLengths[p];
    }
    writeOffsets(indexName, offsets);
    return offsets[partitionLengths.length];
  }

  /** A whole copy of {@code o}: its index, and a data object of zeros unless every partition is empty. */
  void store(MapOutputRef o, long... partitionLengths) throws IOException {
    long total = writeIndex(o.indexName(), partitionLengths);
    if (total > 0) {
      // Sparse: a huge partition costs no memory or disk.
      try (RandomAccessFile data = new RandomAccessFile(object(o.dataName()).toFile(), "rw")) {
        data.setLength(total);
      }
    }
  }
}
