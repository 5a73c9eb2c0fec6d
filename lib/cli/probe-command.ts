// `scan-backends probe HOST:PORT...`: tell what answers at each address, and exit by the
// worst: 4 a connection failed, 1 reachable but not healthy, 0 all serving.

import { parseHostPort, type HostPort } from '../common/host-port.js';
import { selectEngine } from '../scan/engines/choose.js';
import { probe, type ScanReport, type ScanResult } from '../scan/job.js';
import { EXIT, UsageError } from './exit-codes.js';
import {
  ENGINE_FLAG,
  formatFlag,
  parseEngine,
  parseFlags,
  parseFormat,
  parseInteger,
  parseProbeFlags,
  PROBE_FLAGS,
} from './flags.js';
import { renderJson, renderNdjsonLine, renderTable } from './output.js';

export const PROBE_USAGE = `Usage: scan-backends probe HOST[:PORT]... [options]

Connects to each address (port 50052 when none is given; [::1]:50052 for IPv6) and tells what
answers: a llama.cpp ggml-rpc server (protocol version, compatibility, device memory), a gRPC
service (grpc.health.v1 status), Ollama, llama-server or an OpenAI-compatible server.

Options:
      --service S        auto, or probes in order: ggml-rpc,grpc,http (default auto: by port;
                         50052 ggml-rpc then gRPC, 11434 Ollama, others HTTP, gRPC, ggml-rpc)
      --grpc-service N   the service the gRPC health check asks about (default: the server)
      --rpc-version V    the coordinator's ggml-rpc protocol: judge compatibility against it
                         (default $SCAN_BACKENDS_RPC_VERSION; without one, each server
                         reports the clients that can use it)
      --timeout MS       connect timeout (default 1000)
      --probe-timeout MS each probe step's deadline (default 2000)
      --allow-public     probe addresses outside private/loopback/link-local/CGNAT/ULA space
      --engine E         auto | native | js
      --format F         table | json | ndjson (default: table on a terminal, else json)

Exit: 0 all serving, 1 reachable but not healthy (busy, not-serving, incompatible, unknown),
2 usage error, 3 environment error, 4 a connection failed.
`;

function parseTarget(text: string): HostPort {
  const parsed = parseHostPort(text);
  if (typeof parsed === 'string') throw new UsageError(`${text}: ${parsed}`);
  if (parsed.port === 0) throw new UsageError(`${text}: port must be 1..65535`);
  return parsed;
}

export function exitCodeForProbes(results: readonly ScanResult[]): number {
  if (results.some((r) => r.state !== 'open')) return EXIT.connectionFailed;
  if (results.some((r) => r.health !== 'serving')) return EXIT.none;
  return EXIT.found;
}

/** The flags of this command: its parser and shell completion read this one table. */
export const PROBE_COMMAND_FLAGS = {
  ...PROBE_FLAGS,
  timeout: { type: 'string' },
  'allow-public': { type: 'boolean', default: false },
  engine: ENGINE_FLAG,
  format: formatFlag(['table', 'json', 'ndjson']),
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function runProbeCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: { ...PROBE_COMMAND_FLAGS },
  });
  if (values.help) {
    process.stdout.write(PROBE_USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('probe: name at least one HOST[:PORT]');
  const format = parseFormat(values.format, PROBE_COMMAND_FLAGS.format.choices, 'json');
  const targets = positionals.map(parseTarget);
  const { probe: service, ...probeOptions } = parseProbeFlags(values);
  const engine = parseEngine(values.engine);
  const selection = selectEngine(engine);
  if (selection.fallbackReason)
    process.stderr.write(`scan-backends: using the js engine: ${selection.fallbackReason}\n`);
  const timeoutMs = parseInteger('--timeout', values.timeout, 'timeoutMs');
  const started = performance.now();
  let results: ScanResult[];
  try {
    results = await Promise.all(
      targets.map(({ host, port }) =>
        probe(host, port, {
          ...probeOptions,
          service: service || 'auto',
          engine,
          timeoutMs,
          allowPublic: values['allow-public'],
          signal,
        }),
      ),
    );
  } catch (error) {
    if (!signal.aborted) throw error;
    process.stderr.write('scan-backends: interrupted\n');
    return EXIT.interrupted;
  }
  const report: ScanReport = {
    schema: 1,
    engine: selection.scanner.name,
    elapsedMs: Math.round(performance.now() - started),
    results,
  };
  if (format === 'json') process.stdout.write(renderJson(report));
  else if (format === 'ndjson') for (const r of results) process.stdout.write(renderNdjsonLine(r));
  else process.stdout.write(renderTable(results, false));
  return exitCodeForProbes(results);
}
