package io.github.sparkshuffleagent;

/**
 * What the fallback store holds for one map output.
 *
 * @param kind VERIFIED when reducers can read every partition from the copy
 * @param reason why not, for the log (empty when verified)
 */
final class Verdict {
  enum Kind {
    /** Index parses and its last offset equals the data object's length. */
    VERIFIED,
    /** No index object (not stored yet, or never). */
    MISSING,
    /** Objects exist but do not form Spark's output (truncated, torn, foreign). */
    INVALID,
    /** The store could not be read; nothing is known. */
    UNREADABLE
  }

  static final Verdict OK = new Verdict(Kind.VERIFIED, "");

  private final Kind kind;
  private final String reason;

  private Verdict(Kind kind, String reason) {
    this.kind = kind;
    this.reason = reason;
  }

  Kind kind() {
    return kind;
  }

  String reason() {
    return reason;
  }

  static Verdict missing(String reason) {
    return new Verdict(Kind.MISSING, reason);
  }

  static Verdict invalid(String reason) {
    return new Verdict(Kind.INVALID, reason);
  }

  static Verdict unreadable(String reason) {
    return new Verdict(Kind.UNREADABLE, reason);
  }

  boolean verified() {
    return kind == Kind.VERIFIED;
  }

  @Override
  public String toString() {
    return kind + (reason.isEmpty() ? "" : ": " + reason);
  }
}
