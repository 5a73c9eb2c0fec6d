// Source "scan": the network scan, probing every open port for ggml-rpc.
import { scanAll, type ScanOptions } from '../scan.js';
import { localSubnetTargets } from '../targets.js';
import { parseAddress } from '../addresses.js';
import { heldKey } from './held.js';
import type { Backend, Dropped } from './types.js';
import { judgeAll, type VerifyContext } from './verify.js';

export interface ScanSourceOptions extends VerifyContext {
  /** Targets in the scan grammar; default: the local private subnets. */
  subnet?: string | readonly string[];
  ports?: ScanOptions['ports'];
}

export async function scanSource(
  options: ScanSourceOptions,
): Promise<{ kept: Backend[]; dropped: Dropped[]; found: number; message: string }> {
  let targets = options.subnet;
  if (targets === undefined) {
    targets = localSubnetTargets().cidrs;
    if (targets.length === 0) throw new Error('no local private IPv4 subnet to scan; name one (subnet, --subnet)');
  }
  const report = await scanAll(targets, {
    ...options,
    ports: options.ports,
    probe: options.verify ? ['ggml-rpc'] : false,
  });
  let kept: Backend[] = [];
  let dropped: Dropped[] = [];
  const open = report.results.filter((r) => r.state === 'open');
  if (!options.verify) {
    kept = open.map((r) => ({ host: r.host, port: r.port, sources: ['scan'], verified: false, rttMs: r.rttMs }));
  } else {
    ({ kept, dropped } = await judgeAll(
      open.map((result) => {
        const address = parseAddress(result.host);
        const key = address ? heldKey(address.family, address.value, result.port) : result.host;
        return { owner: { host: result.host, port: result.port, sources: ['scan'] }, key, result };
      }),
      options,
    ));
  }
  const list = [targets].flat().join(', ');
  return { kept, dropped, found: open.length, message: `scanned ${report.results.length} host:port pairs of ${list}` };
}
