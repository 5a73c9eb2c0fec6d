// `scan-backends run [watch flags] [run flags] -- COMMAND [ARGS…]`: a watcher and the
// coordinator it feeds, as one daemon. This module maps the flags to the watcher's, the
// daemon's and the supervisor's options; lib/run/ supervises, lib/daemon/ runs the rest.
import { GROW_POLICIES, normalizeRunOptions, parseSize, type RunTuning } from '../common/options.js';
import { readModelMemory } from '../plan/model-memory.js';
import { commandPlanOptions, fleetClaims, plannedChoice } from '../run/planned.js';
import { Supervisor, type SupervisorOutcome } from '../run/supervisor.js';
import type { CoordinatorEvent } from '../watch/types.js';
import { Watcher } from '../watch/watcher.js';
import { startDaemon, type Daemon } from '../daemon/daemon.js';
import { EXIT, UsageError } from './exit-codes.js';
import { DURATION_FLAG, parseDuration, parseFlags, parseInteger } from './flags.js';
import { parseServeFlags, serveOver, SERVER_FLAGS, type ServeSettings } from './serve-command.js';
import { parseWatchFlags, WATCH_FLAGS } from './watch-command.js';

export const RUN_USAGE = `Usage: scan-backends run [watch options] [run options] -- COMMAND [ARGS...]

Runs COMMAND (a coordinator such as llama-server; no shell) with the usable ggml-rpc servers
the watcher finds, and keeps it running with them. It starts once a usable set exists (at
least --min-servers), with "--rpc host:port,..." appended, or in place of an argument that is
exactly {rpc}. It is restarted with the survivors when a server it uses is lost (down, or
the command exits, as llama.cpp aborts when a server goes away), and with more servers when
they come back or appear (--grow). Failed starts in a row back off (1 s, doubling); after
--max-restarts of them run gives up (a crash loop: exit 5).

A server handed to COMMAND is its own: the watcher never connects to it, it judges it by
COMMAND's connections. COMMAND runs in its own process group, its output passed through to
stderr and into the log ("coordinator: ..."); it never outlives run (setpriv --pdeathsig
where util-linux has it, and an exit handler).

Run options:
  -m, --model PATH         the GGUF model: COMMAND starts on the fewest usable servers it fits
                           on (as \`plan\` chooses, at COMMAND's own -c and --cache-type-k),
                           with the plan's --tensor-split (and -ngl 999 unless COMMAND sets
                           it). Read from COMMAND's own -m/--model when not given
      --reserve SIZE       kept free per device for llama.cpp's compute buffers (default 512MiB)
      --no-plan            hand on the whole usable set, without a plan
      --min-servers N      start once N servers are usable (default 1)
      --grow P             idle | always | never (default idle): restart to take servers that
                           returned or appeared: when the coordinator is idle (its /slots or
                           /metrics; when it cannot tell, once the set held still --settle),
                           at once, or only when one is lost
      --health-url URL     the coordinator's health endpoint (default: from its --host and
                           --port, llama-server's, /health); ready at its first 200
      --ready-timeout D    not ready this long after its start: restarted (default 10m)
      --unhealthy-after D  unhealthy this long once ready: restarted (default 30s)
      --stop-grace D       SIGTERM, then SIGKILL after this (default 5s)
      --max-restarts N     failed starts in a row before giving up (default 5)

Watch options: as \`scan-backends watch --help\` lists them (--settle is also run's).

Serve options: with --listen, run shows itself as \`scan-backends serve\` does (the
dashboard with a Coordinator section, the API, /metrics with scan_backends_coordinator_*):
--listen, --token-file, --allow-host, --max-sse-clients, --http-ports, as \`serve --help\`
lists them. Without --listen nothing listens.

Events on stdout, besides the backends': coordinator-starting, coordinator-ready (msToReady),
coordinator-exited (code, signal), coordinator-restarting (reason, servers),
coordinator-crash-loop.

Signals: SIGTERM/SIGINT stop COMMAND (SIGTERM, SIGKILL after --stop-grace), then run exits.

Exit: 0 stopped, 2 usage error, 3 environment error, 5 crash loop.
`;

export const RUN_FLAGS = {
  ...WATCH_FLAGS,
  ...SERVER_FLAGS,
  model: { type: 'string', short: 'm', file: true },
  reserve: { type: 'string' },
  'no-plan': { type: 'boolean', default: false },
  'min-servers': { type: 'string' },
  grow: { type: 'string', choices: GROW_POLICIES },
  'health-url': { type: 'string' },
  'ready-timeout': DURATION_FLAG,
  'unhealthy-after': DURATION_FLAG,
  'stop-grace': DURATION_FLAG,
  'max-restarts': { type: 'string' },
} as const;

