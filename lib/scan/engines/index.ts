// The Scanner interface both engines implement, and the rules they share: option defaults,
// and how a connect outcome becomes a port state.
import { readFileSync } from 'node:fs';

import type { ProbeStep } from '../../probes/types.js';
import type { TargetTable } from '../targets/table.js';

import type { EngineName, Timing } from '../../common/options.js';
import type { EngineTiming } from '../addon/layout.js';

export type { EngineTiming } from '../addon/layout.js';

export type { EngineChoice, EngineName } from '../../common/options.js';
export type PortState = 'open' | 'closed' | 'filtered' | 'unreachable' | 'error';

/**
 * What an engine saw for one endpoint: 'connected', 'timeout', or the errno name the
 * kernel gave (ECONNREFUSED, EHOSTUNREACH, …).
 */
export interface RawOutcome {
  index: number;
  outcome: string;
  rttMs: number;
  /** The probes the engine ran after connecting, when the endpoint had a plan. */
  steps?: ProbeStep[];
}

export interface EngineOptions {
  /** 'fixed': every attempt waits timeoutMs; 'adaptive': the estimator's, up to timeoutMs. */
  timing: Timing;
  /** Adaptive timing's floor, ms. */
  minRttTimeoutMs: number;
  /** Fixed timing's timeout; adaptive timing's ceiling. ms. */
  timeoutMs: number;
  concurrency: number;
  retries: number;
  /** New connects per second; 0 means unlimited. */
  rate: number;
  /** Scan threads (native engine only). */
  threads: number;
  /** Each probe step's deadline, ms. */
  probeTimeoutMs: number;
  /** The service name the gRPC health probe asks about ("" for the whole server). */
  grpcService: string;
}

export interface EngineRun {
  /** Stops the scan: no result is reported after it, and every socket is closed. */
  abort(): void;
  /** Resolves once every socket is closed, whether the scan ended or was aborted. */
  readonly finished: Promise<void>;
  /** The timing so far (the engine's last word once `finished`); undefined if it has none. */
  timing(): EngineTiming | undefined;
}

export interface Scanner {
  readonly name: EngineName;
  /**
   * Starts connecting; `onResults` gets batches of outcomes until `finished` resolves. Each
   * record's plan (a code from probes/plan.ts) names the probes to run once it connects.
   */
  start(targets: TargetTable, options: EngineOptions, onResults: (batch: RawOutcome[]) => void): EngineRun;
}

const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EHOSTDOWN', 'ENETDOWN', 'ENONET']);

/** The one rule, shared by both engines, that turns an outcome into a state. */
export function classifyOutcome(outcome: string): { state: PortState; error?: string } {
  if (outcome === 'connected') return { state: 'open' };
  // ETIMEDOUT: the kernel gave up on the SYN before our own deadline did.
  if (outcome === 'timeout' || outcome === 'ETIMEDOUT') return { state: 'filtered' };
  if (outcome === 'ECONNREFUSED') return { state: 'closed' };
  if (UNREACHABLE.has(outcome)) return { state: 'unreachable', error: outcome };
  return { state: 'error', error: outcome };
}

/** Highest default window: past it a /16 gains nothing and the kernel's queues suffer. */
export const MAX_DEFAULT_CONCURRENCY = 16_384;

/** The soft RLIMIT_NOFILE from /proc on Linux, or null where it cannot be read. */
export function procFdLimit(): number | null {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (!match) return null;
    return match[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(match[1]);
  } catch {
    return null;
  }
}

/**
 * As many sockets as the descriptor limit allows, less headroom for the rest of the
 * process (an eighth, at least 32), capped at 16,384. EMFILE still narrows it at run time.
 */
export function defaultConcurrency(fdLimit: number | null): number {
  const limit = fdLimit ?? 1024;
  const headroom = Math.max(32, Math.floor(limit / 8));
  return Math.max(1, Math.min(MAX_DEFAULT_CONCURRENCY, limit - headroom));
}
