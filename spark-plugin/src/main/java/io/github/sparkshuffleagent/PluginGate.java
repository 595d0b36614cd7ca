package io.github.sparkshuffleagent;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Whether the driver plugin is running and able to act on executor loss. The shuffle IO's driver
 * components report reliable storage only while it is, so that a job configured with the IO but
 * without the plugin (or with a plugin that could not start) keeps Spark's own behaviour:
 * outputs of a lost executor are unregistered and recomputed, never left at a dead address.
 *
 * <p>Spark creates the plugin and the shuffle IO separately, with no handle between them; one
 * SparkContext runs per driver JVM, so a process-wide flag is the channel.
 */
final class PluginGate {
  private static final AtomicBoolean ACTIVE = new AtomicBoolean(false);

  private PluginGate() {}

  static void open() {
    ACTIVE.set(true);
  }

  static void close() {
    ACTIVE.set(false);
  }

  static boolean isOpen() {
    return ACTIVE.get();
  }
}
