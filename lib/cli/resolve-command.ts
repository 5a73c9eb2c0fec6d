// `scan-backends resolve`: the live RPC backends for a coordinator, and where each came from.
// `--format rpc` prints exactly what llama-server's --rpc takes.

import { formatHostPort } from '../common/host-port.js';
import { serviceType } from '../dns-sd/records.js';
import { terminalSafe } from '../common/peer-text.js';
import type { ResolveOptions, SourceName } from '../common/options.js';
import { resolveBackends, SOURCE_NAMES } from '../resolver/index.js';
import type { Backend, Resolution } from '../resolver/types.js';
import type { IncomingMessage } from 'node:http';

import { EnvironmentError, EXIT, UsageError } from './exit-codes.js';
import {
  DURATION_FLAG,
  ENGINE_FLAG,
  FILE_FLAG,
  formatFlag,
  parseDuration,
  parseEngine,
  parseFlags,
  parseFormat,
  parseInteger,
  parseTimingFlags,
  PORTS_FLAG,
  TIMING_FLAGS,
  tokenOption,
} from './flags.js';
import { alignTable, formatRtt } from './output.js';

export const RESOLVE_USAGE = `Usage: scan-backends resolve [options]

The live ggml-rpc backends for a coordinator, from a priority chain of sources:
  process  a running llama-server/llama-cli (or any process) started with --rpc
  config   rpc_backends.conf: one host[:port] a line (--config, $SCAN_BACKENDS_CONFIG,
           ./rpc_backends.conf, $XDG_CONFIG_HOME/scan-backends/, /etc/scan-backends/)
  scan     a network scan (--subnet, default the local private subnets; -p, default 50052)
  redis    a shared registry of verified backends (--redis URL or $SCAN_BACKENDS_REDIS)
  dns-sd   DNS-SD over multicast DNS: _ggml-rpc._tcp and _llama-rpc._tcp instances (only
           when named in --sources; \`scan-backends announce\` advertises an rpc-server)
Every candidate is connected to and asked HELLO before it is returned; the first source with
a live backend wins. Verified backends are written to Redis when a URL is given.

Options:
      --sources LIST     sources in order (default process,config,scan,redis; add dns-sd
                         by name, e.g. process,config,dns-sd,scan,redis)
      --merge            the union of every source, each backend listing its sources
      --no-verify        return candidates unchecked, marked verified: false
      --config FILE      the config file to read
      --strict           a bad config line is an error, not a warning
      --subnet T         what the scan source scans (scan target grammar)
  -p, --ports P          ports the scan source scans (default 50052)
      --dns-sd-wait D    how long the dns-sd source listens (default 1500ms; a watcher browses
                         continuously)
      --dns-sd-type T    a service type to browse instead of the defaults (repeatable)
      --redis URL        redis://host:port
      --redis-ttl S      seconds a recorded backend lives unless seen again (default 300)
      --redis-prefix P   key prefix (default scan-backends:)
      --require-redis    Redis down is an error (exit 3)
      --allow-public     connect to candidates outside private/loopback/link-local/CGNAT/ULA
                         space (a registry entry or config line naming 8.8.8.8 is dropped)
      --allow-link-local connect to link-local and cloud-metadata addresses (169.254.0.0/16,
                         fe80::/10, fd00:ec2::254), never candidates without it
      --accept-silent    keep a silent port that no coordinator or registry vouches for,
                         marked verified: false (it may be a busy ggml-rpc server or not)
      --trust-all-users  count coordinators run by any user (default: this user and root)
      --timing T         adaptive (default): connect timeouts from measured round trips,
                         between --min-rtt-timeout (default 30) and --max-rtt-timeout
                         (default 1000), a connect given up early tried once more; fixed:
                         --timeout per attempt
      --timeout MS       a fixed connect timeout (implies --timing fixed)
      --probe-timeout MS HELLO deadline (default 2000)
      --rpc-version V    the coordinator's ggml-rpc protocol: judge each server as llama.cpp
                         does ($SCAN_BACKENDS_RPC_VERSION, or "rpc-version X.Y.Z" in the
                         config file); without one, keep the servers one client can use
      --engine E         auto | native | js
      --from URL         answer from a running \`scan-backends serve\` (its live view, in
                         milliseconds) instead of resolving; the token from --token-file or
                         $SCAN_BACKENDS_TOKEN
      --token-file FILE  the serve instance's token
      --explain          say on stderr what each source did and why each candidate was kept or dropped
      --format F         table | json | ndjson | rpc (default: table on a terminal, else json)

  rpc=$(scan-backends resolve --format rpc) && llama-server --rpc "$rpc" ...

Exit: 0 found, 1 none, 2 usage error, 3 environment error, 130 interrupted.
`;

