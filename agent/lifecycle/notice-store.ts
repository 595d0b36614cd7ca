/**
 * The one place that decides what notices mean. Sources poll and report the same notice again
 * and again (AWS answers the same instance-action on every poll); the store keeps each notice
 * once, by source and id, and turns the first sighting into a decision for the drain handler:
 *
 * - `terminate` and `drain` notices -> `drain`;
 * - `rebalance` -> `speed-up` (or `drain` with `--drain-on-rebalance`);
 * - the first `exit` notice -> `exit` with a deadline of now + `--drain-timeout`;
 * - a second `exit` notice (a second signal) -> `exit-now`.
 */
import type { TerminationNotice } from './notice.js';

export type Decision =
  | { action: 'speed-up'; notice: TerminationNotice }
  | { action: 'drain'; notice: TerminationNotice }
  | { action: 'exit'; notice: TerminationNotice; deadline: number }
  | { action: 'exit-now'; notice: TerminationNotice };

export interface NoticeStoreOptions {
  /** How long a `exit` notice leaves for draining before the process exits (ms). */
  drainTimeoutMs: number;
  /** Treat an AWS rebalance recommendation as a drain, not only a speed-up. */
  drainOnRebalance?: boolean;
  /** A notice not seen again for this long is forgotten, and would count as new (ms). */
  forgetAfterMs?: number;
  now?: () => number;
}

interface Kept {
  notice: TerminationNotice;
  firstSeen: number;
  lastSeen: number;
}

export class NoticeStore {
  private readonly kept = new Map<string, Kept>();
  private exitDeadline: number | undefined;
  private readonly now: () => number;
  private readonly forgetAfterMs: number;

  constructor(private readonly options: NoticeStoreOptions) {
    this.now = options.now ?? Date.now;
    this.forgetAfterMs = options.forgetAfterMs ?? 6 * 3600_000;
  }

  /** Record a notice; returns the decision it causes, or undefined for a duplicate. */
  add(notice: TerminationNotice): Decision | undefined {
    const now = this.now();
    this.forget(now);
    const key = `${notice.source}\u0000${notice.id}`;
    const seen = this.kept.get(key);
    if (seen) {
      seen.lastSeen = now;
      // A source may report another time for the same event (Azure's NotBefore, a Started event
      // with none): keep the earliest, the one that must not be missed.
      const before = seen.notice.deadline;
      if (notice.deadline !== undefined && (before === undefined || notice.deadline < before)) seen.notice = { ...seen.notice, deadline: notice.deadline };
      return undefined;
    }
    this.kept.set(key, { notice, firstSeen: now, lastSeen: now });
    return this.decide(notice, now);
  }

  private decide(notice: TerminationNotice, now: number): Decision {
    switch (notice.kind) {
      case 'exit':
        if (this.exitDeadline !== undefined) return { action: 'exit-now', notice };
        this.exitDeadline = Math.min(now + this.options.drainTimeoutMs, notice.deadline ?? Infinity);
        return { action: 'exit', notice, deadline: this.exitDeadline };
      case 'rebalance':
        return this.options.drainOnRebalance ? { action: 'drain', notice } : { action: 'speed-up', notice };
      default:
        return { action: 'drain', notice };
    }
  }

  /** Notices currently kept, oldest first. */
  notices(): TerminationNotice[] {
    return [...this.kept.values()].sort((a, b) => a.firstSeen - b.firstSeen).map((k) => k.notice);
  }

  /** When the process must have exited (set by the first exit notice), if ever. */
  get exitBy(): number | undefined {
    return this.exitDeadline;
  }

  /** The earliest deadline of any kept notice that asks for a drain: when writing back must be done. */
  deadline(): number | undefined {
    let earliest: number | undefined;
    for (const { notice } of this.kept.values()) {
      if (notice.kind === 'rebalance' && !this.options.drainOnRebalance) continue;
      const d = notice.kind === 'exit' ? this.exitDeadline : notice.deadline;
      if (d !== undefined && (earliest === undefined || d < earliest)) earliest = d;
    }
    return earliest;
  }

  private forget(now: number): void {
    for (const [key, k] of this.kept) if (now - k.lastSeen > this.forgetAfterMs) this.kept.delete(key);
  }
}
