/** `--s3-checksums`: whether the SDK adds flexible checksums (x-amz-checksum-*, aws-chunked bodies). */
export type S3ChecksumMode = 'when_supported' | 'when_required';
export const S3_CHECKSUM_MODES: readonly S3ChecksumMode[] = ['when_supported', 'when_required'];