/** What llama-server's --rpc takes; nothing at all when nothing is live (never an empty list). */
export function renderRpcList(backends: readonly Backend[]): string {
  return backends.length === 0 ? '' : `${backends.map(formatHostPort).join(',')}\n`;
}

function renderTable(resolution: Resolution): string {
  if (resolution.backends.length === 0) return ''; // no bare header: stderr says why (whyNone)
  const rows = resolution.backends.map((b) => [
    formatHostPort(b),
    b.health ? `${b.health}${b.guess ? '?' : ''}` : b.verified ? 'verified' : 'unverified',
    b.rpc ? b.rpc.protocol : '',
    b.sources.join(','),
    b.rttMs === undefined ? '' : formatRtt(b.rttMs),
  ]);
  return alignTable(['BACKEND', 'HEALTH', 'PROTOCOL', 'SOURCES', 'RTT'], rows);
}

export function explain(resolution: Resolution): string {
  const lines: string[] = [];
  for (const s of resolution.sources) {
    const kept = resolution.backends.filter((b) => b.sources.includes(s.name));
    lines.push(`${s.name}: ${s.status}${s.found ? `, ${s.found} named` : ''}${s.message ? ` (${s.message})` : ''}`);
    for (const w of s.warnings ?? []) lines.push(`  warning ${w}`);
    for (const b of kept)
      lines.push(
        `  kept ${formatHostPort(b)}: ${b.verified ? `ggml-rpc ${b.rpc?.protocol ?? ''} ${b.health ?? ''}`.trim() : 'not verified'}`,
      );
    for (const d of s.dropped) lines.push(`  dropped ${formatHostPort(d)}: ${d.reason}`);
  }
  for (const w of resolution.warnings) lines.push(`warning: ${w}`);
  return `${lines.map(terminalSafe).join('\n')}\n`;
}

/**
 * Why a resolve found nothing, for stderr without --explain: a line per source with what it
 * named and dropped, the first reason, and where the rest are told.
 */
export function whyNone(resolution: Resolution): string {
  const lines = resolution.sources.map((s) => {
    const [first, ...rest] = s.dropped;
    let line = `  ${s.name}: ${s.status}, ${s.found} candidate${s.found === 1 ? '' : 's'}`;
    if (first) {
      const more = rest.length > 0 ? `; ${rest.length} more` : '';
      line += `, ${s.dropped.length} dropped (${formatHostPort(first)}: ${first.reason}${more})`;
    }
    return s.message ? `${line}: ${s.message}` : line;
  });
  const head =
    lines.length === 0 ? 'no live backend' : 'no live backend; each source (--explain tells every candidate):';
  return `${[`scan-backends: ${head}`, ...lines].map(terminalSafe).join('\n')}\n`;
}

