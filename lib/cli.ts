#!/usr/bin/env node
// The scan-backends command: dispatches subcommands and maps every error to an exit code.
import { readFileSync } from 'node:fs';

import { EXIT, EnvironmentError, UsageError } from './cli/exit-codes.js';
import { shutdownPolicy } from './daemon/shutdown.js';
import { InvalidOptionError, InvalidTargetError, ScanBackendsError } from './common/errors.js';

const USAGE = `Usage: scan-backends <command> [options]

Commands:
  scan [targets...]   find open ports of LLM backends (scan --help for options)
  probe HOST:PORT...  tell what answers at each address (probe --help)
  resolve             the live RPC backends for a coordinator, from process, config,
                      scan and Redis (resolve --help)
  watch               keep that list current: a daemon that health-checks the backends,
                      reports every change and can restart the coordinator (watch --help)
  plan MODEL.gguf     which usable RPC servers a model fits on, and the llama-server
                      arguments that split it over them (plan --help)
  run -- COMMAND      watch, feeding a coordinator it starts and restarts (run --help)
  serve               watch, shown over HTTP: dashboard, API, event stream, Prometheus
                      metrics and service discovery (serve --help)
  announce            advertise the rpc-server beside it over DNS-SD while it answers
                      (announce --help)
  doctor              check this machine before running watch: addon, limits, config,
                      coordinators, Redis, subnets (doctor --help)
  demo                scan and probe a self-contained loopback cluster on 127.0.0.0/24
  completion SHELL    a completion script for bash, zsh or fish
  help [COMMAND]      this text, or a command's usage

Options: -h, --help; -v, --version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Each command's usage, loaded only when asked for (each lives with its command). */
const USAGES: Record<string, () => Promise<string>> = {
  scan: async () => (await import('./cli/scan-command.js')).SCAN_USAGE,
  probe: async () => (await import('./cli/probe-command.js')).PROBE_USAGE,
  resolve: async () => (await import('./cli/resolve-command.js')).RESOLVE_USAGE,
  watch: async () => (await import('./cli/watch-command.js')).WATCH_USAGE,
  serve: async () => (await import('./cli/serve-command.js')).SERVE_USAGE,
  run: async () => (await import('./cli/run-command.js')).RUN_USAGE,
  doctor: async () => (await import('./cli/doctor-command.js')).DOCTOR_USAGE,
  announce: async () => (await import('./cli/announce-command.js')).ANNOUNCE_USAGE,
  plan: async () => (await import('./cli/plan-command.js')).PLAN_USAGE,
  demo: async () => (await import('./cli/demo.js')).DEMO_USAGE,
  completion: async () => (await import('./cli/completion.js')).COMPLETION_USAGE,
};

async function main(argv: string[], signal: AbortSignal): Promise<number> {
  const [command, ...rest] = argv;
  // --version is answered wherever it stands, as --help is.
  const flags = rest.slice(0, rest.includes('--') ? rest.indexOf('--') : undefined);
  if (command !== undefined && command in USAGES && flags.includes('--version')) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  switch (command) {
    // Each command loads its own modules: `--version` and `help` load none of them, and
    // `scan` starts without the resolver's or the demo's.
    case 'scan': {
      const { parseScanArgs, runScan, SCAN_USAGE } = await import('./cli/scan-command.js');
      const request = parseScanArgs(rest);
      if (request === 'help') {
        process.stdout.write(SCAN_USAGE);
        return 0;
      }
      return runScan(request, signal);
    }
    case 'probe':
      return (await import('./cli/probe-command.js')).runProbeCommand(rest, signal);
    case 'resolve':
      return (await import('./cli/resolve-command.js')).runResolveCommand(rest, signal);
    case 'watch':
      return (await import('./cli/watch-command.js')).runWatchCommand(rest, signal);
    case 'serve':
      return (await import('./cli/serve-command.js')).runServeCommand(rest, signal);
    case 'run':
      return (await import('./cli/run-command.js')).runRunCommand(rest, signal);
    case 'announce':
      return (await import('./cli/announce-command.js')).runAnnounceCommand(rest, signal);
    case 'doctor':
      return (await import('./cli/doctor-command.js')).runDoctorCommand(rest);
    case 'plan':
      return (await import('./cli/plan-command.js')).runPlanCommand(rest, signal);
    case 'demo':
      return (await import('./cli/demo.js')).runDemoCommand(rest, signal);
    case 'completion':
      return (await import('./cli/completion.js')).runCompletionCommand(rest);
    case '-v':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'help': {
      const topic = rest[0];
      if (topic === undefined) {
        process.stdout.write(USAGE);
        return 0;
      }
      const usage = USAGES[topic];
      if (!usage) throw new UsageError(`help: no command "${topic}"; commands: ${Object.keys(USAGES).join(', ')}`);
      process.stdout.write(await usage());
      return 0;
    }
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? EXIT.usage : 0;
    default: {
      const near = (await import('./cli/flags.js')).nearestName(command, [...Object.keys(USAGES), 'help']);
      throw new UsageError(`unknown command ${command}${near ? `; did you mean ${near}?` : ''}`);
    }
  }
}

function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError || error instanceof InvalidTargetError || error instanceof InvalidOptionError) {
    return EXIT.usage;
  }
  // parseArgs reports unknown flags and missing values with these codes.
  const code = (error as { code?: string }).code ?? '';
  if (code.startsWith('ERR_PARSE_ARGS')) return EXIT.usage;
  if (error instanceof EnvironmentError || error instanceof ScanBackendsError) return EXIT.environment;
  return EXIT.internal;
}

// SIGINT/SIGTERM: stop the work and print what is known; a second signal, or work that has
// not wound down within the grace period, ends the process at once. A signal always ends it.
const controller = new AbortController();
const onSignal = (signal: NodeJS.Signals) => {
  const code = signal === 'SIGINT' ? EXIT.interrupted : 128 + 15;
  if (controller.signal.aborted) process.exit(code);
  controller.abort(new Error(signal === 'SIGINT' ? 'interrupted' : 'terminated'));
  setTimeout(() => process.exit(code), shutdownPolicy.graceMs).unref();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

// A reader that went away (`scan … | head -1`) ends the command quietly, with the status a
// shell gives a process killed by SIGPIPE; the scan's sockets go with the process.
const EXIT_SIGPIPE = 128 + 13;
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  controller.abort(new Error('stdout closed'));
  process.exit(EXIT_SIGPIPE);
});

// Once the answer is written the command is done: nothing a peer left open may keep it alive.
function leaveSoon(): void {
  process.stdout.write('', () => setTimeout(() => process.exit(), 1000).unref());
}

main(process.argv.slice(2), controller.signal).then(
  (code) => {
    process.exitCode = code;
    leaveSoon();
  },
  (error: unknown) => {
    const code = exitCodeFor(error);
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`scan-backends: ${message}\n`);
    // The usage hint only when the command line is at fault: a bad line in a config file
    // (--strict) is exit 2 too, and no help text would fix it.
    if (code === EXIT.usage && !(error instanceof InvalidTargetError && error.file !== undefined)) {
      const command = process.argv[2] ?? '';
      const help = command in USAGES ? `scan-backends ${command} --help` : 'scan-backends --help';
      process.stderr.write(`Run "${help}" for usage.\n`);
    }
    if (code === EXIT.internal && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = code;
    leaveSoon();
  },
);
