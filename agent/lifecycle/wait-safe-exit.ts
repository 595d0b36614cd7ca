/**
 * `shuffle-agent wait-safe-exit`: the preStop helper. Requests a drain (`POST /v1/drain`), then
 * waits with the agent's long-poll (`GET /v1/status?wait=safe_to_exit`) until the agent is safe to
 * exit or the timeout passes. No busy polling: one request waits on the agent's state-change
 * events; a refused connection (agent restarting) is retried after a short pause.
 */
import { sleep } from '../util/backoff.js';
import { describeError } from '../util/errors.js';
import { timeoutSignal } from '../util/abort.js';
export interface WaitSafeExitOptions {
  url: string;
  timeoutMs: number;
  drain: boolean;
  /** Progress lines (to stderr in the CLI). */
  log?: (line: string) => void;
  /** Pause before retrying a refused connection. */
  retryMs?: number;
}

/** True once the agent reported `safe_to_exit`; false when the timeout passed first. */
export async function waitSafeExit(options: WaitSafeExitOptions): Promise<boolean> {
  const deadline = Date.now() + options.timeoutMs;
  const log = options.log ?? (() => undefined);
  const retryMs = options.retryMs ?? 250;
  let drainRequested = !options.drain;
  let lastError = '';
  while (true) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      if (!drainRequested) {
        const until = timeoutSignal(left);
        const res = await fetch(`${options.url}/v1/drain`, { method: 'POST', signal: until.signal }).finally(() => until.dispose());
        await res.text();
        if (res.status !== 200 && res.status !== 202) throw new Error(`POST /v1/drain: HTTP ${res.status}`);
        drainRequested = true;
        log('drain requested');
      }
      const waitLeft = deadline - Date.now();
      if (waitLeft <= 0) break;
      // The server answers by itself when its wait ends; the client-side timeout is a backstop.
      const seconds = Math.min(3600, waitLeft / 1000);
      const until = timeoutSignal(waitLeft + 5_000);
      let res: Response;
      let body: { state?: string; pendingOutputs?: number };
      try {
        res = await fetch(`${options.url}/v1/status?wait=safe_to_exit&timeout=${seconds.toFixed(3)}`, { signal: until.signal });
        body = (await res.json().catch(() => ({}))) as { state?: string; pendingOutputs?: number };
      } finally {
        until.dispose();
      }
      if (res.status === 200 && body.state === 'safe_to_exit') {
        log('agent is safe to exit');
        return true;
      }
      if (res.status !== 503) throw new Error(`GET /v1/status: HTTP ${res.status}`);
      lastError = `state ${body.state ?? '?'}, ${body.pendingOutputs ?? '?'} outputs pending`;
    } catch (err) {
      const message = describeError(err);
      if (message !== lastError) log(`agent not reachable yet: ${message}`);
      lastError = message;
      await sleep(Math.min(retryMs, Math.max(0, deadline - Date.now())));
    }
  }
  log(`timed out: ${lastError}`);
  return false;
}
