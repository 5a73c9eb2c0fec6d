// `scan-backends serve`: watch, shown over HTTP. Every watch flag applies; this module adds
// the server's own (--listen, --token-file, --allow-host, …) and starts the server and its
// HTTP discovery once the watcher runs. The server closes before the watcher does.

import { formatHostPort, parseHostPort, type HostPort } from '../common/host-port.js';
import { DEFAULT_HTTP_PORTS, DEFAULT_LISTEN } from '../common/options.js';
import { isLoopbackAddress } from '../common/addresses.js';
import { parsePorts } from '../scan/targets/grammar.js';
import type { WatchOptions } from '../watch/watcher.js';
import { normalizeHost } from '../serve/allowed-hosts.js';
import { HttpDiscovery } from '../serve/http-discovery.js';
import { startServer, type ServeHandle } from '../serve/server.js';
import { EnvironmentError, UsageError } from './exit-codes.js';
import { FILE_FLAG, parseFlags, tokenOption } from './flags.js';
import { parseWatchFlags, runWatcher, WATCH_FLAGS, type Attachment } from './watch-command.js';

export const SERVE_USAGE = `Usage: scan-backends serve [--listen HOST:PORT] [--token-file FILE] [--allow-host NAME] [watch options]

Runs a watcher (every watch option applies, see watch --help) and shows it over HTTP:
  GET /                   the dashboard: cluster totals, backends with free memory and their
                          last hour, free memory over time, dropped servers and why, events,
                          scanners (live over SSE, polling every 3 s without it, whole without
                          JavaScript)
  GET /api/backends       schema 1: every backend with its status, sources and last event, and
                          the servers the last resolve dropped
  GET /api/history        the last hour: state spans per backend, the usable set's free memory
  GET /api/events         Server-Sent Events of the watcher's events (Last-Event-ID resumes)
  GET /api/scanners       the watchers sharing the Redis registry
  GET /api/prometheus-sd  Prometheus HTTP service discovery: llama-server and vLLM endpoints
                          found on --http-ports that expose /metrics
  GET /metrics            Prometheus metrics; GET /healthz, /readyz

Serve options:
      --listen HOST:PORT     where to listen (default 127.0.0.1:8765; a host alone keeps port
                             8765, :PORT keeps 127.0.0.1; port 0: any free one)
      --token-file FILE      the token every request must carry (Authorization: Bearer, or the
                             cookie the page gets from /?token=…); $SCAN_BACKENDS_TOKEN too.
                             Required to listen anywhere but loopback.
      --allow-host NAME      a name the server is reached by (repeatable); a request naming
                             another Host than this, loopback's or --listen's gets 421
      --max-sse-clients N    event-stream clients at once (default 100)
      --http-ports P         ports where HTTP backends are looked for (default 8080,8000), on
                             the --subnet list, else on the hosts of the backends followed

Exit: 0 stopped, 2 usage error, 3 environment error (the address is in use).
`;

/** The server's own flags (run takes them too). */
export const SERVER_FLAGS = {
  listen: { type: 'string', hint: 'HOST:PORT, HOST or :PORT' },
  'token-file': FILE_FLAG,
  'allow-host': { type: 'string', multiple: true },
  'max-sse-clients': { type: 'string' },
  'http-ports': { type: 'string', hint: 'a port list like 8080,8000' },
} as const;

export const SERVE_FLAGS = { ...WATCH_FLAGS, ...SERVER_FLAGS } as const;

/** The serve command's own settings, checked before anything starts. */
export function parseServeFlags(values: Record<string, unknown>): {
  host: string;
  port: number;
  token?: string;
  allowHosts: string[];
  maxSseClients?: number;
  httpPorts: readonly number[];
} {
  // A host alone keeps the default port, ":port" the default host: never llama.cpp's 50052.
  const listen = parseHostPort(String(values.listen ?? DEFAULT_LISTEN), parseHostPort(DEFAULT_LISTEN) as HostPort);
  if (typeof listen === 'string' || values.listen === '') {
    throw new UsageError(
      `--listen: expected HOST:PORT, HOST or :PORT such as 127.0.0.1:8765, got "${String(values.listen)}"`,
    );
  }
  const token = tokenOption(values['token-file'] as string | undefined);
  if (!isLoopbackAddress(listen.host) && token === undefined) {
    throw new UsageError(
      `--listen ${listen.host}: not a loopback address, so a token is required (--token-file FILE or $SCAN_BACKENDS_TOKEN)`,
    );
  }
  const allowHosts = (values['allow-host'] as string[] | undefined) ?? [];
  for (const name of allowHosts) {
    if (normalizeHost(name) === undefined) {
      throw new UsageError(`--allow-host: expected a host name or address without a port, got "${name}"`);
    }
  }
  const max = values['max-sse-clients'];
  const maxSseClients = max === undefined ? undefined : Number(max);
  if (
    maxSseClients !== undefined &&
    !(Number.isInteger(maxSseClients) && maxSseClients >= 1 && maxSseClients <= 10_000)
  ) {
    throw new UsageError(`--max-sse-clients: must be an integer 1..10000, got "${String(max)}"`);
  }
  let httpPorts = DEFAULT_HTTP_PORTS;
  if (values['http-ports'] !== undefined) {
    try {
      httpPorts = parsePorts(String(values['http-ports']));
    } catch (error) {
      throw new UsageError(`--http-ports: ${(error as Error).message}`);
    }
  }
  return { host: listen.host, port: listen.port, token, allowHosts, maxSseClients, httpPorts };
}

export type ServeSettings = ReturnType<typeof parseServeFlags>;

/** The server and its HTTP discovery over the running watcher; an address in use ends the daemon. */
export function serveOver(serve: ServeSettings, watchOptions: WatchOptions): Attachment {
  return async (watcher, daemon) => {
    const { settings } = watcher;
    const discovery = new HttpDiscovery(watcher, {
      subnet: watchOptions.subnet,
      ports: serve.httpPorts,
      intervalMs: settings.intervalMs,
      timeoutMs: settings.timeoutMs,
      probeTimeoutMs: settings.probeTimeoutMs,
      allowPublic: watchOptions.allowPublic,
      log: (level, msg, fields) => daemon.logger[level](fields, msg),
    });
    let http: ServeHandle;
    try {
      http = await startServer(watcher, { ...serve, discovery });
    } catch (error) {
      discovery.close();
      await daemon.abandon();
      const code = (error as NodeJS.ErrnoException).code;
      throw new EnvironmentError(`cannot listen on ${formatHostPort(serve)}: ${code ?? (error as Error).message}`);
    }
    daemon.beforeStop(() => http.close());
    daemon.logger.info({ url: http.url }, 'serving');
  };
}

export async function runServeCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const { values } = parseFlags({ args: argv, allowPositionals: false, options: { ...SERVE_FLAGS } });
  if (values.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const serve = parseServeFlags(values);
  const request = parseWatchFlags(values);
  return runWatcher(request, signal, serveOver(serve, request.watchOptions));
}
