import { describe, expect, it, vi } from 'vitest';
import { AgentState, TRANSITIONS, type StateChange } from '../../agent/lifecycle/agent-state.js';
import { silentLogger } from '../../agent/observability/logger.js';

describe('AgentState transition table', () => {
  it('walks starting -> serving -> draining -> safe_to_exit -> draining with a fake clock', () => {
    let now = 1_000;
    const state = new AgentState(undefined, () => now);
    const changes: StateChange[] = [];
    state.on('change', (c) => changes.push(c));
    expect(state.state).toBe('starting');
    expect(state.enteredAt).toBe(1_000);
    now = 2_000;
    expect(state.transition('serving', 'scan done')).toBe(true);
    now = 3_000;
    expect(state.transition('draining', 'notice')).toBe(true);
    now = 4_000;
    expect(state.transition('safe_to_exit', 'idle')).toBe(true);
    now = 5_000;
    expect(state.transition('draining', 'new output')).toBe(true);
    expect(state.enteredAt).toBe(5_000);
    expect(changes.map((c) => `${c.from}>${c.to}@${c.at}`)).toEqual([
      'starting>serving@2000',
      'serving>draining@3000',
      'draining>safe_to_exit@4000',
      'safe_to_exit>draining@5000',
    ]);
  });

  it('refuses (and logs) transitions the table does not allow, without changing state', () => {
    const logger = silentLogger();
    const warn = vi.spyOn(logger, 'warn');
    const state = new AgentState(logger);
    expect(state.transition('safe_to_exit', 'too early')).toBe(false);
    expect(state.state).toBe('starting');
    state.transition('serving', 'ok');
    state.transition('draining', 'ok');
    expect(state.transition('serving', 'no way back')).toBe(false);
    expect(state.state).toBe('draining');
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls[1]?.[0]).toMatchObject({ from: 'draining', to: 'serving' });
  });

  it('allows a drain during the initial scan, and no state ever returns to serving', () => {
    expect(TRANSITIONS.starting).toContain('draining');
    for (const [from, tos] of Object.entries(TRANSITIONS)) if (from !== 'starting') expect(tos).not.toContain('serving');
  });

  it('stopping is reachable from every other state and final', () => {
    for (const from of ['starting', 'serving', 'draining', 'safe_to_exit'] as const) {
      const state = new AgentState();
      if (from !== 'starting') state.transition('serving', 'x');
      if (from === 'draining' || from === 'safe_to_exit') state.transition('draining', 'x');
      if (from === 'safe_to_exit') state.transition('safe_to_exit', 'x');
      expect(state.state).toBe(from);
      expect(state.transition('stopping', 'closing')).toBe(true);
      for (const to of ['serving', 'draining', 'safe_to_exit'] as const) expect(state.transition(to, 'x')).toBe(false);
    }
  });

  it('whenState resolves on the change event, at once when already there, false on abort', async () => {
    const state = new AgentState();
    state.transition('serving', 'x');
    await expect(state.whenState('serving')).resolves.toBe(true);
    const waiting = state.whenState('safe_to_exit');
    state.transition('draining', 'x');
    state.transition('safe_to_exit', 'x');
    await expect(waiting).resolves.toBe(true);
    const controller = new AbortController();
    const never = state.whenState('serving', controller.signal);
    controller.abort();
    await expect(never).resolves.toBe(false);
    expect(state.listenerCount('change')).toBe(0);
  });
});
