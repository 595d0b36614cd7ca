package io.github.sparkshuffleagent;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.s3a.S3AFileStatus;

/**
 * The one place that names a hadoop-aws class. Loaded only when the fallback path is s3a:// (then
 * hadoop-aws is on the class path): Hadoop 3.3's {@code openFile().withFileStatus()} skips its HEAD
 * only for an {@link S3AFileStatus}.
 */
final class S3aFileStatuses {
  private S3aFileStatuses() {}

  static FileStatus of(Path p, long len) {
    // No etag or version id: S3A then records the first GET's etag and checks later GETs against it.
    return new S3AFileStatus(len, 0L, p, 0L, null, null, null);
  }
}
