/** Reading gRPC streams in tests: bytes, chunk metadata and the final status. */
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { Chunk } from '../../agent/serve/proto.js';

export interface Collected {
  data: Buffer;
  chunks: Array<{ offset: number; length: number; total: number; source: string }>;
}

/** Read a Chunk stream to its end; rejects with the ServiceError it ends with. */
export async function collect(stream: ClientReadableStream<Chunk>): Promise<Collected> {
  const parts: Buffer[] = [];
  const chunks: Collected['chunks'] = [];
  for await (const c of stream as AsyncIterable<Chunk>) {
    parts.push(c.data);
    chunks.push({ offset: Number(c.offset), length: c.data.length, total: Number(c.total_length), source: c.source });
  }
  return { data: Buffer.concat(parts), chunks };
}

/** The gRPC status name a promise rejects with, e.g. `NOT_FOUND`; `OK` if it resolves. */
export async function statusOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    const code = (err as Partial<ServiceError>).code;
    if (typeof code !== 'number') throw err;
    return status[code] as string;
  }
}
