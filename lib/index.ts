export { scan, scanAll, probe, selectEngine, sortResults, ScanJob } from './scan/job.js';
export type { ScanOptions, ScanResult, ScanReport, EngineSelection, PollerBackend, ProbeOptions } from './scan/job.js';
export type {
  ProbeName,
  ServiceName,
  Health,
  RpcDetails,
  GrpcDetails,
  HttpFingerprint,
  DeviceMemory,
} from './probes/types.js';
export type { ProbeOption } from './probes/plan.js';
export { NEWEST_RPC_PROTOCOL, rpcCompatible } from './probes/verdict.js';
export {
  resolveTargets,
  parsePorts,
  chooseLocalSubnets,
  DEFAULT_PORT,
  LARGE_JOB_PAIRS,
  MAX_JOB_PAIRS,
} from './scan/targets/grammar.js';
export type { Endpoint, TargetOptions, LookupFn, LocalSubnet, LocalSubnetChoice } from './scan/targets/grammar.js';
export type { EngineChoice, EngineName, PortState } from './scan/engines/index.js';
export {
  ScanBackendsError,
  InvalidTargetError,
  InvalidOptionError,
  NativeUnavailableError,
  NativeScanError,
  ScanAbortedError,
  SourceUnavailableError,
} from './common/errors.js';
export {
  resolveBackends,
  MAX_COORDINATOR_BACKENDS,
  parseConfig,
  parseRpcList,
  SOURCE_NAMES,
} from './resolver/index.js';
export type { ResolveOptions } from './resolver/index.js';
export type { Backend, Candidate, Dropped, Resolution, SourceName, SourceReport } from './resolver/types.js';
export { parseHostPort, formatHostPort } from './common/host-port.js';
export { watchBackends, Watcher, WATCH_DEFAULTS } from './watch/watcher.js';
export type { WatchOptions, WatchLog } from './watch/watcher.js';
export type {
  WatchEvent,
  WatchEventType,
  WatchedBackend,
  WatchSnapshot,
  WatchState,
  FieldChange,
  CheckKind,
  CheckRecord,
} from './watch/types.js';
// What the CLI uses, public so that lib/cli/ needs nothing below this file (test/unit/cli-imports.test.ts).
export { PROBE_NAMES } from './probes/types.js';
export { localSubnetTargets } from './scan/targets/grammar.js';
