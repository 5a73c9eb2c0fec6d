// The network namespace the netns project runs in (scripts/test.sh starts vitest under
// `unshare -rn`). Firewall rules are only ever added after checking that the namespace holds
// nothing but loopback: never on the host.
import { execFileSync } from 'node:child_process';
import { networkInterfaces } from 'node:os';

import { requireTools } from './tools.js';

/** Throws unless this process is in an isolated namespace with only `lo`. Brings `lo` up. */
export function enterIsolatedNamespace(): void {
  requireTools(['ip', 'iproute2'], ['nft', 'nftables']);
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(':')[1]?.trim());
  if (links.length !== 1 || links[0] !== 'lo') {
    throw new Error(
      `netns tests must run inside "unshare -rn" (only lo); this namespace has ${links.join(', ')}. Run them with npm test.`,
    );
  }
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  if (!Object.keys(networkInterfaces()).every((name) => name === 'lo')) {
    throw new Error('unexpected interfaces in the test namespace');
  }
}

/** Replaces the namespace's ruleset with `ruleset` (nft syntax). */
export function setFirewall(ruleset: string): void {
  execFileSync('nft', ['-f', '-'], { input: `flush ruleset\n${ruleset}\n` });
}

export function clearFirewall(): void {
  execFileSync('nft', ['flush', 'ruleset']);
}

/** Drops every SYN to `port` on 127.0.0.0/8 except to the hosts listed: those become filtered. */
export function dropAllBut(port: number, answering: readonly string[]): void {
  const keep = answering.length > 0 ? `ip daddr != { ${answering.join(', ')} } ` : '';
  setFirewall(`table inet scan_backends_test {
  chain input {
    type filter hook input priority 0;
    ${keep}tcp dport ${port} drop
  }
}`);
}

/**
 * As dropAllBut, and `lossy` (one of `answering`) loses the first SYN each source address
 * sends it: an nft set remembers the source and lets later SYNs through, as a lossy link
 * would. forgetLostSyns() makes the next SYN the first again. With `per: 'connection'` the
 * set remembers address and port, so every new connection loses its first SYN and is answered
 * only at the kernel's own retransmission, a second later: a far host, as the connect sees it.
 */
export function loseFirstSyn(
  port: number,
  answering: readonly string[],
  lossy: string,
  per: 'source' | 'connection' = 'source',
): void {
  const [type, key] =
    per === 'source' ? ['ipv4_addr', 'ip saddr'] : ['ipv4_addr . inet_service', 'ip saddr . tcp sport'];
  setFirewall(`table inet scan_backends_test {
  set lossy_seen {
    type ${type}
    flags dynamic
  }
  chain input {
    type filter hook input priority 0;
    ip daddr != { ${answering.join(', ')} } tcp dport ${port} drop
    ip daddr ${lossy} tcp dport ${port} tcp flags & (syn | ack) == syn ${key} != @lossy_seen add @lossy_seen { ${key} } drop
  }
}`);
}

/** Empties loseFirstSyn's set; returns the source addresses it held (whose SYN was lost). */
export function forgetLostSyns(): string[] {
  const listed = execFileSync('nft', ['-j', 'list', 'set', 'inet', 'scan_backends_test', 'lossy_seen'], {
    encoding: 'utf8',
  });
  execFileSync('nft', ['flush', 'set', 'inet', 'scan_backends_test', 'lossy_seen']);
  const set = (JSON.parse(listed) as { nftables: { set?: { elem?: string[] } }[] }).nftables.find((o) => o.set)?.set;
  return set?.elem ?? [];
}
