// Which servers a running coordinator holds right now: an ESTABLISHED TCP connection from the
// coordinator's process to the server, read from /proc (the coordinator's socket inodes, and
// /proc/net/tcp{,6}). A held ggml-rpc server serves that client alone, so a probe could only
// fill its two-slot accept queue (and block the coordinator's own reconnect); a held server is
// reported busy without being connected to. Linux only; elsewhere nothing is known held.
import { readdir, readFile, readlink } from 'node:fs/promises';
import { endianness } from 'node:os';

import type { AddressFamily } from '../common/addresses.js';

/** "family:value:port" of an address and port: how held connections are looked up. */
export function heldKey(family: AddressFamily, value: bigint, port: number): string {
  return `${family}:${value}:${port}`;
}

// /proc/net/tcp prints each address as 32-bit words in host byte order.
function wordValue(hex: string): bigint {
  const bytes = Buffer.from(hex, 'hex');
  if (endianness() === 'LE') bytes.reverse();
  return BigInt(`0x${bytes.toString('hex') || '0'}`);
}

function parseRemote(text: string, family: AddressFamily): { value: bigint; port: number } | null {
  const [addr, port] = text.split(':');
  if (!addr || !port) return null;
  let value = 0n;
  for (let i = 0; i < addr.length; i += 8) value = (value << 32n) | wordValue(addr.slice(i, i + 8));
  // An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) is that IPv4 address.
  if (family === 6 && value >> 32n === 0xffffn) return { value: value & 0xffffffffn, port: parseInt(port, 16) };
  return { value, port: parseInt(port, 16) };
}

/**
 * An ESTABLISHED line of /proc/net/tcp{,6} (state 01): its remote address:port and its inode.
 * One regex over the file, not a split per line: a busy host has thousands of TIME_WAIT lines.
 */
const ESTABLISHED_LINE = /^ *\d+: \S+ ([0-9A-F]+:[0-9A-F]+) 01 \S+ \S+ \S+ +\d+ +\d+ (\d+)/gm;

/** Socket inode → the remote end, for every ESTABLISHED TCP connection of this namespace. */
async function establishedByInode(): Promise<Map<string, string>> {
  const byInode = new Map<string, string>();
  for (const [file, family] of [
    ['/proc/net/tcp', 4],
    ['/proc/net/tcp6', 6],
  ] as const) {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const [, remoteText, inode] of text.matchAll(ESTABLISHED_LINE)) {
      const remote = parseRemote(remoteText as string, family);
      if (!remote) continue;
      const mapped = family === 6 && (remoteText as string).startsWith('0000000000000000FFFF0000');
      byInode.set(inode as string, heldKey(mapped ? 4 : family, remote.value, remote.port));
    }
  }
  return byInode;
}

/**
 * The remote ends (heldKey) of every ESTABLISHED connection here: one read of /proc/net/tcp{,6},
 * so a watcher can tell that nobody holds its backends without listing processes.
 */
export async function establishedRemotes(): Promise<Set<string>> {
  if (process.platform !== 'linux') return new Set();
  return new Set((await establishedByInode()).values());
}

/** For each server a process of `pids` holds a connection to: the pid that holds it. */
export async function heldServers(pids: readonly number[]): Promise<Map<string, number>> {
  const held = new Map<string, number>();
  if (process.platform !== 'linux' || pids.length === 0) return held;
  const byInode = await establishedByInode();
  if (byInode.size === 0) return held;
  await Promise.all(
    pids.map(async (pid) => {
      const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
      for (const fd of fds) {
        const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        const key = inode === undefined ? undefined : byInode.get(inode);
        if (key !== undefined) held.set(key, pid);
      }
    }),
  );
  return held;
}
