// The DNS-SD view: mDNS records → candidates, bounded. Packets are encoded and decoded by
// dns-packet (what multicast-dns hands us), then mutated: bytes flipped before decoding,
// fields replaced after it.
import * as dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';

import { parseAddress } from '../../lib/common/addresses.js';
import { InvalidOptionError } from '../../lib/common/errors.js';
import { normalizeResolveOptions, normalizeWatchOptions, SOURCE_NAMES } from '../../lib/common/options.js';
import { instanceLabel, srvTargetHost } from '../../lib/dns-sd/announcer.js';
import { announcementRecords } from '../../lib/dns-sd/mdns-wire.js';
import { linkOrigin } from '../../lib/dns-sd/browser.js';
import type { Resolution } from '../../lib/resolver/types.js';
import { verifyCandidates, type VerifyContext } from '../../lib/resolver/verify.js';
import { FollowedSet } from '../../lib/watch/followed.js';
import { takeResolution } from '../../lib/watch/intake.js';
import { DNS_SD_LIMITS, DnsSdView, normalName, parseTxt, serviceType } from '../../lib/dns-sd/records.js';
import {
  DNS_SD_RESOLVE_GAP_AGAIN_MS,
  DNS_SD_RESOLVE_GAP_MS,
  dnsSdResolveGapMs,
  resolvesNow,
} from '../../lib/watch/dns-sd-watch.js';
import { rng } from '../helpers/rng.js';
import { ajv } from '../helpers/schemas.js';

const TYPE = '_llama-rpc._tcp.local';
const LAN = { address: '192.168.7.20', interface: 'eth0' };
const LO = { address: '127.0.0.1', interface: 'lo' };

/** One instance's full announcement, as a responder sends it. */
function announcement(
  label: string,
  {
    host = 'gpu-1.local',
    port = 50052,
    address = '192.168.7.20',
    ttl = 120,
    txt = ['protovers=3.0.0', 'devices=1'],
  } = {},
): dnsPacket.Answer[] {
  const instance = `${label}.${TYPE}`;
  return [
    { name: TYPE, type: 'PTR', ttl, data: instance },
    { name: instance, type: 'SRV', ttl, data: { priority: 0, weight: 0, port, target: host } },
    { name: instance, type: 'TXT', ttl, data: txt },
    { name: host, type: 'A', ttl, data: address },
  ];
}

/** Through the wire format and back, as multicast-dns delivers a response. */
function wire(answers: dnsPacket.Answer[]): unknown[] {
  const decoded = dnsPacket.decode(dnsPacket.encode({ type: 'response', answers }));
  return [...(decoded.answers ?? []), ...(decoded.additionals ?? [])];
}

