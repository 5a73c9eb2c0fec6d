export { scan, scanAll, selectEngine, sortResults, ScanJob } from './scan.js';
export type { ScanOptions, ScanResult, ScanReport, EngineSelection, PollerBackend } from './scan.js';
export {
  resolveTargets,
  parsePorts,
  chooseLocalSubnets,
  DEFAULT_PORT,
  LARGE_JOB_PAIRS,
  MAX_JOB_PAIRS,
} from './targets.js';
export type { Endpoint, TargetOptions, LookupFn, LocalSubnet, LocalSubnetChoice } from './targets.js';
export type { EngineChoice, EngineName, PortState } from './scanner/index.js';
export {
  ScanBackendsError,
  InvalidTargetError,
  InvalidOptionError,
  NativeUnavailableError,
  NativeScanError,
  ScanAbortedError,
} from './errors.js';
