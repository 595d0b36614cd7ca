/** The agent's own uid and gid (image, chart): not Spark's 185, so a tenant's Spark cannot act as it. */
export const AGENT_UID = 10185;
/** The uid and gid of Apache Spark's images, owner of the executors' files; the agent is in this group. */
export const SPARK_GID = 185;