describe('DnsSdView', () => {
  it('turns PTR, SRV, TXT and A into a candidate with its instance, interface and TXT', () => {
    const view = new DnsSdView([TYPE]);
    const taken = view.take(wire(announcement('gpu node 1')), LAN, 0);
    expect(taken.changed).toBe(true);
    expect(view.candidates(1000)).toEqual([
      {
        host: '192.168.7.20',
        port: 50052,
        instance: 'gpu node 1',
        type: TYPE,
        interface: 'eth0',
        txt: { protovers: '3.0.0', devices: '1' },
      },
    ]);
  });

  it('reads a packet in any record order, and ignores other service types', () => {
    const view = new DnsSdView([TYPE]);
    view.take(wire([...announcement('a')].reverse()), LAN, 0);
    view.take(wire([{ name: '_http._tcp.local', type: 'PTR', ttl: 120, data: 'x._http._tcp.local' }]), LAN, 0);
    expect(view.candidates(0).map((c) => c.instance)).toEqual(['a']);
    expect(view.size).toBe(1);
  });

  it('withdraws an instance on a goodbye (TTL 0) and when its TTL runs out', () => {
    const view = new DnsSdView([TYPE]);
    view.take(wire([...announcement('a'), ...announcement('b', { host: 'gpu-2.local', ttl: 10 })]), LAN, 0);
    expect(view.candidates(0)).toHaveLength(2);
    const bye = view.take(wire([{ name: TYPE, type: 'PTR', ttl: 0, data: `a.${TYPE}` }]), LAN, 1000);
    expect(bye.changed).toBe(true);
    expect(view.candidates(1000).map((c) => c.instance)).toEqual(['b']);
    expect(view.candidates(10_000)).toEqual([]);
    expect(view.expire(10_000)).toBe(true);
    expect(view.size).toBe(0);
  });

  it('caps a TTL, so a peer cannot pin an entry for days', () => {
    const view = new DnsSdView([TYPE]);
    view.take(wire(announcement('a', { ttl: 7 * 86_400 })), LAN, 0);
    expect(view.candidates(DNS_SD_LIMITS.ttlSeconds * 1000 - 1)).toHaveLength(1);
    expect(view.candidates(DNS_SD_LIMITS.ttlSeconds * 1000)).toEqual([]);
  });

  it('refuses a loopback address a neighbour names, and keeps one this host names', () => {
    const view = new DnsSdView([TYPE]);
    const lan = view.take(wire(announcement('lan', { address: '127.0.0.1' })), LAN, 0);
    expect(lan.refused.join('\n')).toMatch(/loopback address from 192\.168\.7\.20/);
    view.take(wire(announcement('local', { host: 'me.local', address: '127.0.0.1' })), LO, 0);
    expect(view.candidates(0).map((c) => c.instance)).toEqual(['local']);
  });

  it("never lets a neighbour's instance reach a loopback address this host announced", () => {
    const view = new DnsSdView([TYPE]);
    view.take(wire(announcement('local', { host: 'me.local', address: '127.0.0.1' })), LO, 0);
    // A neighbour's own instance pointing at our host name, and its SRV for our instance.
    view.take(wire(announcement('evil', { host: 'me.local', port: 9999, address: '192.168.7.20' })), LAN, 0);
    const srv = view.take(
      wire([
        {
          name: `local.${TYPE}`,
          type: 'SRV',
          ttl: 120,
          data: { priority: 0, weight: 0, port: 22, target: 'me.local' },
        },
      ]),
      LAN,
      0,
    );
    expect(srv.refused.join('\n')).toMatch(/192\.168\.7\.20 is not its announcer/);
    const loopback = view.candidates(0).filter((c) => c.host === '127.0.0.1');
    expect(loopback).toEqual([expect.objectContaining({ instance: 'local', port: 50052 })]);
    // A goodbye or refresh from another sender does not touch the instance either.
    view.take(wire([{ name: TYPE, type: 'PTR', ttl: 0, data: `local.${TYPE}` }]), LAN, 0);
    expect(view.candidates(0).map((c) => c.instance)).toContain('local');
  });

  it('refuses a name it could not send back as it came: a label over 63 bytes, invalid UTF-8', () => {
    expect(normalName(`${'a'.repeat(63)}.local.`)).toBe(`${'a'.repeat(63)}.local`);
    expect(normalName(`${'a'.repeat(64)}.local`)).toBeUndefined();
    expect(normalName(`${'é'.repeat(32)}.local`)).toBeUndefined(); // 64 bytes
    expect(normalName('bad\uFFFDname.local')).toBeUndefined();
    // Through the wire: a label of 40 invalid bytes decodes to 40 × U+FFFD (120 bytes).
    const view = new DnsSdView([TYPE]);
    const packet = dnsPacket.encode({
      type: 'response',
      answers: [{ name: TYPE, type: 'PTR', ttl: 120, data: `${'x'.repeat(40)}.${TYPE}` }],
    });
    packet.fill(0xff, packet.indexOf('x'.repeat(40)), packet.indexOf('x'.repeat(40)) + 40);
    const taken = view.take(dnsPacket.decode(packet).answers ?? [], LAN, 0);
    expect(taken.refused).toEqual([`PTR ${TYPE}: its instance is not of that type`]);
    expect(view.size).toBe(0);
    expect(view.missing()).toEqual([]);
  });

  it("reads TXT keys that name an object's own properties as plain keys", () => {
    const entries = parseTxt(['constructor=1', '__proto__=2', 'toString=3', 'constructor=4']);
    expect(Object.entries(entries ?? {})).toEqual([
      ['constructor', '1'],
      ['__proto__', '2'],
      ['tostring', '3'],
    ]);
  });

  it('refuses a TXT record over 1300 bytes but keeps the instance', () => {
    const view = new DnsSdView([TYPE]);
    const huge = Array.from({ length: 8 }, (_, i) => `k${i}=${'x'.repeat(250)}`);
    const taken = view.take(wire(announcement('a', { txt: huge })), LAN, 0);
    expect(taken.refused.join('\n')).toMatch(/TXT .* over 1300 bytes/);
    expect(view.candidates(0)).toMatchObject([{ instance: 'a', txt: {} }]);
    expect(parseTxt([Buffer.alloc(256, 0x61)])).toBeUndefined();
  });

  it('reads only the first records of a packet', () => {
    const view = new DnsSdView([TYPE]);
    const answers = Array.from({ length: 100 }, (_, i) => ({
      name: TYPE,
      type: 'PTR' as const,
      ttl: 120,
      data: `i${i}.${TYPE}`,
    }));
    const taken = view.take(wire(answers), LAN, 0);
    expect(view.size).toBe(DNS_SD_LIMITS.recordsPerPacket);
    expect(taken.refused[0]).toMatch(/36 records over the per-packet limit/);
  });

  it('keeps at most 64 instances from one source and 1024 in all', () => {
    const view = new DnsSdView([TYPE]);
    for (let p = 0; p < 4; p++) {
      const ptrs = Array.from({ length: 32 }, (_, i) => ({
        name: TYPE,
        type: 'PTR' as const,
        ttl: 120,
        data: `p${p}-${i}.${TYPE}`,
      }));
      view.take(wire(ptrs), LAN, 0);
    }
    expect(view.size).toBe(DNS_SD_LIMITS.instancesPerSource);
    for (let s = 0; s < 40; s++) {
      const ptrs = Array.from({ length: 32 }, (_, i) => ({
        name: TYPE,
        type: 'PTR' as const,
        ttl: 120,
        data: `s${s}-${i}.${TYPE}`,
      }));
      view.take(wire(ptrs), { address: `10.0.${s}.1`, interface: 'eth0' }, 0);
    }
    expect(view.size).toBe(DNS_SD_LIMITS.instances);
  });

  it("gives a source its room back as its instances leave (a goodbye, a TTL's end)", () => {
    const view = new DnsSdView([TYPE]);
    const ptrs = (prefix: string, ttl: number, n: number) =>
      wire(
        Array.from({ length: n }, (_, i) => ({ name: TYPE, type: 'PTR' as const, ttl, data: `${prefix}${i}.${TYPE}` })),
      );
    view.take(ptrs('a', 120, 32), LAN, 0);
    view.take(ptrs('b', 10, 32), LAN, 0);
    expect(view.take(ptrs('c', 120, 1), LAN, 0).refused.join()).toMatch(/names 64 instances already/);
    view.take(ptrs('a', 0, 16), LAN, 1000); // 16 goodbyes
    view.expire(10_000); // b's 32 expire
    view.take(ptrs('c', 120, 48), LAN, 10_000);
    expect(view.size).toBe(DNS_SD_LIMITS.instancesPerSource);
    expect(view.take(ptrs('d', 120, 1), LAN, 10_000).refused.join()).toMatch(/names 64 instances already/);
  });

  it('asks for what an instance lacks: SRV and TXT, then its host', () => {
    const view = new DnsSdView([TYPE]);
    view.take(wire([{ name: TYPE, type: 'PTR', ttl: 120, data: `a.${TYPE}` }]), LAN, 0);
    expect(view.missing()).toEqual([
      { name: `a.${TYPE}`, type: 'SRV' },
      { name: `a.${TYPE}`, type: 'TXT' },
    ]);
    view.take(wire(announcement('a').slice(1, 3)), LAN, 0);
    expect(view.missing()).toEqual([
      { name: 'gpu-1.local', type: 'A' },
      { name: 'gpu-1.local', type: 'AAAA' },
    ]);
  });

  it('reads service types in either form and refuses what is not one', () => {
    expect(serviceType('_ggml-rpc._tcp')).toBe('_ggml-rpc._tcp.local');
    expect(serviceType('_LLAMA-rpc._tcp.local.')).toBe('_llama-rpc._tcp.local');
    expect(serviceType('ggml-rpc')).toBeUndefined();
    expect(serviceType(`_${'a'.repeat(16)}._tcp`)).toBeUndefined();
  });
});

