export * from './java-hash.js';
export * from './file-names.js';
export * from './index-file.js';
export * from './fallback-key.js';
