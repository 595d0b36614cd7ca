/** Where the image holds the Spark plugin's jar (version-free: jobs' class paths survive upgrades). */
export const PLUGIN_JAR_IN_IMAGE = '/opt/spark-shuffle-agent/spark-shuffle-agent-plugin.jar';
/** The volume mount, in the executor and driver containers, that spark.*.extraClassPath names. */
export const PLUGIN_DIR_IN_SPARK = '/opt/spark-shuffle-agent';