describe('announce, read back', () => {
  it("names a host of its own in SRV, never the system's <hostname>.local", () => {
    expect(srvTargetHost('gpu-node-1')).toBe('gpu-node-1-rpc.local');
    expect(srvTargetHost('GPU node #1')).toBe('gpu-node-1-rpc.local');
    expect(srvTargetHost('ünï')).toBe('n-rpc.local');
    expect(srvTargetHost('ßß')).toBe('scan-backends-rpc.local');
    const long = srvTargetHost(instanceLabel('x'.repeat(80)));
    expect(long.split('.')[0]).toHaveLength(63);
    expect(long.endsWith('-rpc.local')).toBe(true);
  });

  it('what announce sends is what the view reads, and its goodbye withdraws it', () => {
    const a = {
      instance: instanceLabel(`gpu.node.${'x'.repeat(80)}`),
      type: '_ggml-rpc._tcp.local',
      host: 'node.local',
      port: 50052,
      addresses: ['192.168.7.20', 'fd00::7'],
      txt: { txtvers: '1', protovers: '3.0.0', devices: '2', memory: String(48 * 2 ** 30), long: 'y'.repeat(400) },
    };
    expect(Buffer.byteLength(a.instance)).toBe(63);
    const view = new DnsSdView([a.type]);
    expect(view.take(wire(announcementRecords(a, 120)), LAN, 0).refused).toEqual([]);
    const found = view.candidates(0);
    expect(found.map((c) => c.host)).toEqual(['192.168.7.20', 'fd00::7']);
    expect(found[0]).toMatchObject({ instance: a.instance, port: 50052, txt: { protovers: '3.0.0', devices: '2' } });
    expect(found[0]!.txt.long!.length).toBeLessThanOrEqual(128);
    view.take(wire(announcementRecords(a, 0)), LAN, 1);
    expect(view.candidates(1)).toEqual([]);
  });
});

