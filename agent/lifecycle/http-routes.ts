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

export function registerLifecycleRoutes(http: RouteTarget, lifecycle: LifecycleControl, statusDocument: () => Record<string, unknown>): void {
  http.route('POST', '/v1/drain', (req) => {
    const snapshot = lifecycle.requestDrain('http', req.query.get('reason') ?? 'POST /v1/drain');
    return { status: snapshot.state === 'safe_to_exit' ? 200 : 202, body: statusDocument() };
  });

  http.route('GET', '/v1/status', async (req): Promise<HttpResponse> => {
    const wait = req.query.get('wait');
    if (wait === null) return { status: 200, body: statusDocument() };
    if (!(AGENT_STATES as readonly string[]).includes(wait)) {
      return { status: 400, body: { error: `wait must be one of ${AGENT_STATES.join(', ')}, got ${JSON.stringify(wait)}` } };
    }
    const rawTimeout = req.query.get('timeout');
    const timeout = rawTimeout === null ? DEFAULT_WAIT_SECONDS : Number(rawTimeout);
    if (rawTimeout?.trim() === '' || !Number.isFinite(timeout) || timeout < 0 || timeout > MAX_WAIT_SECONDS) {
      return { status: 400, body: { error: `timeout must be seconds between 0 and ${MAX_WAIT_SECONDS}, got ${JSON.stringify(rawTimeout)}` } };
    }
    const drain = req.query.get('drain');
    if (drain !== null && drain !== 'false' && drain !== '0') lifecycle.requestDrain('http', 'GET /v1/status?drain=true');
    const until = timeoutSignal(timeout * 1000, req.signal);
    let reached: boolean;
    try {
      reached = await lifecycle.waitForState(wait as AgentStateName, until.signal);
    } finally {
      until.dispose();
    }
    return { status: reached ? 200 : 503, body: { ...statusDocument(), waitedFor: wait, timedOut: !reached } };
  });
}
