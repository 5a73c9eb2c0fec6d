// The resolver's result: the live backends, each with where it came from, and what every
// source did.
import type { Health, RpcDetails, ServiceName } from '../probes/types.js';

export type SourceName = 'process' | 'config' | 'scan' | 'redis';
export const SOURCE_NAMES: readonly SourceName[] = ['process', 'config', 'scan', 'redis'];

export interface Candidate {
  host: string;
  port: number;
  source: SourceName;
}

export interface Dropped {
  host: string;
  port: number;
  reason: string;
}

export interface SourceReport {
  name: SourceName;
  status: 'ok' | 'empty' | 'error' | 'skipped';
  /** Candidates the source named (before verification). */
  found: number;
  dropped: Dropped[];
  message?: string;
  /** Lines a config file could not use ("file:line: bad token …"). */
  warnings?: string[];
}

export interface Backend {
  host: string;
  port: number;
  /** Every source that named it, in chain order. */
  sources: SourceName[];
  verified: boolean;
  rttMs?: number;
  service?: ServiceName;
  health?: Health;
  rpc?: RpcDetails;
}

export interface Resolution {
  backends: Backend[];
  sources: SourceReport[];
  /** Things a person should know: more than 16 backends, a Redis write that failed. */
  warnings: string[];
}