describe('DnsSdView fuzz (seeded, bounded)', () => {
  const SEED = 0x6d64_6e73;
  const ROUNDS = 3000;

  it(`${ROUNDS} mutated responses leave a bounded view of well-formed candidates (seed ${SEED.toString(16)})`, () => {
    const next = rng(SEED);
    const int = (n: number) => Math.floor(next() * n);
    const junk = (): unknown =>
      [
        undefined,
        null,
        -1,
        0,
        65536,
        2 ** 31,
        1.5,
        '',
        'x'.repeat(300),
        `${'a.'.repeat(130)}local`,
        '::1',
        '8.8.8.8',
        'fe80::1',
        `q.${TYPE}`,
        TYPE,
        [Buffer.alloc(300)],
        { port: 70000, target: 'h.local' },
        { port: 1, target: 5 },
        {},
        [],
      ][int(20)];
    const view = new DnsSdView([TYPE, '_ggml-rpc._tcp.local']);
    const outcomes = { decoded: 0, undecodable: 0, refused: 0 };
    const started = Date.now();
    for (let round = 0; round < ROUNDS; round++) {
      const origin = { address: `192.168.${int(4)}.${1 + int(200)}`, interface: 'eth0' };
      const answers = announcement(`n${int(50)}`, {
        host: `h${int(20)}.local`,
        port: 1 + int(65535),
        address: int(4) === 0 ? `fd00::${int(99)}` : `192.168.1.${int(255)}`,
        ttl: int(5) === 0 ? 0 : int(300),
        txt: Array.from({ length: int(6) }, (_, i) => `k${i}=${'v'.repeat(int(260))}`),
      }).map((a) => ({ ...a, type: a.type === 'A' && a.data.includes(':') ? ('AAAA' as const) : a.type }));
      let records: unknown[];
      try {
        const bytes = dnsPacket.encode({ type: 'response', answers: answers as dnsPacket.Answer[] });
        if (round % 2 === 0) {
          for (let flips = 1 + int(6); flips > 0; flips--) {
            const at = int(bytes.length);
            bytes[at] = (bytes[at] as number) ^ (1 << int(8));
          }
        }
        const decoded = dnsPacket.decode(bytes);
        records = [...(decoded.answers ?? []), ...(decoded.additionals ?? [])];
        outcomes.decoded++;
      } catch {
        outcomes.undecodable++; // multicast-dns drops these as a 'warning'
        continue;
      }
      if (round % 3 === 0) {
        // A decoded record whose fields are anything at all: the view checks every one.
        const r = records[int(records.length)] as Record<string, unknown> | undefined;
        if (r) r[['name', 'type', 'ttl', 'data'][int(4)] as string] = junk();
      }
      try {
        const taken = view.take(records, origin, round * 100);
        outcomes.refused += taken.refused.length;
        view.expire(round * 100);
      } catch (error) {
        throw new Error(`round ${round} (seed ${SEED.toString(16)}): ${String(error)}`, { cause: error });
      }
      expect(view.size).toBeLessThanOrEqual(DNS_SD_LIMITS.instances);
      // Plain checks, one expect per round: thousands of expects a round would be the cost.
      const bad = view.candidates(round * 100).filter(
        (c) =>
          parseAddress(c.host) === null ||
          c.host.startsWith('127.') || // only LAN origins here
          !(c.port >= 1 && c.port <= 65535) ||
          c.instance.length > 63 ||
          Object.keys(c.txt).length > DNS_SD_LIMITS.txtKeys,
      );
      expect(bad, `round ${round}`).toEqual([]);
    }
    // Each outcome occurs, or the mutations are not reaching the view.
    expect(outcomes.decoded).toBeGreaterThan(ROUNDS / 4);
    expect(outcomes.undecodable).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
    console.log(`dns-sd fuzz: ${JSON.stringify(outcomes)} in ${Date.now() - started} ms, seed ${SEED.toString(16)}`);
  }, 120_000);
});

