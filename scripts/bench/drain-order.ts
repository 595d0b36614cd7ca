/**
 * `npm run bench:drain-order`: which write order saves the most complete map outputs when a
 * termination notice leaves 30 s and the backlog is larger than can be written in that time?
 *
 * The real WritebackQueue and DrainHandler run against a simulated, bandwidth-limited store in
 * virtual time (a discrete-event simulation: each PUT costs a request latency, then shares the
 * link with the other PUTs under way, each stream also capped). Only the store is simulated; the
 * queue's ordering, concurrency, retries and the drain's actions are the agent's own code. Virtual
 * time makes a 90 s scenario take well under a second and the results exactly reproducible.
 *
 * Usage: node dist/scripts/bench/drain-order.js [--seeds N] [--json PATH]
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AgentState } from '../../agent/lifecycle/agent-state.js';
import { DrainHandler } from '../../agent/lifecycle/drain-handler.js';
import { StoreError, type LocalFile, type PutOptions, type StoredObject } from '../../agent/store/block-store.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { mulberry32 } from '../../test/kit/prng.js';
import { WritebackQueue, WRITE_ORDERS, type WriteOrder, type WritebackStore } from '../../agent/writeback/writeback-queue.js';

const MB = 1e6;

interface Scenario {
  name: string;
  description: string;
  /** Output sizes (bytes) of each shuffle, drawn with `random`. */
  shuffles: (random: () => number) => number[][];
  /** Virtual seconds of normal operation before the notice (outputs arrive over this time). */
  beforeNoticeS: number;
  /** Shuffles start at random in [0, beforeNoticeS + lateStartS]: some commit after the notice. */
  lateStartS: number;
}

interface Link {
  /** Aggregate ceiling before the drain (bytes/s): the normal `--max-upload-bandwidth`. */
  normalBps: number;
  /** What the link gives once the ceiling is lifted (bytes/s). */
  linkBps: number;
  /** Per-PUT stream cap (bytes/s): one S3 connection rarely goes faster. */
  streamBps: number;
  /** Request latency of each PUT (ms). */
  latencyMs: number;
  /** Probability that an index PUT fails transiently before the drain (a throttling burst). */
  indexFailureRate: number;
}

const LINK: Link = { normalBps: 40 * MB, linkBps: 120 * MB, streamBps: 30 * MB, latencyMs: 25, indexFailureRate: 0.1 };
const DEADLINE_S = 30;
const NORMAL_CONCURRENCY = 4;
const DRAIN_CONCURRENCY = 16;
const PARTITIONS = 200;

function lognormal(random: () => number, median: number, sigma: number): number {
  const u = Math.max(random(), 1e-12);
  const v = random();
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.max(1024, Math.round(median * Math.exp(sigma * z)));
}

const SCENARIOS: Scenario[] = [
  {
    name: 'mixed',
    description: '16 shuffles, per-shuffle median output size log-uniform in [256 KB, 128 MB], sizes lognormal (sigma 0.7) around it, 40 maps each',
    shuffles: (random) =>
      Array.from({ length: 16 }, () => {
        const median = Math.exp(Math.log(256e3) + random() * (Math.log(128e6) - Math.log(256e3)));
        return Array.from({ length: 40 }, () => lognormal(random, median, 0.7));
      }),
    beforeNoticeS: 60,
    lateStartS: 5,
  },
  {
    name: 'uniform',
    description: '8 shuffles of 100 maps, every output about 8 MB (lognormal sigma 0.2)',
    shuffles: (random) => Array.from({ length: 8 }, () => Array.from({ length: 100 }, () => lognormal(random, 8e6, 0.2))),
    beforeNoticeS: 60,
    lateStartS: 5,
  },
  {
    name: 'tiny-and-huge',
    description: '10 shuffles of 200 tiny outputs (about 50 KB) and 4 shuffles of 20 huge ones (about 200 MB)',
    shuffles: (random) => [
      ...Array.from({ length: 10 }, () => Array.from({ length: 200 }, () => lognormal(random, 50e3, 0.5))),
      ...Array.from({ length: 4 }, () => Array.from({ length: 20 }, () => lognormal(random, 200e6, 0.3))),
    ].sort(() => random() - 0.5),
    beforeNoticeS: 60,
    lateStartS: 5,
  },
];

interface Transfer {
  latencyLeftMs: number;
  bytesLeft: number;
  resolve: () => void;
  reject: (err: unknown) => void;
  fail: boolean;
}

/** A store that only takes time: PUTs share a link in virtual time. */
class SimulatedStore implements WritebackStore {
  now = 0;
  ceilingBps: number;
  failIndexes = true;
  private readonly transfers = new Set<Transfer>();

  constructor(
    private readonly link: Link,
    private readonly random: () => number,
  ) {
    this.ceilingBps = link.normalBps;
  }