/** The flags of this command: its parser and shell completion read this one table. */
export const RESOLVE_FLAGS = {
  sources: { type: 'string', list: SOURCE_NAMES },
  merge: { type: 'boolean', default: false },
  'no-verify': { type: 'boolean', default: false },
  config: FILE_FLAG,
  strict: { type: 'boolean', default: false },
  subnet: { type: 'string', multiple: true },
  ports: PORTS_FLAG,
  'dns-sd-wait': DURATION_FLAG,
  'dns-sd-type': { type: 'string', multiple: true },
  redis: { type: 'string' },
  'redis-ttl': { type: 'string' },
  'redis-prefix': { type: 'string' },
  'require-redis': { type: 'boolean', default: false },
  'allow-public': { type: 'boolean', default: false },
  'allow-link-local': { type: 'boolean', default: false },
  'accept-silent': { type: 'boolean', default: false },
  'trust-all-users': { type: 'boolean', default: false },
  ...TIMING_FLAGS,
  'probe-timeout': { type: 'string' },
  'rpc-version': { type: 'string' },
  engine: ENGINE_FLAG,
  explain: { type: 'boolean', default: false },
  format: formatFlag(['table', 'json', 'ndjson', 'rpc']),
  from: { type: 'string' },
  'token-file': FILE_FLAG,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Bytes of a serve instance's answer read at most: 256 backends are ~200 KiB. */
const FROM_BUDGET_BYTES = 8 * 1024 * 1024;
const FROM_TIMEOUT_MS = 5000;

/**
 * The live view of a running `serve`: its usable backends (those of its `rpc` list) as a resolution.
 * An instance that is not there, refuses the token or answers something else is an
 * environment error naming the URL.
 */
export async function fromServe(base: string, tokenFile: string | undefined, signal: AbortSignal): Promise<Resolution> {
  let url: URL;
  try {
    url = new URL('/api/backends', base);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new UsageError(`--from: expected the URL of a serve instance such as http://127.0.0.1:8765, got "${base}"`);
  }
  const token = tokenOption(tokenFile);
  const where = url.origin;
  // node:http, not fetch: fetch refuses some ports outright ("bad port") and hides the errno.
  const { request } = await import(url.protocol === 'https:' ? 'node:https' : 'node:http');
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      url,
      { headers: token ? { Authorization: `Bearer ${token}` } : {}, timeout: FROM_TIMEOUT_MS, signal },
      (res: IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (body.length > FROM_BUDGET_BYTES) req.destroy(new Error(`more than ${FROM_BUDGET_BYTES} bytes`));
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error('timeout'), { code: `no answer within ${FROM_TIMEOUT_MS} ms` })),
    );
    req.on('error', reject);
    req.end();
  }).catch((error: NodeJS.ErrnoException) => {
    if (signal.aborted) throw error;
    throw new EnvironmentError(`--from ${where}: no serve instance answers there (${error.code ?? error.message})`);
  });
  if (status === 401) throw new EnvironmentError(`--from ${where}: the token was refused (401)`);
  if (status !== 200) throw new EnvironmentError(`--from ${where}: answered ${status}, not a backend list`);
  let view: { schema?: number; backends?: (Backend & { state?: string })[]; rpc?: string };
  try {
    view = JSON.parse(text) as typeof view;
  } catch {
    throw new EnvironmentError(`--from ${where}: answered something that is not JSON`);
  }
  if (view.schema !== 1 || !Array.isArray(view.backends)) {
    throw new EnvironmentError(`--from ${where}: answered JSON that is not a serve backend list (schema 1)`);
  }
  // The instance's usable list (`rpc`) is the authority: the compatibility rule is applied there.
  const usable = new Set(typeof view.rpc === 'string' && view.rpc !== '' ? view.rpc.split(',') : []);
  const backends = view.backends
    .filter((b) => b.state === 'up' && b.verified === true && usable.has(formatHostPort(b)))
    .map(({ host, port, sources, verified, evidence, rttMs, service, health, reason, rpc }) => {
      const b: Backend = { host, port, sources, verified };
      Object.assign(b, { evidence, rttMs, service, health, reason, rpc });
      for (const key of Object.keys(b) as (keyof Backend)[]) if (b[key] === undefined) delete b[key];
      return b;
    });
  return { backends, sources: [], warnings: [], from: where } as Resolution & { from: string };
}

type ResolveFlagValues = ReturnType<typeof parseFlags<{ options: typeof RESOLVE_FLAGS }>>['values'];

