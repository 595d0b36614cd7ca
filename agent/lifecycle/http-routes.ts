/**
 * The lifecycle's HTTP endpoints:
 *
 * - `POST /v1/drain`: start a drain (idempotent). 202 with the status document, 200 when already
 *   `safe_to_exit`.
 * - `GET /v1/status`: the status document. With `wait=<state>` (e.g. `safe_to_exit`) it is a
 *   long-poll: it answers 200 as soon as the agent is in that state (at once if it is), or 503 with
 *   `"timedOut": true` once `timeout` seconds (default 30, at most 3600) have passed. It waits on
 *   state-change events, never by polling. `drain=true` also requests a drain first, so that an
 *   `httpGet` preStop hook (which can only GET) can start the drain and wait for it in one call.
 *
 * Who may do what: a drain cannot be undone, and the full document names every tenant's app,
 * local paths and errors. So `POST /v1/drain`, `drain=true` and the full document answer only
 * loopback peers (the agent's own pod); every other peer gets 403 for the first two and the open
 * document (state and counts, nothing per app) from `/v1/status`, long-poll included. At most
 * `MAX_WAITERS` long-polls wait at once (429 beyond), so waiting costs bounded memory.
 */
import { AGENT_STATES, type AgentStateName } from './agent-state.js';
import type { LifecycleControl } from './lifecycle.js';
import type { HttpHandler, HttpResponse } from '../observability/http-server.js';
import { timeoutSignal } from '../util/abort.js';

export interface RouteTarget {
  route(method: string, path: string, handler: HttpHandler): unknown;
}

export const DEFAULT_WAIT_SECONDS = 30;
export const MAX_WAIT_SECONDS = 3600;
/** Long-polls waiting at once. */
export const MAX_WAITERS = 64;

/** The two views of the status: `full` for loopback peers, `open` (no per-app detail) for anyone. */
export interface StatusDocuments {
  full: () => Record<string, unknown>;
  open: () => Record<string, unknown>;
}

const CONTROL_ONLY = { status: 403, body: { error: 'control requests are answered on loopback only (from the agent\'s own pod)' } };

export function registerLifecycleRoutes(http: RouteTarget, lifecycle: LifecycleControl, documents: StatusDocuments): void {
  const documentFor = (local: boolean): Record<string, unknown> => (local ? documents.full() : documents.open());
  let waiting = 0;

  http.route('POST', '/v1/drain', (req) => {
    if (!req.local) return CONTROL_ONLY;
    const snapshot = lifecycle.requestDrain('http', (req.query.get('reason') ?? 'POST /v1/drain').slice(0, 200));
    return { status: snapshot.state === 'safe_to_exit' ? 200 : 202, body: documents.full() };
  });

  http.route('GET', '/v1/status', async (req): Promise<HttpResponse> => {
    const wait = req.query.get('wait');
    const drain = req.query.get('drain');
    const drainRequested = drain !== null && drain !== 'false' && drain !== '0';
    if (drainRequested && !req.local) return CONTROL_ONLY;
    if (wait === null) return { status: 200, body: documentFor(req.local) };
    if (!(AGENT_STATES as readonly string[]).includes(wait)) {
      return { status: 400, body: { error: `wait must be one of ${AGENT_STATES.join(', ')}` } };
    }
    const rawTimeout = req.query.get('timeout');
    const timeout = rawTimeout === null ? DEFAULT_WAIT_SECONDS : Number(rawTimeout);
    if (rawTimeout?.trim() === '' || !Number.isFinite(timeout) || timeout < 0 || timeout > MAX_WAIT_SECONDS) {
      return { status: 400, body: { error: `timeout must be seconds between 0 and ${MAX_WAIT_SECONDS}` } };
    }
    if (waiting >= MAX_WAITERS) return { status: 429, body: { error: `more than ${MAX_WAITERS} status long-polls at once` } };
    if (drainRequested) lifecycle.requestDrain('http', 'GET /v1/status?drain=true');
    const until = timeoutSignal(timeout * 1000, req.signal);
    let reached: boolean;
    waiting++;
    try {
      reached = await lifecycle.waitForState(wait as AgentStateName, until.signal);
    } finally {
      waiting--;
      until.dispose();
    }
    return { status: reached ? 200 : 503, body: { ...documentFor(req.local), waitedFor: wait, timedOut: !reached } };
  });
}