/** The model a command names with its own -m/--model, if it does. */
export function commandModel(command: readonly string[]): string | undefined {
  let model: string | undefined;
  command.forEach((arg, i) => {
    if ((arg === '-m' || arg === '--model') && i + 1 < command.length) model = command[i + 1];
    else if (arg.startsWith('--model=')) model = arg.slice('--model='.length);
  });
  return model;
}

export interface RunRequest {
  watch: ReturnType<typeof parseWatchFlags>;
  run: RunTuning;
  command: string[];
  /** With --listen: the server over the watcher, as serve's. */
  serve?: ServeSettings;
  /** The model the planner will read; undefined with --no-plan or none named. */
  model?: string;
  reserveBytes?: number;
}

/** run's argv (flags, then `--`, then the command) as options; nothing starts. */
export function parseRunArgs(argv: string[]): RunRequest | 'help' {
  const dash = argv.indexOf('--');
  const flags = dash === -1 ? argv : argv.slice(0, dash);
  const { values } = parseFlags({ args: flags, allowPositionals: false, options: { ...RUN_FLAGS } });
  if (values.help) return 'help';
  const command = dash === -1 ? [] : argv.slice(dash + 1);
  if (command.length === 0) throw new UsageError('run: the command to run is missing; put it after --');
  if (values.model !== undefined && values['no-plan']) throw new UsageError('--model and --no-plan: choose one');
  const reserveBytes = values.reserve === undefined ? undefined : parseSize('--reserve', values.reserve);
  const run: RunTuning = {
    minServers: parseInteger('--min-servers', values['min-servers'], 'minServers'),
    grow: values.grow as RunTuning['grow'],
    healthUrl: values['health-url'],
    readyTimeoutMs: parseDuration('--ready-timeout', values['ready-timeout'], 'readyTimeoutMs'),
    unhealthyMs: parseDuration('--unhealthy-after', values['unhealthy-after'], 'unhealthyMs'),
    stopGraceMs: parseDuration('--stop-grace', values['stop-grace'], 'stopGraceMs'),
    maxRestarts: parseInteger('--max-restarts', values['max-restarts'], 'maxRestarts'),
    settleMs: parseDuration('--settle', values.settle, 'settleMs'),
  };
  normalizeRunOptions(run); // refused here, before anything starts
  const model = values['no-plan'] ? undefined : (values.model ?? commandModel(command));
  return {
    watch: parseWatchFlags(values),
    run,
    command,
    ...serveRequest(values),
    ...(model === undefined ? {} : { model }),
    ...(reserveBytes === undefined ? {} : { reserveBytes }),
  };
}

/** serve's settings when --listen is given; the server's other flags need it. */
function serveRequest(values: Record<string, unknown>): { serve?: ServeSettings } {
  if (values.listen !== undefined) return { serve: parseServeFlags(values) };
  const orphan = Object.keys(SERVER_FLAGS).find((name) => values[name] !== undefined);
  if (orphan) throw new UsageError(`--${orphan}: only with --listen (run serves nothing without it)`);
  return {};
}

export async function runRunCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const request = parseRunArgs(argv);
  if (request === 'help') {
    process.stdout.write(RUN_USAGE);
    return 0;
  }
  // The model first: a file that is no model is refused before anything starts.
  const choose =
    request.model === undefined
      ? undefined
      : plannedChoice(
          { ...(await readModelMemory(request.model, commandPlanOptions(request.command))), path: request.model },
          request.command,
          request.reserveBytes,
        );
  const watcher = new Watcher(request.watch.watchOptions);
  let daemon: Daemon;
  try {
    daemon = startDaemon({ ...request.watch.daemon, signal });
  } catch (error) {
    await watcher.close();
    throw new UsageError(`--log-file: ${(error as Error).message}`);
  }
  daemon.follow(watcher);
  if (request.serve) await serveOver(request.serve, request.watch.watchOptions)(watcher, daemon);
  const logger = daemon.logger;
  watcher.on('coordinator', (event: CoordinatorEvent) => {
    daemon.writeLine(`${JSON.stringify(event)}\n`);
    if (event.type === 'coordinator-crash-loop') {
      process.stderr.write(
        `scan-backends run: the coordinator is in a crash loop (${event.coordinator.reason ?? ''}); giving up\n`,
      );
    }
  });
  const supervisor = new Supervisor({
    ...request.run,
    watcher,
    command: request.command,
    ...(choose ? { choose } : {}),
    ...(watcher.settings.redisUrl ? { claims: fleetClaims(watcher) } : {}),
    log: (level, msg, fields) => logger[level](fields ?? {}, msg),
  });
  daemon.beforeStop(() => supervisor.stop());
  let outcome = 'stopped' as SupervisorOutcome;
  void supervisor.run().then((ended) => {
    outcome = ended;
    if (ended === 'crash-loop') daemon.stop('the coordinator is in a crash loop');
  });
  await daemon.run();
  return outcome === 'crash-loop' ? EXIT.crashLoop : 0;
}
