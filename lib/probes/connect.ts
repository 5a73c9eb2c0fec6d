// One TCP connect with a deadline, for the JS engine's scan and for the probes' own new
// connections alike. node:net is passed in (type-only import here), so the scan loads it
// only when the JS engine runs.
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

import { holdSocket } from './held-socket.js';

export interface Target {
  host: string;
  port: number;
  family: 4 | 6;
}

export interface ConnectAttempt {
  /** 'connected', 'timeout', 'aborted' or the errno name. */
  outcome: string;
  rttMs: number;
  /** The connected socket, when `keep` asked for it (held: errors caught until a probe takes it). */
  socket?: Socket;
}

/**
 * Who decides when a pending connect gives up: handed the moment the SYN left (on
 * performance.now()'s clock) and the call that gives up, it calls that when the time comes
 * (an adaptive scan's ConnectTimers).
 */
export type ConnectDeadline = (started: number, expire: () => void) => void;

/**
 * Connects to `target` within `timeout` ms, or until `timeout` gives up. A connection that is
 * not kept is closed with RST (no TIME_WAIT left behind, as the native engine does).
 * `inFlight` lets the caller settle every pending attempt at once (an abort settles them with
 * 'aborted').
 */
export function connectTcp(
  net: { Socket: typeof Socket },
  target: Target,
  timeout: number | ConnectDeadline,
  keep: boolean,
  inFlight: Set<(outcome: string) => void> = new Set(),
): Promise<ConnectAttempt> {
  return new Promise((resolve) => {
    const socket = new net.Socket();
    let started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const settle = (outcome: string) => {
      if (!inFlight.delete(settle)) return;
      clearTimeout(timer);
      const rttMs = performance.now() - started;
      if (outcome === 'connected' && keep) {
        resolve({ outcome, rttMs, socket: holdSocket(socket) });
        return;
      }
      if (outcome === 'connected') socket.resetAndDestroy();
      else socket.destroy();
      resolve({ outcome, rttMs });
    };
    inFlight.add(settle);
    socket.once('connect', () => settle('connected'));
    socket.once('error', (error: NodeJS.ErrnoException) => settle(error.code ?? 'UNKNOWN'));
    // libuv times in whole ms from a loop clock read before `started`, so a timer can fire
    // up to a ms early: wait out the rest, so a silent target has had its full timeout.
    const expire = (timeoutMs: number) => {
      const left = timeoutMs - (performance.now() - started);
      if (left > 0) {
        timer = setTimeout(expire, Math.ceil(left), timeoutMs);
        return;
      }
      giveUp();
    };
    // A timer that fires after a stalled loop may be ahead of answers already queued:
    // setImmediate runs after the poll phase, so those answers are read first.
    const giveUp = () => setImmediate(() => settle('timeout'));
    socket.connect({ host: target.host, port: target.port, family: target.family });
    // net issues the connect() syscall on the next tick; this tick runs right after it,
    // so the clock starts when the SYN really leaves, not when the socket was made.
    process.nextTick(() => {
      if (!inFlight.has(settle)) return;
      started = performance.now();
      if (typeof timeout === 'number') timer = setTimeout(expire, timeout, timeout);
      else timeout(started, giveUp);
    });
  });
}
