// Source "scan": the network scan, probing every open port for ggml-rpc.
import { scanAll, ScanJob, type ScanOptions, type ScanResult, type ScanTiming } from '../scan/job.js';
import { localSubnetTargets } from '../scan/targets/local-subnets.js';
import { resolveTargets } from '../scan/targets/grammar.js';
import { parseAddress } from '../common/addresses.js';
import { heldKey } from './held.js';
import type { Backend, Dropped } from './types.js';
import { heldBackend, judgeAll, type VerifyContext } from './verify.js';

export interface ScanSourceOptions extends VerifyContext {
  /** Targets in the scan grammar; default: the local private subnets. */
  subnet?: string | readonly string[];
  ports?: ScanOptions['ports'];
}

export async function scanSource(options: ScanSourceOptions): Promise<{
  kept: Backend[];
  dropped: Dropped[];
  found: number;
  scanned: number;
  message: string;
  timing: ScanTiming | undefined;
}> {
  let targets = options.subnet;
  if (targets === undefined) {
    targets = localSubnetTargets().cidrs;
    if (targets.length === 0) throw new Error('no local private IPv4 subnet to scan; name one (subnet, --subnet)');
  }
  const scanOptions: ScanOptions = { ...options, ports: options.ports, probe: options.verify ? ['ggml-rpc'] : false };
  // A server a trusted coordinator holds is not connected to (its two-slot accept queue is
  // that client's): it is taken out of the scan and kept busy, as the other sources do.
  const held = options.verify ? await options.witnesses.held() : new Map<string, string>();
  const heldFound: Backend[] = [];
  let report: { results: ScanResult[]; timing?: ScanTiming };
  if (held.size === 0) report = await scanAll(targets, scanOptions);
  else {
    const endpoints = (await resolveTargets(targets, scanOptions)).filter((e) => {
      const why = held.get(heldKey(e.family, e.value, e.port));
      if (why !== undefined) heldFound.push(heldBackend({ host: e.host, port: e.port, sources: ['scan'] }, why));
      return why === undefined;
    });
    const results: ScanResult[] = [];
    const job = new ScanJob({ endpoints }, scanOptions);
    for await (const r of job) results.push(r);
    report = { results, timing: job.timing };
  }
  let kept: Backend[] = [...heldFound];
  let dropped: Dropped[] = [];
  const open = report.results.filter((r) => r.state === 'open');
  if (!options.verify) {
    kept = open.map((r): Backend => ({
      host: r.host,
      port: r.port,
      sources: ['scan'],
      verified: false,
      rttMs: r.rttMs,
    }));
  } else {
    let judged: Backend[];
    ({ kept: judged, dropped } = await judgeAll(
      open.map((result) => {
        const address = parseAddress(result.host);
        const key = address ? heldKey(address.family, address.value, result.port) : result.host;
        return { owner: { host: result.host, port: result.port, sources: ['scan'] }, key, result };
      }),
      options,
    ));
    kept.push(...judged);
  }
  const list = [targets].flat().join(', ');
  const skipped = heldFound.length > 0 ? `; ${heldFound.length} held by a coordinator, not connected to` : '';
  return {
    kept,
    dropped,
    found: open.length + heldFound.length,
    scanned: report.results.length,
    message: `scanned ${report.results.length} host:port pairs of ${list}${skipped}`,
    timing: report.timing,
  };
}
