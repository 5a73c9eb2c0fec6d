// Drives a byte-level probe session over real sockets for the JS engine: the twin of the
// native scan worker's probe phase. A session is fed bytes and asked for bytes; the driver
// owns the socket, the deadline and the reconnects the session asks for.
import { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

import { connectTcp, type Target } from './connect.js';
import { earlyError } from './held-socket.js';
import type { ProbeStep, StepOutcome } from './types.js';

export type SessionAction = 'continue' | 'done' | 'reconnect';

/** What a peer may send during one probe step (the twin of kProbeReadBudget in probe.hh). */
export const PROBE_READ_BUDGET = 64 * 1024;
/** What may wait unsent for a peer that does not read (each SETTINGS or PING asks for an ACK). */
export const PROBE_WRITE_BACKLOG = 16 * 1024;
/** A probe's first-byte wait before its session may nudge: a quarter of the timeout, at most this. */
const MAX_QUIET_MS = 500;

export function quietMs(timeoutMs: number): number {
  return Math.min(timeoutMs / 4, MAX_QUIET_MS);
}

export interface ProbeSession {
  onConnected(): Buffer;
  onData(chunk: Buffer): { action: SessionAction; out?: Buffer };
  onClosed(reset: boolean): SessionAction;
  onTimeout(): void;
  /** The peer sent nothing for the quiet interval: bytes that may make a waiting peer speak. */
  onQuiet?(): Buffer | undefined;
  /** A request is unanswered: close with RST, never FIN (a ggml-rpc server would die). */
  requestPending(): boolean;
  readonly step: ProbeStep;
}

export type { Target } from './connect.js';

/** Connects for a probe, resolving with the held socket or why not ('timeout', an errno name). */
export async function connectSocket(target: Target, timeoutMs: number): Promise<Socket | string> {
  const attempt = await connectTcp({ Socket }, target, timeoutMs, true);
  return attempt.socket ?? attempt.outcome;
}

/**
 * Runs `session` to its end within `timeoutMs`, on `socket` when given (already connected)
 * or on a new connection.
 */
export async function driveSession(
  session: ProbeSession,
  target: Target,
  timeoutMs: number,
  socket?: Socket,
  signal?: AbortSignal,
): Promise<ProbeStep> {
  const started = performance.now();
  const deadline = started + timeoutMs;
  session.step.received = 0;
  const finish = (outcome?: StepOutcome, detail?: string): ProbeStep => {
    if (outcome) {
      session.step.outcome = outcome;
      session.step.detail = detail ?? '';
    }
    session.step.elapsedMs = performance.now() - started;
    return session.step;
  };

  let current: Socket | undefined = socket;
  for (;;) {
    if (signal?.aborted) {
      current?.resetAndDestroy();
      return finish('connect-failed', 'aborted');
    }
    if (!current) {
      const left = deadline - performance.now();
      const made = left > 0 ? await connectSocket(target, left) : 'timeout';
      if (typeof made === 'string') {
        return finish(
          'connect-failed',
          made === 'timeout'
            ? 'a new connection for the probe did not complete in time'
            : `a new connection for the probe failed: ${made}`,
        );
      }
      current = made;
    }
    const action = await runConnection(session, current, deadline, signal);
    if (action !== 'reconnect') return finish();
    current = undefined;
  }
}

/** One connection's worth of a session; resolves when the session ends or asks to reconnect. */
function runConnection(
  session: ProbeSession,
  socket: Socket,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<SessionAction> {
  return new Promise((resolve) => {
    let settled = false;
    let read = 0;
    const onAbort = () => {
      session.onTimeout();
      settle('done');
    };
    const end = (outcome: StepOutcome, detail: string) => {
      session.step.outcome = outcome;
      session.step.detail = detail;
      settle('done');
    };
    const settle = (action: SessionAction) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(quiet);
      signal?.removeEventListener('abort', onAbort);
      socket.removeAllListeners();
      socket.on('error', () => {}); // late errors after we let go
      if (session.requestPending()) socket.resetAndDestroy();
      else socket.destroy();
      resolve(action);
    };
    const send = (out: Buffer | undefined) => {
      if (!out || out.length === 0 || socket.destroyed) return;
      if (socket.writableLength + out.length > PROBE_WRITE_BACKLOG) {
        end(
          'protocol-error',
          `does not read what the probe sends (${socket.writableLength + out.length} bytes queued)`,
        );
        return;
      }
      socket.write(out);
    };
    const timer = setTimeout(
      () => {
        session.onTimeout();
        settle('done');
      },
      Math.max(0, deadline - performance.now()),
    );
    const quiet = setTimeout(
      () => {
        if (read === 0) send(session.onQuiet?.());
      },
      quietMs(Math.max(0, deadline - performance.now())),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('data', (chunk: Buffer) => {
      if (settled) return;
      read += chunk.length;
      session.step.received = (session.step.received ?? 0) + chunk.length;
      if (read > PROBE_READ_BUDGET) {
        end('protocol-error', `sent more than ${PROBE_READ_BUDGET} bytes, a probe's read budget`);
        return;
      }
      const { action, out } = session.onData(chunk);
      send(out);
      if (action !== 'continue') settle(action);
    });
    socket.on('end', () => settle(session.onClosed(false)));
    socket.on('error', (error: NodeJS.ErrnoException) => settle(session.onClosed(error.code === 'ECONNRESET')));
    socket.on('close', () => settle(session.onClosed(false)));
    const early = earlyError(socket);
    if (socket.destroyed || early !== undefined) {
      settle(session.onClosed(early === 'ECONNRESET'));
      return;
    }
    socket.write(session.onConnected());
  });
}
