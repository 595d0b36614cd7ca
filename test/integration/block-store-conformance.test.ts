import { FileStore } from '../../agent/store/file-store.js';
import { blockStoreConformance } from '../support/block-store-conformance.js';
import { tempDir } from '../support/local-files.js';
import { createBucket, startS3rver, storeOn, swiftS3 } from '../kit/s3-servers.js';

const MiB = 1024 * 1024;
// Small enough that the large-file case goes through multipart (three parts of 5, 5 and 1 MiB),
// and listings come in pages of two (continuation tokens: s3rver needs the legacy OpenSSL provider).
const multipart = { multipartThreshold: 6 * MiB, partSize: 5 * MiB, listPageSize: 2 };

blockStoreConformance('FileStore', async () => {
  const { dir, cleanup } = await tempDir('file-store-');
  return { store: new FileStore(dir), largeFileSize: 11 * MiB, cleanup };
});

blockStoreConformance('S3Store on s3rver', async () => {
  const server = await startS3rver();
  const bucket = await createBucket(server, 'conf');
  // s3rver ignores If-None-Match.
  return { store: storeOn(server, bucket, multipart), largeFileSize: 11 * MiB, atomicCreate: false, cleanup: () => server.close() };
});

blockStoreConformance('S3Store on Swift s3api', async () => {
  const server = await swiftS3();
  const bucket = await createBucket(server, 'conf');
  // Swift's s3api answers 501 to If-None-Match on PUT (2.30).
  return { store: storeOn(server, bucket, multipart), largeFileSize: 11 * MiB, atomicCreate: false, cleanup: () => server.close() };
});
