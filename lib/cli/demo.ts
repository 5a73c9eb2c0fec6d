// `scan-backends demo`: a self-contained loopback cluster to show what a scan finds: two
// ggml-rpc servers (the test peer, speaking llama.cpp's protocol), one current and one of an
// older protocol generation. It binds only 127.0.0.x and scans only 127.0.0.0/24, so it is safe
// on any machine.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

import { GGML_RPC_PORT } from '../common/options.js';
import { startGgmlRpcPeer, type GgmlRpcPeer, type PeerOptions } from '../demo/ggml-rpc-peer.js';

import { EXIT, EnvironmentError } from './exit-codes.js';
import { formatFlag, parseFlags, parseFormat } from './flags.js';
import type { OutputFormat } from './output.js';
import { runScan } from './scan-command.js';

export const DEMO_PORT = GGML_RPC_PORT;
/** The demo plays a coordinator of protocol 5.1.0, so the 3.6.1 server shows as incompatible. */
const DEMO_CLIENT = '5.1.0';

/**
 * What to try on the servers --keep leaves running, one shell command a line. The resolve
 * judges as the demo's client does (without a client version it would keep whichever servers
 * one client can use, which need not be the one the demo shows serving), and reads only the
 * config file, so a coordinator running on this machine does not answer instead.
 */
export const DEMO_TRY = [
  'scan-backends probe 127.0.0.45 127.0.0.48',
  "printf '127.0.0.45\\n127.0.0.48\\n' > rpc_backends.conf",
  `scan-backends resolve --sources config --rpc-version ${DEMO_CLIENT}`,
];

export const DEMO_USAGE = `Usage: scan-backends demo [--format table|json|ndjson] [--keep]

Starts two ggml-rpc servers on loopback (127.0.0.45:50052, protocol 5.0.0 with two devices;
127.0.0.48:50052, protocol 3.6.1, which a 5.x client cannot use), scans and probes
127.0.0.0/24 as a ${DEMO_CLIENT} coordinator would, and stops them. It touches nothing but loopback.

Options:
      --format F   table | json | ndjson (default: table on a terminal, else ndjson)
      --keep       leave the two servers running until Ctrl-C, to try probe and resolve on them:
${DEMO_TRY.map((line) => `                     ${line}\n`).join('')}`;
const GiB = 2 ** 30;
const DEMO_PEERS: PeerOptions[] = [
  {
    generation: '5.x',
    host: '127.0.0.45',
    port: DEMO_PORT,
    devices: [
      { freeBytes: 22.5 * GiB, totalBytes: 24 * GiB },
      { freeBytes: 10 * GiB, totalBytes: 12 * GiB },
    ],
  },
  { generation: '3.x', host: '127.0.0.48', port: DEMO_PORT, devices: [{ freeBytes: 60 * GiB, totalBytes: 64 * GiB }] },
];
export const DEMO_HOSTS = DEMO_PEERS.map((p) => p.host);

/** The flags of this command: its parser and shell completion read this one table. */
export const DEMO_FLAGS = {
  format: formatFlag(['table', 'json', 'ndjson']),
  keep: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export async function runDemoCommand(argv: string[], signal: AbortSignal): Promise<number> {
  const { values } = parseFlags({
    args: argv,
    options: { ...DEMO_FLAGS },
  });
  if (values.help) {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  const format = parseFormat(values.format, DEMO_FLAGS.format.choices, 'ndjson') as OutputFormat;
  return runDemo(format, values.keep, signal);
}

/** Whether a shell would find `name`: the hints are written as a user types them. */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir || '.', name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function runDemo(format: OutputFormat, keep: boolean, signal: AbortSignal): Promise<number> {
  const servers: GgmlRpcPeer[] = [];
  try {
    for (const peer of DEMO_PEERS) {
      const host = peer.host;
      try {
        servers.push(await startGgmlRpcPeer(peer));
      } catch (error) {
        throw new EnvironmentError(`demo: cannot listen on ${host}:${DEMO_PORT}: ${(error as Error).message}`, {
          cause: error,
        });
      }
    }
    process.stderr.write(
      `demo: ggml-rpc servers on ${DEMO_HOSTS.map((h) => `${h}:${DEMO_PORT}`).join(' and ')}; scanning and probing 127.0.0.0/24\n`,
    );
    const code = await runScan(
      {
        targets: ['127.0.0.0/24'],
        options: { ports: DEMO_PORT, probe: 'auto', rpcVersion: DEMO_CLIENT },
        format,
        openOnly: false,
      },
      signal,
    );
    if (code === EXIT.interrupted) return code;
    if (keep && !signal.aborted) {
      process.stderr.write(
        `demo: the servers keep running; try:\n${DEMO_TRY.map((line) => `  ${line}\n`).join('')}Ctrl-C stops them.\n`,
      );
      if (!onPath('scan-backends')) {
        process.stderr.write(
          "demo: scan-backends is not on PATH: run `npm link --ignore-scripts` in the clone (the README's quick start), or write `npx scan-backends` there\n",
        );
      }
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    }
    return EXIT.found;
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}
