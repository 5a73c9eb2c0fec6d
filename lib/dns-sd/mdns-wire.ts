// Everything typed by multicast-dns and dns-packet, kept out of the modules the package
// exports: their declarations name neither, so a TypeScript consumer needs no @types for them.
import makeMdns from 'multicast-dns';
import type { Answer } from 'dns-packet';

import { parseAddress } from '../common/addresses.js';
import { SourceUnavailableError } from '../common/errors.js';
import { txtStrings, type Announcement } from './records.js';

export const MDNS_PORT = 5353;
export const MDNS_GROUP = '224.0.0.251';

export type MulticastDns = makeMdns.MulticastDNS;
export type MdnsAnswer = Answer;

/** A socket joined to the mDNS group on port 5353, for the browser and the announcer. */
export async function openMdns(): Promise<MulticastDns> {
  const mdns = makeMdns({ port: MDNS_PORT, ip: MDNS_GROUP });
  try {
    await new Promise<void>((resolve, reject) => {
      mdns.once('ready', () => resolve());
      mdns.once('error', reject);
    });
  } catch (error) {
    await new Promise<void>((resolve) => mdns.destroy(() => resolve()));
    throw new SourceUnavailableError(
      `cannot listen for multicast DNS on port ${MDNS_PORT}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  mdns.on('error', () => {}); // once open: a send that fails is retried by the next query or answer
  mdns.on('warning', () => {});
  return mdns;
}

/** An announcement's records at `ttl` (0: the goodbye): PTR, SRV, TXT, then the host's addresses. */
export function announcementRecords(a: Announcement, ttl: number): MdnsAnswer[] {
  const name = `${a.instance}.${a.type}`;
  const out: MdnsAnswer[] = [
    { name: a.type, type: 'PTR', ttl, data: name },
    { name, type: 'SRV', ttl, flush: true, data: { priority: 0, weight: 0, port: a.port, target: a.host } },
    { name, type: 'TXT', ttl, flush: true, data: txtStrings(a.txt) },
  ];
  for (const address of a.addresses) {
    const family = parseAddress(address)?.family;
    if (family === 4) out.push({ name: a.host, type: 'A', ttl, flush: true, data: address });
    if (family === 6) out.push({ name: a.host, type: 'AAAA', ttl, flush: true, data: address });
  }
  return out;
}
