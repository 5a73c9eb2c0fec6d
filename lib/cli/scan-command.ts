// `scan-backends scan`: parse flags, run the scan, print results, choose the exit code.

import type { ScanOptions } from '../common/options.js';
import { scan, sortResults, type ScanReport, type ScanResult } from '../scan/job.js';
import { localSubnetTargets } from '../scan/targets/local-subnets.js';
import { EXIT, UsageError } from './exit-codes.js';
import {
  ENGINE_FLAG,
  formatFlag,
  parseEngine,
  parseFlags,
  parseFormat,
  parseInteger,
  parseProbeFlags,
  parseTimingFlags,
  PORTS_FLAG,
  PROBE_FLAGS,
  TIMING_FLAGS,
} from './flags.js';
import { pairs, renderJson, renderNdjsonLine, renderTable, summarize, type OutputFormat } from './output.js';
import { startProgress } from './progress.js';

export const SCAN_USAGE = `Usage: scan-backends scan [targets...] [options]

Targets: addresses, hostnames, CIDR blocks (10.9.66.0/24), ranges (10.9.66.1-50,
10.9.66.1-10.9.67.20), comma lists, any mix. None: the /24 around each local private IPv4 address.

Options:
  -p, --ports P          ports: 50052, 50052,11434, 8000-8010 (default 50052)
      --timing T         adaptive (default): each connect waits as long as the round trips
                         measured so far say, between the two below; fixed: --timeout
      --min-rtt-timeout MS  adaptive timing's floor (default 30)
      --max-rtt-timeout MS  adaptive timing's ceiling (default 1000)
      --timeout MS       a fixed timeout per attempt (implies --timing fixed; with
                         --timing adaptive, the ceiling)
      --concurrency N    sockets in flight (default: what the fd limit allows, max 16384)
      --retries N        extra attempts for silent (filtered) targets (default: 1 adaptive,
                         only after a connect given up before the ceiling; 0 fixed)
      --rate N           new connects per second (default, and 0: unlimited)
      --deadline MS      stop the whole scan after MS
      --exclude T        leave these targets out (repeatable)
      --engine E         auto | native | js (default auto; env SCAN_BACKENDS_ENGINE)
      --threads N        native scan threads (default: 1, or one per core from 4096 targets)
      --format F         table | json | ndjson (default: table on a terminal, else ndjson)
      --open             print open ports only
      --probe            tell what answers on each open port (see "scan-backends probe --help")
      --service S        with --probe: auto, or probes in order: ggml-rpc,grpc,http (default auto)
      --grpc-service N   the service the gRPC health check asks about (default: the server)
      --probe-timeout MS each probe step's deadline (default 2000)
      --rpc-version V    the coordinator's ggml-rpc protocol: judge compatibility against it
                         (default $SCAN_BACKENDS_RPC_VERSION; without one, each server
                         reports the clients that can use it)
      --allow-large      allow more than 65,536 host:port pairs
      --allow-public     allow addresses outside private/loopback/link-local/CGNAT/ULA space

Exit: 0 at least one open, 1 none open, 2 usage error, 3 environment error, 130 interrupted.
`;

export interface ScanRunRequest {
  targets: string[];
  options: ScanOptions;
  format: OutputFormat;
  openOnly: boolean;
}