describe('an unspecified address (it reaches this host)', () => {
  it('is never a candidate, even with --allow-public and --allow-link-local', async () => {
    const view = new DnsSdView([TYPE]);
    // ::ffff:0:0 is ::ffff:0.0.0.0 as dns-packet writes it.
    const hosts = ['0.0.0.0', '0.1.2.3', '::', '::ffff:0:0', '192.168.7.21'];
    for (const [i, address] of hosts.entries()) {
      const records = announcement(`n${i}`, { host: `n${i}.local`, address });
      if (address.includes(':')) records[3] = { name: `n${i}.local`, type: 'AAAA', ttl: 120, data: address };
      view.take(wire(records), LAN, 0);
    }
    const candidates = view.candidates(0).map((c) => ({ host: c.host, port: c.port, source: 'dns-sd' as const }));
    expect(candidates.map((c) => c.host)).toEqual(hosts);
    // verify: false stops after the guards: nothing here is connected to.
    const ctx = { verify: false, allowPublic: true, allowLinkLocal: true, lookup: async () => [] };
    const { kept, dropped } = await verifyCandidates(candidates, ctx as unknown as VerifyContext);
    expect(kept.map((b) => b.host)).toEqual(['192.168.7.21']);
    expect(dropped.map((d) => d.host)).toEqual(hosts.slice(0, 4));
    for (const d of dropped) expect(d.reason).toMatch(/an unspecified address .*never connected to/);
  });
});

describe("a followed backend's DNS-SD provenance", () => {
  it('goes when dns-sd no longer names it, while another source still does', async () => {
    const followed = new FollowedSet(normalizeWatchOptions({}), { check: () => {}, event: () => {} });
    const dnsSd = { instance: 'a', type: TYPE, interface: 'eth0', txt: { devices: '1' } };
    const backend = { host: '192.168.7.20', port: 50052, verified: true, evidence: 'hello' as const };
    const resolution = (b: object) => ({ backends: [b], sources: [] }) as unknown as Resolution;
    await takeResolution(followed, resolution({ ...backend, sources: ['dns-sd', 'scan'], dnsSd }), undefined);
    expect(followed.get('192.168.7.20:50052')?.view.dnsSd).toEqual(dnsSd);
    await takeResolution(followed, resolution({ ...backend, sources: ['scan'] }), undefined);
    const view = followed.get('192.168.7.20:50052')?.view;
    expect(view?.sources).toEqual(['scan']);
    expect(view && 'dnsSd' in view).toBe(false);
  });
});

