/**
 * The agent's lifecycle as an explicit transition table:
 * `starting -> serving -> draining -> safe_to_exit`, back to `draining` when new outputs are
 * committed while `safe_to_exit`, and `stopping` once the process closes. Refused transitions are logged and reported, never thrown.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

export const AGENT_STATES = ['starting', 'serving', 'draining', 'safe_to_exit', 'stopping'] as const;
export type AgentStateName = (typeof AGENT_STATES)[number];

/**
 * Allowed moves. `starting -> draining`: a termination notice during the initial scan. There is
 * no way back to `serving`: once told the machine goes away, the agent keeps draining.
 * `stopping` (from anywhere, for good): the process is closing after SIGTERM's drain, so that the
 * gRPC status stream can say so before the server goes away.
 */
export const TRANSITIONS: Readonly<Record<AgentStateName, readonly AgentStateName[]>> = {
  starting: ['serving', 'draining', 'stopping'],
  serving: ['draining', 'stopping'],
  draining: ['safe_to_exit', 'stopping'],
  safe_to_exit: ['draining', 'stopping'],
  stopping: [],
};

export interface StateChange {
  from: AgentStateName;
  to: AgentStateName;
  reason: string;
  at: number;
}

export class AgentState extends EventEmitter<{ change: [StateChange] }> {
  private current: AgentStateName = 'starting';
  private since: number;

  constructor(
    private readonly logger?: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.since = now();
  }

  get state(): AgentStateName {
    return this.current;
  }

  get enteredAt(): number {
    return this.since;
  }

  /** Move to `to`; returns false (and logs) when the table does not allow it. */
  transition(to: AgentStateName, reason: string): boolean {
    const from = this.current;
    if (from === to) return true;
    if (!TRANSITIONS[from].includes(to)) {
      this.logger?.warn({ from, to, reason }, 'refused state transition');
      return false;
    }
    this.current = to;
    this.since = this.now();
    this.logger?.info({ from, to, reason }, 'state changed');
    this.emit('change', { from, to, reason, at: this.since });
    return true;
  }

  /**
   * Resolves true as soon as the state is `target` (at once if it already is), false when
   * `signal` aborts first. Driven by change events: no polling.
   */
  whenState(target: AgentStateName, signal?: AbortSignal): Promise<boolean> {
    if (this.current === target) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onChange = (change: StateChange): void => {
        if (change.to !== target) return;
        cleanup();
        resolve(true);
      };
      const onAbort = (): void => {
        cleanup();
        resolve(false);
      };
      const cleanup = (): void => {
        this.off('change', onChange);
        signal?.removeEventListener('abort', onAbort);
      };
      this.on('change', onChange);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
