package io.github.sparkshuffleagent;

/**
 * Throws a checked exception where the signature does not declare it. Spark's reader calls
 * {@code InputStream.read()}, which may throw only IOException, yet an IOException there is blamed on
 * the reading executor; Spark's own FetchFailedException (a checked exception, detected by type and
 * through the task context) is the only way to name what failed.
 */
final class Sneaky {
  private Sneaky() {}

  /** Never returns; the return type lets callers write {@code throw Sneaky.raise(e)}. */
  static RuntimeException raise(Throwable t) {
    return Sneaky.<RuntimeException>doRaise(t);
  }

  @SuppressWarnings("unchecked")
  private static <E extends Throwable> E doRaise(Throwable t) throws E {
    throw (E) t;
  }
}
