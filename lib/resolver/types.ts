// The resolver's result: the live backends, each with where it came from, and what every
// source did.
import type { Health, RpcDetails, ServiceName } from '../probes/types.js';
import type { ScanTiming, SourceName } from '../common/options.js';

export { SOURCE_NAMES, type SourceName } from '../common/options.js';

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
  /** The scan source: host:port pairs it connected to. */
  scanned?: number;
  /** The scan source: the connect timing its scan ran with and ended at. */
  timing?: ScanTiming;
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
  /**
   * How it was verified: 'hello' it answered HELLO now; 'held' a running coordinator holds a
   * connection to it (not connected to); 'coordinator' silent or its accept queue full, and a
   * running coordinator names it; 'registry' the same, and the registry saw it answer HELLO
   * within its TTL.
   */
  evidence?: 'hello' | 'held' | 'coordinator' | 'registry';
  rttMs?: number;
  service?: ServiceName;
  health?: Health;
  /** Kept unverified under acceptSilent: a silent port nothing vouches for. */
  guess?: true;
  /** Why it was kept, in a sentence. */
  reason?: string;
  rpc?: RpcDetails;
  /** Found by DNS-SD: the instance that announced it, its service type, the interface it came on. */
  dnsSd?: DnsSdProvenance;
}

export interface DnsSdProvenance {
  instance: string;
  type: string;
  interface: string;
  /** The instance's TXT pairs (protocol, devices, memory…), as announced: a claim, not a proof. */
  txt: Record<string, string>;
}

export interface Resolution {
  backends: Backend[];
  /**
   * How ggml-rpc versions were judged: against the client given (`rpcVersion`), or, without
   * one, the group of servers one client can use together (the rest are dropped with a warning).
   */
  compatibility?: { client?: string; usableBy?: string; rule: string };
  sources: SourceReport[];
  /** Things a person should know: more than 16 backends, a Redis write that failed. */
  warnings: string[];
}
