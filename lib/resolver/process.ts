// Source "process": the backends a running coordinator was started with. llama-server and
// llama-cli, or any process whose command line carries --rpc: `--rpc a:50052,b` or `--rpc=a,b`.
import { readdir, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';

import { parseHostPort } from '../common/host-port.js';
import { peerText } from '../common/peer-text.js';
import type { Candidate, Dropped } from './types.js';

const COORDINATORS = new Set(['llama-server', 'llama-cli']);
/** Servers named by other users' coordinators listed as dropped, in all; the rest are counted. */
const UNTRUSTED_LISTED = 64;

/** A running process: who runs it, when it started (to tell a restarted pid apart), its argv. */
export interface ProcessInfo {
  pid: number;
  /** The real user id, or -1 when it cannot be read. */
  uid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22); 0 when unknown. */
  start: number;
  argv: string[];
}

/** /proc/<pid>/stat's start time: field 22, counted after the ")" that ends the command name. */
function startTime(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[19]) || 0;
}

/** A process whose argv passes `wanted`; its status and stat are read only then. */
async function procInfo(pid: number, wanted: (argv: string[]) => boolean): Promise<ProcessInfo | null> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    const argv = cmdline.split('\0').filter((arg, i, all) => arg !== '' || i < all.length - 1);
    if (argv.length === 0 || !wanted(argv)) return null;
    const [status, stat] = await Promise.all([
      readFile(`/proc/${pid}/status`, 'utf8'),
      readFile(`/proc/${pid}/stat`, 'utf8'),
    ]);
    const uid = /^Uid:\s+(\d+)/m.exec(status);
    return { pid, uid: uid ? Number(uid[1]) : -1, start: startTime(stat), argv };
  } catch {
    return null; // the process ended, or is not ours to read
  }
}

/**
 * The processes whose argv passes `wanted` (default: every one): /proc on Linux, where only
 * those are read past their command line, `ps -axww -o pid=,uid=,args=` elsewhere.
 */
export async function listProcesses(wanted: (argv: string[]) => boolean = () => true): Promise<ProcessInfo[]> {
  if (process.platform === 'linux') {
    const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
    const infos = await Promise.all(pids.map((pid) => procInfo(Number(pid), wanted)));
    return infos.filter((p): p is ProcessInfo => p !== null);
  }
  // ps joins arguments with spaces; an argument with a space in it is split, which --rpc lists never have.
  // child_process (and node:net behind it) loads only here, where there is no /proc.
  const { execFile } = await import('node:child_process');
  const { stdout } = await promisify(execFile)('ps', ['-axww', '-o', 'pid=,uid=,args='], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 3)
    .map(([pid, uid, ...argv]) => ({ pid: Number(pid), uid: Number(uid), start: 0, argv }))
    .filter((p) => wanted(p.argv));
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

/** A coordinator whose --rpc list named a candidate: what vouches for a busy server. */
export interface Coordinator {
  pid: number;
  start: number;
  uid: number;
  name: string;
}

export interface ProcessFindings {
  candidates: (Candidate & { coordinator: Coordinator })[];
  dropped: Dropped[];
  /** Coordinators run by users this resolver does not trust, and why each was skipped. */
  skipped: string[];
  message: string;
}

/**
 * Candidates from running coordinators. Only coordinators run by this user or by root count
 * (`trustAllUsers` widens it): another user's process must not choose where we connect.
 */
export async function processCandidates(trustAllUsers = false): Promise<ProcessFindings> {
  const found: ProcessFindings = { candidates: [], dropped: [], skipped: [], message: '' };
  const me = process.getuid?.() ?? -1;
  let coordinators = 0;
  let listed = 0;
  let unlisted = 0;
  for (const p of await listProcesses(isCoordinator)) {
    // A coordinator started through an interpreter (sh, python3) is named by its script; any
    // user can name a process anything, so the name is printed as a peer's text.
    const name = peerText(
      basename(p.argv.slice(0, 2).find((a) => COORDINATORS.has(basename(a))) ?? p.argv[0] ?? '?'),
      64,
    );
    if (!trustAllUsers && me !== -1 && p.uid !== me && p.uid !== 0) {
      const why = `pid ${p.pid} (${name}) runs as uid ${p.uid}, not this user (${me}) or root; --trust-all-users counts it`;
      found.skipped.push(why);
      // Its servers are named, never connected to: dropped with why, so a person sees them.
      for (const list of rpcLists(p.argv)) {
        for (const c of parseRpcList(list, 'process').candidates) {
          if (listed++ >= UNTRUSTED_LISTED) unlisted++;
          else found.dropped.push({ host: c.host, port: c.port, reason: `named by an untrusted coordinator: ${why}` });
        }
      }
      continue;
    }
    coordinators++;
    const coordinator: Coordinator = { pid: p.pid, start: p.start, uid: p.uid, name };
    for (const list of rpcLists(p.argv)) {
      const parsed = parseRpcList(list, 'process');
      found.candidates.push(...parsed.candidates.map((c) => ({ ...c, coordinator })));
      found.dropped.push(...parsed.dropped);
    }
  }
  found.message = `${coordinators} coordinator process${coordinators === 1 ? '' : 'es'}${found.skipped.length ? `, ${found.skipped.length} of other users skipped` : ''}`;
  if (unlisted > 0) found.skipped.push(`${unlisted} more servers named by other users' coordinators, not listed`);
  return found;
}
