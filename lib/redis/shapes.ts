// The shapes of what watchers write to the Redis, and the checks that turn a value read from
// it (anyone's) into one of them, or into the reason it is not one.
import { peerText } from '../common/peer-text.js';
import type { WatchEvent } from '../watch/types.js';

export interface ScannerInfo {
  id: string;
  host: string;
  pid: number;
  version: string;
  /** What its scan source covers (its whole list, leased or not). */
  subnets: string[];
  /** The subnets it holds the lease of. */
  scanning: string[];
  startedAt: string;
  /** ISO time of its last heartbeat. */
  heartbeatAt: string;
  /** Its heartbeat period: it is stale three of these after heartbeatAt. */
  heartbeatMs?: number;
}

/** Who holds a claim on a server (claims.ts): the watcher whose coordinator uses it. */
export interface ClaimHolder {
  watcher: string;
  /** The holder's host name, as it says. */
  host: string;
  pid: number;
  /** ISO time of the claim. */
  at: string;
}

/** What another watcher's event says, reduced to what is used: a hint, never a verdict. */
export interface RemoteEvent {
  origin: string;
  event: {
    type: WatchEvent['type'];
    backend: { host: string; port: number; state: WatchEvent['backend']['state'] };
    cause: { saw: string };
  };
}

const EVENT_TYPES = new Set(['added', 'removed', 'up', 'down', 'changed']);

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;
const isPort = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
const isTextList = (v: unknown, max: number): v is string[] =>
  Array.isArray(v) && v.length <= 4096 && v.every((s) => isText(s, max));

/** A registration of the right shape, or why not. */
export function parseScanner(value: unknown): ScannerInfo | string {
  if (!isRecord(value)) return 'not an object';
  const { id, host, pid, version, subnets, scanning, startedAt, heartbeatAt, heartbeatMs } = value;
  if (!isText(id, 256) || id === '') return 'no id';
  if (!isText(host, 256) || !isText(version, 64) || !isText(startedAt, 64) || !isText(heartbeatAt, 64))
    return 'a field is missing or not text';
  if (!Number.isSafeInteger(pid)) return 'pid is not a number';
  if (!isTextList(subnets, 256) || !isTextList(scanning, 256)) return 'subnets or scanning is not a list of text';
  if (heartbeatMs !== undefined && !(Number.isSafeInteger(heartbeatMs) && (heartbeatMs as number) > 0))
    return 'heartbeatMs is not a duration';
  const info: ScannerInfo = { id, host, pid: pid as number, version, subnets, scanning, startedAt, heartbeatAt };
  if (heartbeatMs !== undefined) info.heartbeatMs = heartbeatMs as number;
  return info;
}

/** An event of the right shape, reduced to what is used, or why not. */
export function parseRemote(value: unknown): RemoteEvent | string {
  if (!isRecord(value)) return 'not an object';
  const { origin, event } = value;
  if (!isText(origin, 256) || origin === '') return 'no origin';
  if (!isRecord(event)) return 'no event';
  const { type, backend, cause } = event;
  if (typeof type !== 'string' || !EVENT_TYPES.has(type)) return 'not an event type';
  if (!isRecord(backend) || !isText(backend.host, 253) || backend.host === '' || !isPort(backend.port))
    return 'no backend host and port';
  if (backend.state !== 'up' && backend.state !== 'down') return 'no backend state';
  if (!isRecord(cause) || !isText(cause.saw, 4096)) return 'no cause';
  return {
    origin: peerText(origin, 200),
    event: {
      type: type as WatchEvent['type'],
      backend: { host: backend.host, port: backend.port, state: backend.state },
      cause: { saw: peerText(cause.saw, 300) },
    },
  };
}

/** A claim's value of the right shape (its signature checked apart), or why not. */
export function parseClaim(value: unknown): ClaimHolder | string {
  if (!isRecord(value)) return 'not an object';
  const { watcher, host, pid, at } = value;
  if (!isText(watcher, 256) || watcher === '') return 'no watcher';
  if (!isText(host, 256) || !isText(at, 64)) return 'host or at is missing or not text';
  if (!Number.isSafeInteger(pid)) return 'pid is not a number';
  if (Number.isNaN(Date.parse(at))) return 'at is not a time';
  return { watcher, host, pid: pid as number, at };
}
