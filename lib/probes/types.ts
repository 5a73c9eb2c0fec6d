// What probes report. Both engines produce ProbeSteps of this one shape; verdict.ts alone
// turns them into a service, a health and a reason.

import type { ProbeName } from '../common/options.js';

export { PROBE_NAMES, type ProbeName } from '../common/options.js';

export type ServiceName = 'ggml-rpc' | 'grpc' | 'ollama' | 'llama-server' | 'openai-compatible' | 'unknown';
export type Health = 'serving' | 'not-serving' | 'busy' | 'incompatible' | 'unknown';

/** Every step outcome, in the order of SB_PROBE_OUTCOME_MAP (the loader checks the addon's). */
export const STEP_OUTCOMES = [
  'recognized', // answered in this protocol; details are filled
  'not-recognized', // answered, or closed, but not in this protocol
  'silent', // connected and asked; no byte before the deadline
  'stalled', // some bytes, then none before the deadline
  'protocol-error', // spoke the protocol, then broke it
  'connect-failed', // a connection the probe needed was not made
] as const;
export type StepOutcome = (typeof STEP_OUTCOMES)[number];

export interface DeviceMemory {
  index: number;
  freeBytes: number;
  totalBytes: number;
}

export interface HttpFingerprint {
  product: 'ollama' | 'llama-server' | 'vllm' | 'openai-compatible';
  version?: string;
  /** The status of the health-bearing request (llama-server's /health, others' main call). */
  status: number;
  /** What the server said about itself when it is not ready ("Loading model"). */
  message?: string;
  models?: string[];
}

export interface ProbeStep {
  kind: ProbeName;
  outcome: StepOutcome;
  detail: string;
  elapsedMs: number;
  /**
   * Bytes the peer sent during the step, over all its connections. Bytes in a step that did
   * not recognize them are another protocol's: the verdict weighs them even when a later
   * step stays silent.
   */
  received?: number;
  // ggml-rpc
  version?: [number, number, number];
  legacyHello?: boolean;
  devices?: DeviceMemory[];
  // gRPC
  httpStatus?: number;
  grpcStatus?: number;
  servingStatus?: number;
  grpcMessage?: string;
  // HTTP
  http?: HttpFingerprint;
}

export interface RpcDetails {
  /** "major.minor.patch" from HELLO. */
  protocol: string;
  /** Whether `client` can use it; judged only against an explicit client version. */
  compatible?: boolean;
  /** The client version compatibility was judged against (rpcVersion), when one was given. */
  client?: string;
  /** The clients that can use it, as a semver range: ">=5.1.0 <6.0.0". */
  usableBy: string;
  devices: DeviceMemory[];
  /** Answered the 1.x-3.x empty HELLO rather than the 24-byte one. */
  legacyHello: boolean;
}

export interface GrpcDetails {
  status: 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNKNOWN' | 'UNIMPLEMENTED' | 'ERROR';
  /** The service name asked about; "" is the server as a whole. */
  service: string;
  /** The grpc-status code of the call (0 OK, 5 NOT_FOUND, 12 UNIMPLEMENTED…). */
  code: number;
  message?: string;
}

export interface ProbeVerdict {
  service: ServiceName;
  health: Health;
  /**
   * The service and health are a guess, not a proof: a port that accepted the connection and
   * stayed silent may be a ggml-rpc server busy with another client, or another service.
   */
  guess?: true;
  /** A short sentence a person can act on. */
  reason: string;
  rpc?: RpcDetails;
  grpc?: GrpcDetails;
  http?: HttpFingerprint;
}
