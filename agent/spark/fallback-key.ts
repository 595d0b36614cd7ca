/**
 * Object keys of Spark's FallbackStorage, relative to `spark.storage.decommission.fallbackStorage.path`.
 * Spark 3.3+: `<appId>/<shuffleId>/<nonNegativeHash(fileName)>/<fileName>`;
 * Spark 3.1 and 3.2: `<appId>/<shuffleId>/<fileName>`.
 */
import { nonNegativeHash } from './java-hash.js';

export type FallbackLayout = 'spark-3.3' | 'spark-3.1';
export const FALLBACK_LAYOUTS: readonly FallbackLayout[] = ['spark-3.3', 'spark-3.1'];

export function fallbackKey(appId: string, shuffleId: number, fileName: string, layout: FallbackLayout = 'spark-3.3'): string {
  if (!isSafeAppId(appId)) throw new RangeError(`app id ${JSON.stringify(appId)} cannot be used in a storage key`);
  if (fileName.includes('/')) throw new RangeError(`file name ${JSON.stringify(fileName)} contains '/'`);
  return layout === 'spark-3.3'
    ? `${appId}/${shuffleId}/${nonNegativeHash(fileName)}/${fileName}`
    : `${appId}/${shuffleId}/${fileName}`;
}

/** App ids become path segments: refuse anything that could climb out of the store's root. */
export function isSafeAppId(appId: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(appId) && !appId.includes('..');
}
