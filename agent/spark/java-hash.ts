/**
 * Java's `String.hashCode` and the hashing Spark's DiskBlockManager and FallbackStorage build
 * on it. Pure functions: the agent must place and name files exactly as Spark does.
 */

/** Java `String.hashCode`: h = 31*h + c over UTF-16 code units, wrapping as a signed 32-bit int. */
export function javaStringHashCode(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) {
    // Math.imul keeps the multiplication in 32 bits; `| 0` wraps the sum like Java's int.
    h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  }
  return h;
}

/** Spark's `Utils.nonNegativeHash`: `Int.MinValue` maps to 0, anything else to its absolute value. */
export function nonNegativeHash(s: string): number {
  const h = javaStringHashCode(s);
  return h === -2147483648 ? 0 : Math.abs(h);
}

/** Where DiskBlockManager puts a file: which local root, and which `NN` sub-directory under it. */
export interface LocalPlacement {
  /** Index into the executor's list of local roots. */
  dirId: number;
  /** Sub-directory name: lowercase hex, at least two digits (`00`..`3f` for 64 sub-directories). */
  subDir: string;
}

/** DiskBlockManager's placement of `fileName` given the number of local roots and sub-directories. */
export function localPlacement(fileName: string, numRoots: number, subDirsPerRoot = 64): LocalPlacement {
  if (!Number.isInteger(numRoots) || numRoots < 1) throw new RangeError(`numRoots must be a positive integer, got ${numRoots}`);
  if (!Number.isInteger(subDirsPerRoot) || subDirsPerRoot < 1) {
    throw new RangeError(`subDirsPerRoot must be a positive integer, got ${subDirsPerRoot}`);
  }
  const hash = nonNegativeHash(fileName);
  const dirId = hash % numRoots;
  const subDirId = Math.floor(hash / numRoots) % subDirsPerRoot;
  return { dirId, subDir: subDirId.toString(16).padStart(2, '0') };
}
