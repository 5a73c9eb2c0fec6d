// `scan-backends doctor`: the pre-flight check an operator runs before `watch`. Each line is
// ok, warn or fail with what to do about it; nothing here sends a packet except the Redis
// PING to the URL the operator named.
import { loadBinding } from '../scan/addon/load.js';
import { configSearchPath, DEFAULT_REDIS_TTL_SECONDS, redactUrl, redisUrlOption } from '../common/options.js';
import { configCandidates } from '../resolver/config-file.js';
import { processCandidates } from '../resolver/process.js';
import { describeRedisError, REDIS_TIMEOUT_MS } from '../redis/connection.js';
import { RedisRegistry } from '../redis/registry.js';
import { fdLimit } from '../scan/job.js';
import { defaultConcurrency } from '../scan/engines/index.js';
import { localSubnetTargets } from '../scan/targets/local-subnets.js';
import { terminalSafe } from '../common/peer-text.js';
import { EXIT, UsageError } from './exit-codes.js';
import { FILE_FLAG, formatFlag, parseFlags, parseFormat } from './flags.js';

export const DOCTOR_USAGE = `Usage: scan-backends doctor [options]

Checks what watch and resolve will rely on, one line each (ok, warn or fail, with the fix):
the native addon, the open-file limit and the scan concurrency it allows, the config file
(every bad line by number), running coordinators and their --rpc lists, Redis, and the local
subnets a scan would choose. Sends nothing on the network but a Redis PING.

Options:
      --config FILE    the config file to check (default: the search path resolve uses)
      --redis URL      the Redis to check (default $SCAN_BACKENDS_REDIS)
      --format F       text | json (default: text on a terminal, else json)

Exit: 0 no failure, 1 something failed, 2 usage error.
`;

