#!/usr/bin/env node
// The scan-backends command: dispatches subcommands and maps every error to an exit code.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { EXIT, EnvironmentError, UsageError } from './cli/exit-codes.js';
import { parseFormat, parseScanArgs, runScan, SCAN_USAGE } from './cli/scan-command.js';
import type { OutputFormat } from './cli/output.js';
import { InvalidOptionError, InvalidTargetError, ScanBackendsError } from './errors.js';

const USAGE = `Usage: scan-backends <command> [options]

Commands:
  scan [targets...]   find open ports of LLM backends (scan --help for options)
  probe HOST:PORT...  tell what answers at each address (probe --help)
  resolve             the live RPC backends for a coordinator, from process, config,
                      scan and Redis (resolve --help)
  demo                scan and probe a self-contained loopback cluster on 127.0.0.0/24

Options: -h, --help; -v, --version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[], signal: AbortSignal): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'scan': {
      const request = parseScanArgs(rest);
      if (request === 'help') {
        process.stdout.write(SCAN_USAGE);
        return 0;
      }
      return runScan(request, signal);
    }
    // Each command loads its own modules: `scan` starts without the resolver's or the demo's.
    case 'probe':
      return (await import('./cli/probe-command.js')).runProbeCommand(rest, signal);
    case 'resolve':
      return (await import('./cli/resolve-command.js')).runResolveCommand(rest, signal);
    case 'demo': {
      const { values } = parseArgs({ args: rest, options: { format: { type: 'string' } }, strict: true });
      const { runDemo } = await import('./cli/demo.js');
      return runDemo(parseFormat(values.format, ['table', 'json', 'ndjson'], 'table') as OutputFormat, signal);
    }
    case '-v':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? EXIT.usage : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
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
const SIGNAL_GRACE_MS = 3000;
const controller = new AbortController();
const onSignal = (signal: NodeJS.Signals) => {
  const code = signal === 'SIGINT' ? EXIT.interrupted : 128 + 15;
  if (controller.signal.aborted) process.exit(code);
  controller.abort(new Error(signal === 'SIGINT' ? 'interrupted' : 'terminated'));
  setTimeout(() => process.exit(code), SIGNAL_GRACE_MS).unref();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

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
    if (code === EXIT.usage) process.stderr.write('Run "scan-backends --help" for usage.\n');
    if (code === EXIT.internal && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = code;
    leaveSoon();
  },
);
