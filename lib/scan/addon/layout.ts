// What TypeScript and the C++ core share byte for byte. The addon reports its own values
// (`layout` in native/binding.cc) and the loader refuses an addon whose values differ, so a
// stale or foreign build fails loudly at load instead of misreading records.

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
