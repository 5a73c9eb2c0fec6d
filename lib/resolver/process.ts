// Source "process": the backends a running coordinator was started with. llama-server and
// llama-cli, or any process whose command line carries --rpc: `--rpc a:50052,b` or `--rpc=a,b`.
import { readdir, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';

import { parseHostPort } from '../host-port.js';
import type { Candidate, Dropped } from './types.js';

const COORDINATORS = new Set(['llama-server', 'llama-cli']);

/** Every process's argv: /proc/<pid>/cmdline on Linux, `ps -axww -o args=` elsewhere. */
export async function listCommandLines(): Promise<string[][]> {
  if (process.platform === 'linux') {
    const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
    const lines = await Promise.all(
      pids.map((pid) =>
        readFile(`/proc/${pid}/cmdline`, 'utf8').then(
          (text) => text.split('\0').filter((arg, i, all) => arg !== '' || i < all.length - 1),
          () => [] as string[], // the process ended, or is not ours to read
        ),
      ),
    );
    return lines.filter((argv) => argv.length > 0);
  }
  // ps joins arguments with spaces; an argument with a space in it is split, which --rpc lists never have.
  // child_process (and node:net behind it) loads only here, where there is no /proc.
  const { execFile } = await import('node:child_process');
  const { stdout } = await promisify(execFile)('ps', ['-axww', '-o', 'args='], { maxBuffer: 16 * 1024 * 1024 });
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.trim().split(/\s+/));
}

/** The --rpc lists of one command line (llama-server, llama-cli, or anything with --rpc). */
export function rpcLists(argv: readonly string[]): string[] {
  const lists: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--rpc' && i + 1 < argv.length) lists.push(argv[++i] as string);
    else if (arg.startsWith('--rpc=')) lists.push(arg.slice('--rpc='.length));
  }
  return lists;
}

/** Whether a command line is a llama.cpp coordinator, with or without --rpc. */
export function isCoordinator(argv: readonly string[]): boolean {
  return argv.slice(0, 2).some((a) => COORDINATORS.has(basename(a))) || rpcLists(argv).length > 0;
}

/** Candidates from a --rpc list; port 0 and unparsable entries are dropped with the reason. */
export function parseRpcList(
  list: string,
  source: Candidate['source'],
): { candidates: Candidate[]; dropped: Dropped[] } {
  const candidates: Candidate[] = [];
  const dropped: Dropped[] = [];
  for (const entry of list.split(',').map((e) => e.trim())) {
    if (entry === '') continue;
    const parsed = parseHostPort(entry);
    if (typeof parsed === 'string') dropped.push({ host: entry, port: 0, reason: `"${entry}": ${parsed}` });
    else if (parsed.port === 0) dropped.push({ ...parsed, reason: 'port 0: a placeholder, not a backend' });
    else candidates.push({ ...parsed, source });
  }
  return { candidates, dropped };
}

export async function processCandidates(): Promise<{ candidates: Candidate[]; dropped: Dropped[]; message: string }> {
  const candidates: Candidate[] = [];
  const dropped: Dropped[] = [];
  let coordinators = 0;
  for (const argv of await listCommandLines()) {
    if (!isCoordinator(argv)) continue;
    coordinators++;
    for (const list of rpcLists(argv)) {
      const parsed = parseRpcList(list, 'process');
      candidates.push(...parsed.candidates);
      dropped.push(...parsed.dropped);
    }
  }
  return { candidates, dropped, message: `${coordinators} coordinator process${coordinators === 1 ? '' : 'es'}` };
}
