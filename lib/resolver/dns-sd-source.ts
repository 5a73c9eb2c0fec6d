// Source "dns-sd": the instances multicast DNS announces for the browsed service types. An
// answer is a neighbour's word, no more: each address passes the same guards as a registry
// entry (public and link-local space refused unless allowed) and the same HELLO before it is
// a backend, and what the guards refuse is never connected to.
import { formatHostPort } from '../common/host-port.js';
import { browsedTypes, browseOnce, type DnsSdCandidate } from '../dns-sd/browser.js';
import type { Backend, Dropped } from './types.js';
import { verifyCandidates, type VerifyContext } from './verify.js';

/** What a browse saw: its candidates, and how it looked ("browsed … for 1500 ms"). */
export interface DnsSdFound {
  candidates: DnsSdCandidate[];
  message: string;
}

/** A one-shot browse's settings. */
export interface DnsSdBrowse {
  types: readonly string[] | undefined;
  waitMs: number;
  signal: AbortSignal | undefined;
}

export async function dnsSdSource(
  ctx: VerifyContext,
  from: (() => DnsSdFound) | DnsSdBrowse,
): Promise<{ kept: Backend[]; dropped: Dropped[]; found: number; message: string }> {
  let found: DnsSdFound;
  if (typeof from === 'function') found = from();
  else {
    const types = browsedTypes(from.types);
    const candidates = await browseOnce({ types, waitMs: from.waitMs, signal: from.signal });
    found = { candidates, message: `browsed ${types.join(', ')} for ${from.waitMs} ms` };
  }
  const byKey = new Map<string, DnsSdCandidate>();
  for (const c of found.candidates) if (!byKey.has(formatHostPort(c))) byKey.set(formatHostPort(c), c);
  const checked = await verifyCandidates(
    [...byKey.values()].map((c) => ({ host: c.host, port: c.port, source: 'dns-sd' as const })),
    ctx,
  );
  const kept = checked.kept.map((b) => {
    const c = byKey.get(formatHostPort(b));
    return c ? { ...b, dnsSd: { instance: c.instance, type: c.type, interface: c.interface, txt: c.txt } } : b;
  });
  const dropped = checked.dropped.map((d) => {
    const c = byKey.get(formatHostPort(d));
    return c ? { ...d, reason: `${d.reason} (announced as "${c.instance}" on ${c.interface})` } : d;
  });
  const instances = new Set(found.candidates.map((c) => `${c.instance}.${c.type}`)).size;
  return { kept, dropped, found: byKey.size, message: `${found.message}: ${instances} instances` };
}
