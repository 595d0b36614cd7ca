/** Where the image holds the Spark plugin's jar, and where the pod templates put it for Spark. */
export const PLUGIN_JAR_IN_IMAGE = '/opt/spark-shuffle-agent/spark-shuffle-agent-plugin-0.1.0.jar';
/** The volume mount, in the executor and driver containers, that spark.*.extraClassPath names. */
export const PLUGIN_DIR_IN_SPARK = '/opt/spark-shuffle-agent';
