// What TypeScript and the C++ core share byte for byte, and the names they exchange. The addon
// reports its own values (`layout` in native/binding.cc, read from the core's tables) and the
// loader refuses an addon whose values differ, so a stale or foreign build fails loudly at load
// instead of misreading records. Names that live beside their TS users (step outcomes, poller
// names, ggml-rpc commands) are gathered by the loader (load.ts EXPECTED_LAYOUT).

/** A packed target (native/core/endpoint.hh kEndpointRecordSize). */
export const ENDPOINT_RECORD_SIZE = 24;
/** A result: u32 index, i32 error, f64 rtt (native/core/connect_scan.hh ConnectResult). */
export const RESULT_RECORD_SIZE = 16;
/** ConnectResult.error when nothing answered before the deadline (kTimedOut). */
export const TIMED_OUT = -1;
/** Probe plans, by their probes in order (ProbePlan in native/core/probe.hh). */
export const PROBE_PLANS: Readonly<Record<string, number>> = {
  '': 0,
  'ggml-rpc': 1,
  grpc: 2,
  'ggml-rpc,grpc': 3,
  'grpc,ggml-rpc': 4,
};
/** The probes the core itself runs (SB_PROBE_KIND_MAP in native/core/probe.hh); HTTP is TS's alone. */
export const ENGINE_PROBES = ['ggml-rpc', 'grpc'] as const;
/** The codes the core's errors carry (SB_STATUS_MAP in native/core/status.hh). */
export const NATIVE_STATUS_CODES = [
  'SB_OK',
  'SB_INVALID_ARGUMENT',
  'SB_INVALID_ENDPOINTS',
  'SB_POLLER_FAILED',
  'SB_THREAD_FAILED',
] as const;

/**
 * The timing an engine ended a scan with (the addon builds it with its last call; the JS twin
 * from lib/scan/engines/rtt.ts). srttMs and rttvarMs are null until a connect was answered.
 */
export interface EngineTiming {
  srttMs: number | null;
  rttvarMs: number | null;
  /** A first attempt's timeout at the end, ms. */
  timeoutMs: number;
  /** Attempts started again after a timeout. */
  retried: number;
}