describe("serve's /api/backends schema", () => {
  it('takes a dropped server from every source, dns-sd included', () => {
    const dropped = ajv.compile({ $ref: 'serve-backends.schema.json#/properties/dropped' });
    for (const source of SOURCE_NAMES) {
      expect(dropped([{ host: '192.168.7.20', port: 50052, source, reason: 'x' }]), source).toBe(true);
    }
    expect(dropped([{ host: '192.168.7.20', port: 50052, source: 'mdns', reason: 'x' }])).toBe(false);
  });
});

describe('the dns-sd options', () => {
  it('leave dns-sd out of the default chain, and refuse a service type that is not one', () => {
    expect(normalizeResolveOptions({}).sources).not.toContain('dns-sd');
    expect(normalizeResolveOptions({ sources: ['dns-sd'], dnsSdTypes: ['_x-rpc._tcp'] })).toMatchObject({
      sources: ['dns-sd'],
      dnsSdWaitMs: 1500,
    });
    expect(() => normalizeResolveOptions({ dnsSdTypes: ['x-rpc._tcp'] })).toThrow(InvalidOptionError);
    expect(() => normalizeResolveOptions({ dnsSdTypes: [] })).toThrow(/1\.\.16 service types/);
    expect(() => normalizeResolveOptions({ dnsSdWaitMs: 0 })).toThrow(/dnsSdWaitMs: must be an integer 10\.\.60000/);
  });
});

describe('a response from off the local link', () => {
  const iface = (address: string, cidr: string, family: 'IPv4' | 'IPv6') => ({
    address,
    cidr,
    family,
    netmask: '',
    mac: '00:00:00:00:00:00',
    internal: false,
    scopeid: 0,
  });
  const table = {
    lo: [iface('127.0.0.1', '127.0.0.1/8', 'IPv4')],
    eth0: [iface('192.168.7.2', '192.168.7.2/24', 'IPv4')],
  };

  it('is ignored (RFC 6762 §11): only senders on a local subnet are neighbours', () => {
    expect(linkOrigin('192.168.7.20', table)).toEqual({ address: '192.168.7.20', interface: 'eth0' });
    expect(linkOrigin('127.0.0.9', table)).toEqual({ address: '127.0.0.9', interface: 'lo' });
    expect(linkOrigin('203.0.113.5', table)).toBeUndefined();
    expect(linkOrigin('192.168.8.20', table)).toBeUndefined();
    expect(linkOrigin('not an address', table)).toBeUndefined();
  });
});

describe("a watcher's early resolves (DNS-SD changes)", () => {
  it('the first comes a second after the last resolve, the next ones in a row farther apart', () => {
    expect(dnsSdResolveGapMs(0, 200)).toBe(DNS_SD_RESOLVE_GAP_MS);
    expect(dnsSdResolveGapMs(1, 200)).toBe(DNS_SD_RESOLVE_GAP_AGAIN_MS);
    expect(DNS_SD_RESOLVE_GAP_AGAIN_MS).toBeGreaterThanOrEqual(5000);
    // A slow resolve (a scan): resolves take at most half the time.
    expect(dnsSdResolveGapMs(0, 4000)).toBe(8000);
    expect(dnsSdResolveGapMs(3, 4000)).toBe(8000);
  });

  it('never take the place of a due health round; a requested or regular resolve does', () => {
    const due = { requested: false, resolve: true, early: true, health: true };
    expect(resolvesNow(due)).toBe(false);
    expect(resolvesNow({ ...due, health: false })).toBe(true);
    expect(resolvesNow({ ...due, early: false })).toBe(true);
    expect(resolvesNow({ ...due, requested: true })).toBe(true);
    expect(resolvesNow({ ...due, resolve: false, early: false, health: false })).toBe(false);
  });
});