  /** BandwidthControl: the drain lifts the ceiling (0 = the link's capacity). */
  setBandwidthLimit(bytesPerSecond: number): void {
    this.ceilingBps = bytesPerSecond === 0 ? this.link.linkBps : Math.min(bytesPerSecond, this.link.linkBps);
  }

  put(key: string, file: LocalFile, options?: PutOptions): Promise<StoredObject> {
    return new Promise((resolve, reject) => {
      const fail = this.failIndexes && key.endsWith('.index') && this.random() < this.link.indexFailureRate;
      const t: Transfer = { latencyLeftMs: this.link.latencyMs, bytesLeft: fail ? 0 : file.size, resolve: () => resolve({ key, size: file.size }), reject, fail };
      this.transfers.add(t);
      const signal = options?.signal;
      const onAbort = (): void => {
        if (this.transfers.delete(t)) reject(new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = t.resolve;
      t.resolve = () => {
        signal?.removeEventListener('abort', onAbort);
        done();
      };
      const failed = t.reject;
      t.reject = (err) => {
        signal?.removeEventListener('abort', onAbort);
        failed(err);
      };
    });
  }

  holds(): Promise<boolean> {
    return Promise.resolve(false);
  }

  private rate(): number {
    let streaming = 0;
    for (const t of this.transfers) if (t.latencyLeftMs <= 0) streaming++;
    return streaming === 0 ? 0 : Math.min(this.link.streamBps, this.ceilingBps / streaming) / 1000; // bytes per ms
  }

  /** Virtual time of the next completion or end of a latency phase (Infinity if none). */
  nextEvent(): number {
    const rate = this.rate();
    let next = Infinity;
    for (const t of this.transfers) {
      next = Math.min(next, t.latencyLeftMs > 0 ? this.now + t.latencyLeftMs : this.now + (rate > 0 ? t.bytesLeft / rate : Infinity));
    }
    return next;
  }

  advanceTo(time: number): void {
    const dt = time - this.now;
    const rate = this.rate();
    for (const t of this.transfers) {
      if (t.latencyLeftMs > 0) t.latencyLeftMs -= dt;
      else t.bytesLeft -= rate * dt;
    }
    this.now = time;
    for (const t of [...this.transfers]) {
      // Tolerances well above float rounding at these magnitudes (times near 1e5 ms, sizes near 1e8 bytes).
      if (t.latencyLeftMs <= 1e-6 && t.bytesLeft < 1) {
        this.transfers.delete(t);
        if (t.fail) t.reject(new StoreError('simulated 503 SlowDown', 'transient', 'SlowDown'));
        else t.resolve();
      } else if (t.latencyLeftMs <= 1e-6) {
        t.latencyLeftMs = 0;
      }
    }
  }
}

/** Let the queue react to completed PUTs (its follow-ups are microtasks and immediate callbacks). */
const settle = async (): Promise<void> => {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
};

interface Result {
  scenario: string;
  order: WriteOrder | 'no-drain';
  seed: number;
  backlogOutputs: number;
  backlogBytes: number;
  committedByDeadline: number;
  savedOutputs: number;
  lostOutputs: number;
  savedBytes: number;
}

async function simulate(scenario: Scenario, order: WriteOrder | 'no-drain', seed: number): Promise<Result> {
  const random = mulberry32(seed);
  const shuffles = scenario.shuffles(random);
  // Stages overlap: each shuffle starts at a random time and its maps commit over the next 20 s;
  // shuffles starting late keep committing after the notice (tasks still run until the kill).
  const beforeMs = scenario.beforeNoticeS * 1000;
  const starts = shuffles.map(() => random() * (beforeMs + scenario.lateStartS * 1000));
  starts.sort((a, b) => a - b); // shuffle ids grow with age, as in Spark
  const arrivals = shuffles
    .flatMap((sizes, shuffleId) => sizes.map((size, i) => ({ at: (starts[shuffleId] as number) + random() * 20_000, output: { shuffleId, mapId: String(i), size } })))
    .sort((a, b) => a.at - b.at);
  const all = arrivals.map((a) => a.output);
  const store = new SimulatedStore(LINK, mulberry32(seed ^ 0x5bd1e995));
  const queue = new WritebackQueue({
    store,
    concurrency: NORMAL_CONCURRENCY,
    order: 'fifo',
    maxHeldOutputs: 0, // synthetic outputs have no local files to hold
    retry: { baseMs: 1e9, maxMs: 1e9 }, // retries wait for the drain's retryNow (virtual time has no timers)
    now: () => store.now,
  });
  const persistedAt = new Map<string, number>();
  queue.on('persisted', (o) => persistedAt.set(o.id, store.now));
  const state = new AgentState();
  state.transition('serving', 'bench');
  const handler =
    order === 'no-drain'
      ? undefined
      : new DrainHandler({ state, writeback: queue, bandwidth: store, drainConcurrency: DRAIN_CONCURRENCY, drainOrder: order });

  const noticeAt = beforeMs;
  const deadline = noticeAt + DEADLINE_S * 1000;
  let nextArrival = 0;
  let noticed = false;
  let backlogOutputs = 0;
  let backlogBytes = 0;
  while (true) {
    await settle();
    const arrivalAt = arrivals[nextArrival]?.at ?? Infinity;
    const eventAt = Math.min(store.nextEvent(), arrivalAt, noticed ? Infinity : noticeAt, deadline);
    store.advanceTo(eventAt);
    if (eventAt >= deadline) break;
    while ((arrivals[nextArrival]?.at ?? Infinity) <= store.now) {
      const { shuffleId, mapId, size } = (arrivals[nextArrival++] as (typeof arrivals)[number]).output;
      const id = `app/${shuffleId}/${mapId}`;
      const output: MapOutput = {
        id,
        appId: 'app',
        shuffleId,
        mapId,
        blockManagerDir: '/simulated',
        indexPath: `/simulated/shuffle_${shuffleId}_${mapId}_0.index`,
        indexLength: (PARTITIONS + 1) * 8,
        dataPath: `/simulated/shuffle_${shuffleId}_${mapId}_0.data`,
        dataLength: size,
        offsets: [],
        committedAt: store.now,
        foundAtStart: false,
      };
      queue.add(output);
    }
    if (!noticed && store.now >= noticeAt) {
      noticed = true;
      const status = queue.status();
      backlogOutputs = status.pendingOutputs;
      backlogBytes = status.pendingBytes;
      store.failIndexes = false;
      handler?.handle({ action: 'drain', notice: { id: 'bench', kind: 'terminate', source: 'aws', deadline } });
      if (!handler) queue.retryNow();
    }
  }
  const committed = arrivals.filter((a) => a.at < deadline).map((a) => `app/${a.output.shuffleId}/${a.output.mapId}`);
  const saved = committed.filter((id) => (persistedAt.get(id) ?? Infinity) <= deadline);
  const sizeOf = new Map(all.map((o) => [`app/${o.shuffleId}/${o.mapId}`, o.size]));
  await handler?.close();
  await queue.close();
  return {
    scenario: scenario.name,
    order,
    seed,
    backlogOutputs,
    backlogBytes,
    committedByDeadline: committed.length,
    savedOutputs: saved.length,
    lostOutputs: committed.length - saved.length,
    savedBytes: saved.reduce((s, id) => s + (sizeOf.get(id) ?? 0), 0),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const seeds = Number(args[args.indexOf('--seeds') + 1] ?? 5) || 5;
  const jsonPath = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
  const orders: Array<WriteOrder | 'no-drain'> = ['no-drain', ...WRITE_ORDERS];
  const results: Result[] = [];
  const t0 = Date.now();
  for (const scenario of SCENARIOS) {
    for (const order of orders) {
      for (let seed = 1; seed <= seeds; seed++) results.push(await simulate(scenario, order, seed));
    }
  }
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(
    `link: ceiling ${LINK.normalBps / MB} MB/s before the notice, ${LINK.linkBps / MB} MB/s lifted; ${LINK.streamBps / MB} MB/s per PUT; ${LINK.latencyMs} ms per PUT; ` +
      `${LINK.indexFailureRate * 100}% of index PUTs fail before the notice; concurrency ${NORMAL_CONCURRENCY} -> ${DRAIN_CONCURRENCY}; deadline ${DEADLINE_S} s; ${seeds} seeds`,
  );
  for (const scenario of SCENARIOS) {
    const rows = results.filter((r) => r.scenario === scenario.name);
    const first = rows[0] as Result;
    console.log(`\n### ${scenario.name}: ${scenario.description}`);
    console.log(`backlog at the notice (mean): ${mean(rows.map((r) => r.backlogOutputs)).toFixed(0)} outputs, ${(mean(rows.map((r) => r.backlogBytes)) / 1e9).toFixed(2)} GB; committed by the deadline: ${first.committedByDeadline}`);
    console.log('| order | outputs saved by the deadline (mean) | outputs lost (mean) | GB saved (mean) |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const order of orders) {
      const r = rows.filter((x) => x.order === order);
      console.log(`| ${order} | ${mean(r.map((x) => x.savedOutputs)).toFixed(1)} | ${mean(r.map((x) => x.lostOutputs)).toFixed(1)} | ${(mean(r.map((x) => x.savedBytes)) / 1e9).toFixed(2)} |`);
    }
  }
  console.log(`\n(${results.length} simulations in ${((Date.now() - t0) / 1000).toFixed(1)} s of real time)`);
  if (jsonPath) {
    await mkdir(dirname(jsonPath), { recursive: true });
    await writeFile(jsonPath, JSON.stringify({ link: LINK, deadlineS: DEADLINE_S, results }, null, 2));
  }
}

await main();