/** The resolver's options from its flags (resolve and watch share them). */
export function resolveOptionsFromFlags(
  values: Omit<ResolveFlagValues, 'explain' | 'format' | 'help' | 'from' | 'token-file'>,
  signal?: AbortSignal,
): ResolveOptions {
  let sources: SourceName[] | undefined;
  if (values.sources !== undefined) {
    sources = values.sources.split(',').map((s) => s.trim()) as SourceName[];
    const unknown = sources.find((s) => !SOURCE_NAMES.includes(s));
    if (unknown !== undefined || sources.length === 0) {
      throw new UsageError(`--sources: expected a list of ${SOURCE_NAMES.join(', ')}; got "${values.sources}"`);
    }
  }
  const badType = values['dns-sd-type']?.find((t) => serviceType(t) === undefined);
  if (badType !== undefined) {
    throw new UsageError(`--dns-sd-type: expected a service type such as _ggml-rpc._tcp, got "${badType}"`);
  }
  const ttl = parseInteger('--redis-ttl', values['redis-ttl'], 'redisTtlSeconds');
  if (values.redis !== undefined && !/^rediss?:\/\/[^\s]+$/.test(values.redis)) {
    throw new UsageError(`--redis: expected redis://host:port, got "${values.redis}"`);
  }
  return {
    sources,
    merge: values.merge,
    verify: !values['no-verify'],
    configPath: values.config,
    strict: values.strict,
    subnet: values.subnet,
    ports: values.ports?.join(','),
    dnsSdWaitMs: parseDuration('--dns-sd-wait', values['dns-sd-wait'], 'dnsSdWaitMs'),
    dnsSdTypes: values['dns-sd-type'],
    redisUrl: values.redis,
    redisTtlSeconds: ttl,
    redisPrefix: values['redis-prefix'],
    requireRedis: values['require-redis'],
    allowPublic: values['allow-public'],
    allowLinkLocal: values['allow-link-local'],
    acceptSilent: values['accept-silent'],
    trustAllUsers: values['trust-all-users'],
    ...parseTimingFlags(values),
    probeTimeoutMs: parseInteger('--probe-timeout', values['probe-timeout'], 'probeTimeoutMs'),
    rpcVersion: values['rpc-version'],
    engine: parseEngine(values.engine),
    signal,
  };
}

export async function runResolveCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const { values } = parseFlags({
    args: argv,
    allowPositionals: false,
    options: { ...RESOLVE_FLAGS },
  });
  if (values.help) {
    process.stdout.write(RESOLVE_USAGE);
    return 0;
  }
  const format = parseFormat(values.format, RESOLVE_FLAGS.format.choices, 'json');
  const { from, 'token-file': tokenFile, ...resolveFlags } = values;
  const options = resolveOptionsFromFlags(resolveFlags, signal);
  let resolution: Resolution;
  try {
    resolution = from === undefined ? await resolveBackends(options) : await fromServe(from, tokenFile, signal);
  } catch (error) {
    if (!signal.aborted) throw error;
    process.stderr.write('scan-backends: interrupted\n');
    return EXIT.interrupted;
  }
  if (values.explain) process.stderr.write(explain(resolution));
  else {
    // Problems are never silent: a bad config line or a skipped coordinator is said on stderr.
    const said = [...resolution.sources.flatMap((src) => src.warnings ?? []), ...resolution.warnings];
    for (const w of said) process.stderr.write(`scan-backends: warning: ${terminalSafe(w)}\n`);
    if (resolution.backends.length === 0) process.stderr.write(whyNone(resolution));
  }
  if (format === 'rpc') process.stdout.write(renderRpcList(resolution.backends));
  else if (format === 'json') process.stdout.write(`${JSON.stringify({ schema: 1, ...resolution })}\n`);
  else if (format === 'ndjson') for (const b of resolution.backends) process.stdout.write(`${JSON.stringify(b)}\n`);
  else process.stdout.write(renderTable(resolution));
  return resolution.backends.length > 0 ? EXIT.found : EXIT.none;
}
