package io.github.sparkshuffleagent;

import java.util.regex.Pattern;

/**
 * Which {@code spark.app.id} values the plugin uses as a path segment under the fallback path. A
 * user may set the app id to anything (Spark on Kubernetes takes the configured one as is): with
 * {@code ..} or a {@code /} in it a delete could reach another app's copies, and a {@code :} makes
 * Hadoop read a URI scheme and throw where Spark does not catch it. The same rule as the agent's
 * ({@code isSafeAppId}): letters, digits, {@code . _ -}, starting with a letter or digit, at most
 * 253 characters, no {@code ..}. Spark's own ids ({@code spark-<hex>}, {@code app-<time>-<n>},
 * {@code local-<millis>}) all fit.
 */
final class AppIds {
  private static final Pattern SAFE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,252}");

  private AppIds() {}

  /** Null when {@code appId} is usable, else why not (for the log). */
  static String problem(String appId) {
    if (appId == null || appId.isEmpty()) {
      return "the app id is empty";
    }
    if (!SAFE.matcher(appId).matches() || appId.contains("..")) {
      return "the app id " + quoted(appId) + " is not a plain Spark app id (letters, digits, . _ -; no ..)";
    }
    return null;
  }

  /** At most 64 characters of a user-chosen id in a log line. */
  private static String quoted(String appId) {
    return "\"" + (appId.length() > 64 ? appId.substring(0, 64) + "..." : appId) + "\"";
  }
}
