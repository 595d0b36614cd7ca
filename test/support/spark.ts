/** The real-Spark harness lives in scripts/ so bench:spark-kill (compiled from scripts/) shares it. */
export * from '../../scripts/spark-harness.js';
