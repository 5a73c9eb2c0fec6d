export { scan, scanAll, probe, sortResults, ScanJob } from './scan/job.js';
export type { ScanResult, ScanReport } from './scan/job.js';
export { selectEngine, type EngineSelection } from './scan/engines/choose.js';
export type {
  ScanOptions,
  ScanSettings,
  WatchSettings,
  ProbeOptions,
  TargetOptions,
  ResolveOptions,
  EngineChoice,
  EngineName,
  Poller,
  PollerBackend,
  ProbeName,
  ProbeOption,
  SourceName,
  ScanTiming,
  Timing,
  TimingOptions,
} from './common/options.js';
export { POLLERS, PROBE_NAMES, TIMINGS } from './common/options.js';
export type { LookupFn } from './common/addresses.js';
export type { ServiceName, Health, RpcDetails, GrpcDetails, HttpFingerprint, DeviceMemory } from './probes/types.js';
export { NEWEST_RPC_PROTOCOL, rpcCompatible } from './probes/verdict.js';
export { resolveTargets, parsePorts, DEFAULT_PORT, LARGE_JOB_PAIRS, MAX_JOB_PAIRS } from './scan/targets/grammar.js';
export type { Endpoint } from './scan/targets/grammar.js';
export { chooseLocalSubnets, localSubnetTargets } from './scan/targets/local-subnets.js';
export type { LocalSubnet, LocalSubnetChoice } from './scan/targets/local-subnets.js';
export type { PortState } from './scan/engines/index.js';
export {
  ScanBackendsError,
  InvalidTargetError,
  InvalidOptionError,
  NativeUnavailableError,
  NativeScanError,
  ScanAbortedError,
  SourceUnavailableError,
  GgufError,
  ClaimTakenError,
} from './common/errors.js';
export {
  resolveBackends,
  checkBackend,
  CLOSED_REASON,
  MAX_COORDINATOR_BACKENDS,
  parseConfig,
  parseRpcList,
  SOURCE_NAMES,
} from './resolver/index.js';
export type { Backend, Candidate, DnsSdProvenance, Dropped, Resolution, SourceReport } from './resolver/types.js';
export { DEFAULT_SOURCES } from './common/options.js';
export {
  DnsSdBrowser,
  browseOnce,
  DEFAULT_SERVICE_TYPES,
  type BrowseOptions,
  type DnsSdCandidate,
} from './dns-sd/browser.js';
export { Announcer, type Announcement } from './dns-sd/announcer.js';
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
  CoordinatorEvent,
  CoordinatorEventType,
  CoordinatorDetails,
  CoordinatorState,
  CoordinatorStatus,
  FeedEvent,
  DroppedServer,
  HistorySpan,
  HistoryState,
  MemorySample,
  WatchHistory,
} from './watch/types.js';
export { Supervisor, superviseCoordinator, wholeUsableSet, commandLine, RPC_PLACEHOLDER } from './run/supervisor.js';
export type { Choice, Chooser, Claims, SupervisorOptions, SupervisorOutcome } from './run/supervisor.js';
export { RUN_DEFAULTS, GROW_POLICIES, type RunTuning, type GrowPolicy } from './common/options.js';
export type { EventEnvelope, EventPayload, RegistryChange } from './redis/events.js';
export {
  planFor,
  planModel,
  leftOutOf,
  readModelMemory,
  llamaCppAssignment,
  MAX_PLAN_DEVICES,
  MAX_PLAN_SERVERS,
} from './plan/index.js';
export type { CacheType, LeftOut, ModelMemory, PlannedDevice, PlanInput, PlanResult } from './plan/index.js';
export { CACHE_TYPES, DEFAULT_RESERVE_BYTES, parseSize, type PlanOptions } from './common/options.js';
export { CoordinatorClaims, MAX_CLAIMED_SERVERS } from './redis/claims.js';
export type { Claim, ClaimHolder, ClaimsLost } from './redis/claims.js';