export const DOCTOR_FLAGS = {
  config: FILE_FLAG,
  redis: { type: 'string' },
  format: formatFlag(['text', 'json']),
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export interface Finding {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  fix?: string;
}

/** Below this many descriptors a /24 scan with probes runs in several windows. */
const COMFORTABLE_FD_LIMIT = 4096;

function addonFindings(): Finding[] {
  const findings: Finding[] = [];
  const load = loadBinding();
  findings.push(
    load.binding
      ? { check: 'addon', status: 'ok', detail: 'native addon loaded: scans use the native engine' }
      : {
          check: 'addon',
          status: 'warn',
          detail: `native addon not loaded (${load.error.message.split('\n')[0]}); scans fall back to the slower JS engine, and systemd Type=notify cannot be used`,
          fix: 'install a C++ toolchain and run "npm rebuild scan-backends" (or "npm run build:native" in a checkout)',
        },
  );
  return findings;
}

function fdLimitFindings(): Finding[] {
  const findings: Finding[] = [];
  const limit = fdLimit();
  const concurrency = defaultConcurrency(limit);
  findings.push(
    limit !== null && limit < COMFORTABLE_FD_LIMIT
      ? {
          check: 'fd limit',
          status: 'warn',
          detail: `RLIMIT_NOFILE ${limit}: a scan keeps ${concurrency} connects in flight`,
          fix: `raise it: "ulimit -n 65536", or LimitNOFILE=65536 in the systemd unit`,
        }
      : {
          check: 'fd limit',
          status: 'ok',
          detail: `RLIMIT_NOFILE ${limit ?? 'unknown'}: ${concurrency} connects in flight`,
        },
  );
  return findings;
}

async function configFindings(configPath: string | undefined): Promise<Finding[]> {
  const findings: Finding[] = [];
  try {
    const config = await configCandidates(configPath, false);
    if (!config) {
      findings.push({
        check: 'config',
        status: 'warn',
        detail: `no config file (looked for ${configSearchPath(undefined).join(', ')})`,
        fix: 'write one host:port a line to one of those paths, or rely on the coordinator, scan and Redis sources',
      });
    } else if (config.warnings.length > 0) {
      findings.push({
        check: 'config',
        status: 'fail',
        detail: `${config.file}: ${config.warnings.length} bad line(s): ${config.warnings.join('; ')}`,
        fix: 'fix those lines: host, host:port or [v6]:port, or "rpc-version X.Y.Z"',
      });
    } else {
      const version = config.rpcVersion ? `, rpc-version ${config.rpcVersion}` : '';
      findings.push({
        check: 'config',
        status: 'ok',
        detail: `${config.file}: ${config.candidates.length} backend(s)${version}`,
      });
    }
  } catch (error) {
    findings.push({
      check: 'config',
      status: 'fail',
      detail: (error as Error).message,
      fix: 'point --config or $SCAN_BACKENDS_CONFIG at a readable regular file',
    });
  }
  return findings;
}

async function coordinatorFindings(): Promise<Finding[]> {
  const findings: Finding[] = [];
  try {
    const found = await processCandidates();
    const byPid = new Map<number, string[]>();
    for (const c of found.candidates) {
      byPid.set(c.coordinator.pid, [...(byPid.get(c.coordinator.pid) ?? []), `${c.host}:${c.port}`]);
    }
    const lists = [...byPid].map(([pid, rpc]) => `pid ${pid} --rpc ${rpc.join(',')}`);
    findings.push({
      check: 'coordinators',
      status: 'ok',
      detail: `${found.message}${lists.length ? `: ${lists.join('; ')}` : ''}`,
    });
    for (const skipped of found.skipped) {
      findings.push({
        check: 'coordinators',
        status: 'warn',
        detail: skipped,
        fix: 'run watch as that user, or pass --trust-all-users',
      });
    }
  } catch (error) {
    findings.push({
      check: 'coordinators',
      status: 'warn',
      detail: `cannot list processes: ${(error as Error).message}`,
    });
  }
  return findings;
}

async function redisFindings(redisUrl: string | undefined): Promise<Finding[]> {
  const findings: Finding[] = [];
  if (redisUrl === undefined) {
    findings.push({ check: 'redis', status: 'ok', detail: 'not configured (--redis or $SCAN_BACKENDS_REDIS)' });
  } else {
    try {
      const registry = await RedisRegistry.connect({ url: redisUrl, ttlSeconds: DEFAULT_REDIS_TTL_SECONDS });
      const { entries } = await registry.entries().finally(() => registry.close());
      findings.push({
        check: 'redis',
        status: 'ok',
        detail: `${registry.url}: ${entries.length} registered backend(s)`,
      });
    } catch (error) {
      findings.push({
        check: 'redis',
        status: 'fail',
        detail: describeRedisError(error, redisUrl, REDIS_TIMEOUT_MS),
        fix: `start Redis at ${redactUrl(redisUrl)} or correct the URL (password in the URL: redis://:PASSWORD@host:port)`,
      });
    }
  }
  return findings;
}

function subnetFindings(): Finding[] {
  const findings: Finding[] = [];
  const subnets = localSubnetTargets();
  findings.push(
    subnets.cidrs.length > 0
      ? { check: 'subnets', status: 'ok', detail: `a scan without --subnet would scan ${subnets.cidrs.join(', ')}` }
      : {
          check: 'subnets',
          status: 'warn',
          detail: `no local private subnet to scan${subnets.notes.length ? ` (${subnets.notes.join('; ')})` : ''}`,
          fix: 'name what to scan with --subnet, or use the config and coordinator sources',
        },
  );
  return findings;
}

/** Every check in turn, one at a time (the order of the report). */
async function diagnose(configPath: string | undefined, redisUrl: string | undefined): Promise<Finding[]> {
  return [
    ...addonFindings(),
    ...fdLimitFindings(),
    ...(await configFindings(configPath)),
    ...(await coordinatorFindings()),
    ...(await redisFindings(redisUrl)),
    ...subnetFindings(),
  ];
}

export async function runDoctorCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags({ args: argv, allowPositionals: false, options: { ...DOCTOR_FLAGS } });
  if (values.help) {
    process.stdout.write(DOCTOR_USAGE);
    return 0;
  }
  const format = parseFormat(values.format, DOCTOR_FLAGS.format.choices, 'json');
  const redisUrl = values.redis ?? redisUrlOption(undefined);
  if (redisUrl !== undefined && !/^rediss?:\/\/\S+$/.test(redisUrl)) {
    throw new UsageError(`--redis: expected redis://host:port, got "${redactUrl(redisUrl)}"`);
  }
  const findings = await diagnose(values.config, redisUrl);
  const failed = findings.some((f) => f.status === 'fail');
  if (format === 'json') process.stdout.write(`${JSON.stringify({ schema: 1, ok: !failed, findings })}\n`);
  else {
    for (const f of findings) {
      process.stdout.write(terminalSafe(`${f.status.padEnd(4)} ${f.check}: ${f.detail}`) + '\n');
      if (f.fix) process.stdout.write(terminalSafe(`     fix: ${f.fix}`) + '\n');
    }
  }
  return failed ? EXIT.none : 0;
}
