// Source "scan": the network scan, probing every open port for ggml-rpc.
import { scanAll, type ScanOptions } from '../scan.js';
import { chooseLocalSubnets } from '../targets.js';
import type { Backend, Dropped } from './types.js';
import { judge, type VerifyOptions } from './verify.js';

export interface ScanSourceOptions extends VerifyOptions {
  /** Targets in the scan grammar; default: the local private subnets. */
  subnet?: string | readonly string[];
  ports?: ScanOptions['ports'];
  verify: boolean;
}

export async function scanSource(
  options: ScanSourceOptions,
): Promise<{ kept: Backend[]; dropped: Dropped[]; found: number; message: string }> {
  let targets = options.subnet;
  if (targets === undefined) {
    const choice = chooseLocalSubnets();
    if (choice.subnets.length === 0) throw new Error('no local private IPv4 subnet to scan; pass --subnet');
    targets = choice.subnets.map((s) => s.cidr);
  }
  const report = await scanAll(targets, {
    ...options,
    ports: options.ports,
    probe: options.verify ? ['ggml-rpc'] : false,
  });
  const kept: Backend[] = [];
  const dropped: Dropped[] = [];
  const open = report.results.filter((r) => r.state === 'open');
  for (const r of open) {
    if (!options.verify) {
      kept.push({ host: r.host, port: r.port, sources: ['scan'], verified: false, rttMs: r.rttMs });
      continue;
    }
    const verdict = judge(r, options.timeoutMs ?? 1000);
    if ('backend' in verdict) kept.push({ ...verdict.backend, sources: ['scan'] });
    else dropped.push({ host: r.host, port: r.port, reason: verdict.reason });
  }
  const list = [targets].flat().join(', ');
  return { kept, dropped, found: open.length, message: `scanned ${report.results.length} host:port pairs of ${list}` };
}
