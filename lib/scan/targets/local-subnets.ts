// The machine's own private subnets: what the scan source scans when told nothing.
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';

import { formatAddress, parseIPv4 } from '../../common/addresses.js';
import { isNonPublicRange, touchesLinkLocal } from './guards.js';

export interface LocalSubnet {
  cidr: string;
  interface: string;
  address: string;
}

export interface LocalSubnetChoice {
  subnets: LocalSubnet[];
  skipped: { interface: string; address: string; reason: string }[];
}

function netmaskPrefix(netmask: string): number {
  const value = parseIPv4(netmask);
  if (typeof value === 'string') return 32;
  let prefix = 0;
  for (let bit = 31n; bit >= 0n && (value >> bit) & 1n; bit--) prefix++;
  return prefix;
}

/**
 * The default targets: the /24 around each non-internal IPv4 address of the machine (a larger
 * subnet clamps to that /24; a smaller one is kept). Public addresses are skipped. Takes the
 * interface table as an argument so tests never read, let alone scan, the real one.
 */
export function chooseLocalSubnets(
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): LocalSubnetChoice {
  const choice: LocalSubnetChoice = { subnets: [], skipped: [] };
  const seen = new Set<string>();
  for (const [name, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      if (info.internal || info.family !== 'IPv4') continue;
      const value = parseIPv4(info.address);
      if (typeof value === 'string') continue;
      const prefix = Math.max(24, netmaskPrefix(info.netmask));
      const hostBits = BigInt(32 - prefix);
      const network = (value >> hostBits) << hostBits;
      const range = { family: 4 as const, first: network, last: network + (1n << hostBits) - 1n };
      if (!isNonPublicRange(range)) {
        choice.skipped.push({ interface: name, address: info.address, reason: 'public address' });
        continue;
      }
      if (touchesLinkLocal(range)) {
        choice.skipped.push({ interface: name, address: info.address, reason: 'link-local address' });
        continue;
      }
      const cidr = `${formatAddress({ family: 4, value: network })}/${prefix}`;
      if (seen.has(cidr)) continue;
      seen.add(cidr);
      choice.subnets.push({ cidr, interface: name, address: info.address });
    }
  }
  return choice;
}

/**
 * The default targets when none are named: the subnets chooseLocalSubnets picks, as CIDR
 * blocks, and a line for each choice and skip, to say out loud (a LAN scan is never a surprise).
 */
export function localSubnetTargets(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): {
  cidrs: string[];
  notes: string[];
} {
  const choice = chooseLocalSubnets(interfaces);
  const notes = choice.skipped.map((s) => `skipping ${s.interface} (${s.address}): ${s.reason}`);
  if (choice.subnets.length > 0) {
    notes.push(
      `no targets given; scanning local subnets ${choice.subnets.map((s) => `${s.cidr} (${s.interface})`).join(', ')}`,
    );
  }
  return { cidrs: choice.subnets.map((s) => s.cidr), notes };
}
