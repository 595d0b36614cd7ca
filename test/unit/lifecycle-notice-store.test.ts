import { describe, expect, it } from 'vitest';
import { NoticeStore } from '../../agent/lifecycle/notice-store.js';
import type { TerminationNotice } from '../../agent/lifecycle/notice.js';

const aws = (time: string): TerminationNotice => ({ id: `instance-action:terminate:${time}`, kind: 'terminate', source: 'aws', deadline: Date.parse(time) });

describe('NoticeStore: de-duplication and decisions', () => {
  it('decides once per notice, however often a source reports it', () => {
    let now = Date.parse('2026-11-22T01:00:00Z');
    const store = new NoticeStore({ drainTimeoutMs: 25_000, now: () => now });
    expect(store.add(aws('2026-11-22T01:02:00Z'))).toMatchObject({ action: 'drain' });
    for (let i = 0; i < 10; i++) {
      now += 2_000;
      expect(store.add(aws('2026-11-22T01:02:00Z'))).toBeUndefined();
    }
    expect(store.notices()).toHaveLength(1);
    expect(store.deadline()).toBe(Date.parse('2026-11-22T01:02:00Z'));
    // The same id from another source is another notice.
    expect(store.add({ ...aws('2026-11-22T01:02:00Z'), source: 'azure' })).toMatchObject({ action: 'drain' });
  });

  it('forgets a notice not seen for forgetAfterMs (fake clock), then decides on it again', () => {
    let now = 0;
    const store = new NoticeStore({ drainTimeoutMs: 25_000, forgetAfterMs: 60_000, now: () => now });
    const n: TerminationNotice = { id: 'preempted', kind: 'terminate', source: 'gcp', deadline: 30_000 };
    expect(store.add(n)).toBeDefined();
    now = 59_000;
    expect(store.add(n)).toBeUndefined();
    now = 118_000; // 59 s after it was last seen: still kept
    expect(store.add(n)).toBeUndefined();
    now = 178_001; // more than 60 s after the last sighting
    expect(store.add(n)).toMatchObject({ action: 'drain' });
  });

  it('keeps the earliest deadline a repeated notice reports', () => {
    const store = new NoticeStore({ drainTimeoutMs: 25_000, now: () => 0 });
    store.add({ id: 'e1', kind: 'terminate', source: 'azure', deadline: 90_000 });
    store.add({ id: 'e1', kind: 'terminate', source: 'azure', deadline: 120_000 });
    expect(store.deadline()).toBe(90_000);
    store.add({ id: 'e1', kind: 'terminate', source: 'azure', deadline: 10_000 });
    expect(store.deadline()).toBe(10_000);
  });

  it('a first signal means exit by now + drain timeout; a second means exit now', () => {
    let now = 5_000;
    const store = new NoticeStore({ drainTimeoutMs: 25_000, now: () => now });
    expect(store.add({ id: 'SIGTERM#1', kind: 'exit', source: 'signal' })).toEqual({
      action: 'exit',
      notice: { id: 'SIGTERM#1', kind: 'exit', source: 'signal' },
      deadline: 30_000,
    });
    expect(store.exitBy).toBe(30_000);
    now = 6_000;
    expect(store.add({ id: 'SIGINT#2', kind: 'exit', source: 'signal' })).toMatchObject({ action: 'exit-now' });
    expect(store.exitBy).toBe(30_000);
    expect(store.deadline()).toBe(30_000);
  });

  it('a rebalance recommendation speeds up, or drains when configured; it sets no deadline', () => {
    const rebalance: TerminationNotice = { id: 'rebalance:t', kind: 'rebalance', source: 'aws' };
    expect(new NoticeStore({ drainTimeoutMs: 1 }).add(rebalance)).toMatchObject({ action: 'speed-up' });
    const draining = new NoticeStore({ drainTimeoutMs: 1, drainOnRebalance: true });
    expect(draining.add(rebalance)).toMatchObject({ action: 'drain' });
    expect(draining.deadline()).toBeUndefined();
  });

  it('the effective deadline is the earliest of the drain-causing notices', () => {
    const store = new NoticeStore({ drainTimeoutMs: 25_000, now: () => 0 });
    store.add({ id: 'a', kind: 'terminate', source: 'aws', deadline: 120_000 });
    store.add({ id: 'r', kind: 'drain', source: 'http' });
    expect(store.deadline()).toBe(120_000);
    store.add({ id: 'SIGTERM#1', kind: 'exit', source: 'signal' });
    expect(store.deadline()).toBe(25_000);
  });
});
