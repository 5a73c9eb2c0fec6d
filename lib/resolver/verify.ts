// Verification: a candidate is a live backend only when it connects and answers as a ggml-rpc
// server that a coordinator can use now or once it is free (serving or busy).
import { parseAddress } from '../addresses.js';
import { formatHostPort } from '../host-port.js';
import { ScanJob, type ScanOptions, type ScanResult } from '../scan.js';
import type { Endpoint, LookupFn } from '../targets.js';
import type { Backend, Candidate, Dropped, SourceName } from './types.js';

export type VerifyOptions = Pick<ScanOptions, 'timeoutMs' | 'probeTimeoutMs' | 'rpcVersion' | 'engine' | 'signal'>;

/** Keeps or drops one scanned-and-probed result, saying why. */
export function judge(
  result: ScanResult,
  timeoutMs: number,
): { backend: Omit<Backend, 'sources'> } | { reason: string } {
  if (result.state === 'closed') return { reason: 'closed (connection refused)' };
  if (result.state === 'filtered') return { reason: `no answer within ${timeoutMs} ms` };
  if (result.state !== 'open') return { reason: `${result.state} (${result.error ?? 'unknown error'})` };
  if (result.service !== 'ggml-rpc')
    return { reason: `not a ggml-rpc server: ${result.reason ?? 'no answer to HELLO'}` };
  if (result.health !== 'serving' && result.health !== 'busy')
    return { reason: result.reason ?? `ggml-rpc ${result.health}` };
  const backend: Omit<Backend, 'sources'> = {
    host: result.host,
    port: result.port,
    verified: true,
    rttMs: result.rttMs,
    service: result.service,
    health: result.health,
  };
  if (result.rpc) backend.rpc = result.rpc;
  return { backend };
}

/** Candidates once each, in order, with every source that named them. */
export function dedupe(candidates: readonly Candidate[]): { host: string; port: number; sources: SourceName[] }[] {
  const byKey = new Map<string, { host: string; port: number; sources: SourceName[] }>();
  for (const c of candidates) {
    const key = formatHostPort(c);
    const entry = byKey.get(key) ?? { host: c.host, port: c.port, sources: [] };
    if (!entry.sources.includes(c.source)) entry.sources.push(c.source);
    byKey.set(key, entry);
  }
  return [...byKey.values()];
}

/**
 * Connects to and probes every candidate (ggml-rpc), all at once; names are resolved first
 * and those that do not resolve are dropped. With `verify: false` every candidate that
 * resolves is kept unverified.
 */
export async function verifyCandidates(
  candidates: readonly Candidate[],
  options: VerifyOptions & { verify: boolean; lookup: LookupFn },
): Promise<{ kept: Backend[]; dropped: Dropped[] }> {
  const kept: Backend[] = [];
  const dropped: Dropped[] = [];
  const endpoints: Endpoint[] = [];
  const owners: { host: string; port: number; sources: SourceName[] }[] = [];
  for (const c of dedupe(candidates)) {
    let address = parseAddress(c.host);
    if (!address) {
      try {
        address = (await options.lookup(c.host))[0] ?? null;
      } catch (error) {
        dropped.push({
          host: c.host,
          port: c.port,
          reason: `name does not resolve (${(error as { code?: string }).code ?? 'lookup failed'})`,
        });
        continue;
      }
      if (!address) {
        dropped.push({ host: c.host, port: c.port, reason: 'name resolves to no address' });
        continue;
      }
    }
    endpoints.push({ host: c.host, family: address.family, port: c.port, value: address.value });
    owners.push(c);
  }
  if (!options.verify) {
    return { kept: owners.map((o) => ({ ...o, verified: false })), dropped };
  }
  if (endpoints.length === 0) return { kept, dropped };
  const timeoutMs = options.timeoutMs ?? 1000;
  const job = new ScanJob({ endpoints }, { ...options, probe: ['ggml-rpc'] });
  const results = new Map<string, ScanResult>();
  for await (const r of job) results.set(formatHostPort(r), r);
  for (const owner of owners) {
    const result = results.get(formatHostPort(owner)) as ScanResult;
    const verdict = judge(result, timeoutMs);
    if ('backend' in verdict) kept.push({ ...verdict.backend, sources: owner.sources });
    else dropped.push({ host: owner.host, port: owner.port, reason: verdict.reason });
  }
  return { kept, dropped };
}