/** The flags of this command: its parser and shell completion read this one table. */
export const SCAN_FLAGS = {
  ports: PORTS_FLAG,
  ...TIMING_FLAGS,
  concurrency: { type: 'string' },
  retries: { type: 'string' },
  rate: { type: 'string' },
  deadline: { type: 'string' },
  exclude: { type: 'string', multiple: true },
  engine: ENGINE_FLAG,
  threads: { type: 'string' },
  format: formatFlag(['table', 'json', 'ndjson']),
  open: { type: 'boolean', default: false },
  'allow-large': { type: 'boolean', default: false },
  'allow-public': { type: 'boolean', default: false },
  probe: { type: 'boolean', default: false },
  ...PROBE_FLAGS,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export function parseScanArgs(argv: string[]): ScanRunRequest | 'help' {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: { ...SCAN_FLAGS },
  });
  if (values.help) return 'help';
  const probeFlagged = ['service', 'grpc-service', 'probe-timeout', 'rpc-version'].find(
    (flag) => values[flag as keyof typeof values] !== undefined,
  );
  if (probeFlagged && !values.probe) throw new UsageError(`--${probeFlagged} needs --probe`);
  const rate = values.rate;
  if (rate !== undefined && !/^[0-9]+(\.[0-9]+)?$/.test(rate)) {
    throw new UsageError(`--rate: expected a number >= 0, got "${rate}"`);
  }
  const options: ScanOptions = {
    ports: values.ports?.join(','),
    ...parseTimingFlags(values),
    concurrency: parseInteger('--concurrency', values.concurrency, 'concurrency'),
    retries: parseInteger('--retries', values.retries, 'retries'),
    rate: rate === undefined ? undefined : Number(rate),
    deadlineMs: parseInteger('--deadline', values.deadline, 'deadlineMs'),
    threads: parseInteger('--threads', values.threads, 'threads'),
    exclude: values.exclude,
    engine: parseEngine(values.engine),
    allowLarge: values['allow-large'],
    allowPublic: values['allow-public'],
    ...(values.probe ? parseProbeFlags(values) : {}),
  };
  const format = parseFormat(values.format, SCAN_FLAGS.format.choices, 'ndjson');
  return { targets: positionals, options, format: format as OutputFormat, openOnly: values.open };
}

/** The default targets, said out loud on stderr: a scan of the LAN should never be a surprise. */
export function defaultTargets(): string[] {
  const { cidrs, notes } = localSubnetTargets();
  for (const note of notes) process.stderr.write(`scan-backends: ${note}\n`);
  if (cidrs.length === 0) {
    throw new UsageError('no targets given and no local private IPv4 subnet found; name the targets to scan');
  }
  return cidrs;
}

/** Runs a scan and prints it; returns the exit code. `signal` aborts with what was found so far. */
export async function runScan(request: ScanRunRequest, signal: AbortSignal): Promise<number> {
  const targets = request.targets.length > 0 ? request.targets : defaultTargets();
  const job = scan(targets, { ...request.options, signal });
  if (job.fallbackReason) process.stderr.write(`scan-backends: using the js engine: ${job.fallbackReason}\n`);
  const started = performance.now();
  const results: ScanResult[] = [];
  const progress = startProgress(process.stderr, {
    total: () => job.targetCount,
    window: () => job.concurrency,
    retries: job.settings.retries,
  });
  const report = (): ScanReport => ({
    schema: 1,
    engine: job.engine,
    elapsedMs: Math.round(performance.now() - started),
    ...(job.timing && { timing: job.timing }),
    results: sortResults(request.openOnly ? results.filter((r) => r.state === 'open') : results),
  });
  let interrupted = false;
  try {
    for await (const result of job) {
      progress.tick(result.state === 'open');
      results.push(result);
      if (request.format === 'ndjson' && (!request.openOnly || result.state === 'open')) {
        process.stdout.write(renderNdjsonLine(result));
      }
    }
  } catch (error) {
    if (!signal.aborted) throw error;
    interrupted = true;
  } finally {
    progress.stop();
  }
  const final = report();
  // An interrupted scan says so in every format: JSON carries the flag, the summary counts
  // what was really scanned.
  if (request.format === 'json')
    process.stdout.write(renderJson(interrupted ? { ...final, interrupted: true } : final));
  const total = job.targetCount ?? results.length;
  if (request.format === 'table') {
    process.stdout.write(renderTable(final.results));
    process.stderr.write(`${summarize({ ...final, results }, total)}\n`);
  }
  if (interrupted) {
    const pending = total - results.length;
    process.stderr.write(
      `scan-backends: interrupted: ${results.length} of ${pairs(total)} scanned, ${pending} still pending\n`,
    );
    return EXIT.interrupted;
  }
  return results.some((r) => r.state === 'open') ? EXIT.found : EXIT.none;
}
