// What multicast DNS answers say, kept bounded: PTR names an instance of a browsed type, SRV
// its host and port, TXT its details, A/AAAA the host's addresses. Every answer is a peer's
// word: only the first records of a packet are read, names and TXT are capped, one source
// can name only so many instances, TTLs expire what is not repeated, and a goodbye (TTL 0)
// withdraws at once. Candidates come out only when PTR, SRV and an address are all live; the
// resolver's guards and probe judge them like any other source's.
import { isLoopbackAddress, parseAddress } from '../common/addresses.js';
import { peerText } from '../common/peer-text.js';

/** The service types browsed unless the caller names others: what llama.cpp tools announce. */
export const DEFAULT_SERVICE_TYPES: readonly string[] = ['_ggml-rpc._tcp.local', '_llama-rpc._tcp.local'];

export const DNS_SD_LIMITS = {
  /** Answers and additionals read per packet; the rest are ignored (a packet holds ~9 KB). */
  recordsPerPacket: 64,
  /** Instances kept in all; more are refused until some expire. */
  instances: 1024,
  /** Instances one source address may name, so one loud host cannot fill the table. */
  instancesPerSource: 64,
  /** Addresses kept per host name. */
  addressesPerHost: 8,
  /** A DNS name's length on the wire, and one label's (RFC 1035 §2.3.4). */
  nameBytes: 255,
  labelBytes: 63,
  /** A TXT record's bytes in all, and per string (RFC 6763 §6.1 suggests ≤ 1300 in all). */
  txtBytes: 1300,
  txtStringBytes: 255,
  /** TXT keys kept per instance. */
  txtKeys: 16,
  /** A TTL longer than this is read as this: a peer cannot pin an entry for days. */
  ttlSeconds: 4500,
} as const;

/** One mDNS record as dns-packet decodes it; every field is checked before use. */
export interface MdnsRecord {
  name?: unknown;
  type?: unknown;
  ttl?: unknown;
  data?: unknown;
}

/** Where a packet came from: the sender's address and the local interface it reached. */
export interface PacketOrigin {
  address: string;
  interface: string;
}

/** An instance found, with all it needs to be a candidate. */
export interface DnsSdCandidate {
  /** An address from the host's A/AAAA records. */
  host: string;
  port: number;
  /** The instance's own label ("gpu-node-1"), made safe to print. */
  instance: string;
  /** The service type, "_ggml-rpc._tcp.local". */
  type: string;
  /** The local interface its answers reached. */
  interface: string;
  /** TXT key=value pairs, made safe to print. */
  txt: Record<string, string>;
}

interface Timed {
  expiresAt: number;
}

interface Instance extends Timed {
  instance: string;
  type: string;
  origin: PacketOrigin;
  srv?: { target: string; port: number } & Timed;
  txt?: { entries: Record<string, string> } & Timed;
}

/** What one packet did to the view. */
export interface TakeResult {
  changed: boolean;
  /** Records refused, each with why (for a debug log; counted, never printed raw). */
  refused: string[];
}

/** One packet being taken: where it came from, when, what it did, and the hosts SRV records name. */
interface Packet {
  origin: PacketOrigin;
  now: number;
  result: TakeResult;
  named?: Set<string>;
}

const RECORD_ORDER: Record<string, number> = { PTR: 0, SRV: 1, TXT: 1, A: 2, AAAA: 2 };

/**
 * A DNS name as compared: lowercase, no trailing dot; undefined when it is not a name we read.
 * Names we keep are sent back in our questions, so each must encode again as it came: a label
 * over 63 bytes (dns-packet would write a wrong length byte) or with U+FFFD (invalid UTF-8,
 * which re-encodes longer) is refused.
 */
export function normalName(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return undefined;
  const name = value.replace(/\.$/, '').toLowerCase();
  if (Buffer.byteLength(name) > DNS_SD_LIMITS.nameBytes || name.includes('\uFFFD')) return undefined;
  if (name.split('.').some((label) => Buffer.byteLength(label) > DNS_SD_LIMITS.labelBytes)) return undefined;
  return name;
}

/** A service type as browsed: "_ggml-rpc._tcp" or "_ggml-rpc._tcp.local" → the .local form. */
export function serviceType(text: string): string | undefined {
  const name = normalName(text.endsWith('.local') || text.endsWith('.local.') ? text : `${text}.local`);
  return name !== undefined && /^_[a-z0-9-]{1,15}\._(tcp|udp)\.local$/.test(name) ? name : undefined;
}

/**
 * TXT strings (Buffers) as key=value pairs, bounded; undefined when the record is over a
 * limit (the whole record is refused: a cut TXT would say something the peer did not).
 */
export function parseTxt(data: unknown): Record<string, string> | undefined {
  const strings = Array.isArray(data) ? data : [data];
  let total = 0;
  // No prototype: a key named "constructor" or "__proto__" is a key like any other.
  const entries: Record<string, string> = Object.create(null) as Record<string, string>;
  let keys = 0;
  for (const s of strings) {
    const bytes = Buffer.isBuffer(s) ? s : typeof s === 'string' ? Buffer.from(s) : undefined;
    if (!bytes || bytes.length > DNS_SD_LIMITS.txtStringBytes) return undefined;
    total += bytes.length + 1;
    if (total > DNS_SD_LIMITS.txtBytes) return undefined;
    if (bytes.length === 0) continue;
    const text = bytes.toString('utf8');
    const eq = text.indexOf('=');
    const key = (eq < 0 ? text : text.slice(0, eq)).toLowerCase();
    // RFC 6763 §6.4: printable ASCII keys but "="; the first occurrence of a key wins.
    if (!/^[\x20-\x3c\x3e-\x7e]{1,32}$/.test(key) || Object.hasOwn(entries, key)) continue;
    if (++keys > DNS_SD_LIMITS.txtKeys) return undefined;
    entries[key] = eq < 0 ? '' : peerText(text.slice(eq + 1), 128);
  }
  return entries;
}

/** A packet this host sent (to itself, over loopback). */
function isLocal(origin: PacketOrigin): boolean {
  return isLoopbackAddress(origin.address);
}

function ttlOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0
    ? Math.min(value, DNS_SD_LIMITS.ttlSeconds)
    : undefined;
}

/**
 * The browsed view: instances of the types asked for and the addresses of their hosts.
 * Pure: time comes in as `now` (ms), packets as decoded records.
 */
export class DnsSdView {
  readonly #types: ReadonlySet<string>;
  readonly #instances = new Map<string, Instance>();
  /** Instances per sender address, kept with #instances: no walk of the table per record. */
  readonly #perSource = new Map<string, number>();
  readonly #hosts = new Map<string, Map<string, Timed & { origin: PacketOrigin }>>();

  constructor(types: readonly string[]) {
    this.#types = new Set(types);
  }

  get size(): number {
    return this.#instances.size;
  }

  /** Takes the records of one response packet (answers and additionals, in that order). */
  take(records: readonly unknown[], origin: PacketOrigin, now: number): TakeResult {
    const result: TakeResult = { changed: false, refused: [] };
    const read = records
      .slice(0, DNS_SD_LIMITS.recordsPerPacket)
      .filter(
        (r): r is MdnsRecord => typeof r === 'object' && r !== null && typeof (r as MdnsRecord).type === 'string',
      );
    if (records.length > DNS_SD_LIMITS.recordsPerPacket) {
      result.refused.push(`${records.length - DNS_SD_LIMITS.recordsPerPacket} records over the per-packet limit`);
    }
    // PTR before SRV/TXT before addresses: a packet may carry them in any order.
    read.sort((a, b) => (RECORD_ORDER[a.type as string] ?? 3) - (RECORD_ORDER[b.type as string] ?? 3));
    const packet: Packet = { origin, now, result };
    for (const r of read) {
      const why = this.#takeOne(r, packet);
      if (why !== undefined) result.refused.push(peerText(why, 300)); // it names the peer's names
    }
    return result;
  }

  /** One record; a string says why it was refused. */
  #takeOne(r: MdnsRecord, packet: Packet): string | undefined {
    const { origin, now, result } = packet;
    const name = normalName(r.name);
    const ttl = ttlOf(r.ttl);
    if (name === undefined || ttl === undefined) return `${String(r.type)}: a name or TTL out of bounds`;
    const expiresAt = now + ttl * 1000;
    if (r.type === 'PTR') {
      if (!this.#types.has(name)) return undefined; // another type: not ours to keep
      const target = normalName(r.data);
      if (target === undefined || !target.endsWith(`.${name}`)) return `PTR ${name}: its instance is not of that type`;
      const label = target.slice(0, -(name.length + 1));
      if (label.length === 0) return `PTR ${name}: an empty instance name`;
      const known = this.#instances.get(target);
      if (known && known.origin.address !== origin.address)
        return `PTR ${name}: ${origin.address} is not its announcer`;
      if (ttl === 0) {
        if (known) result.changed = this.#drop(target, known);
        return undefined;
      }
      if (known) {
        known.expiresAt = expiresAt;
        return undefined;
      }
      if (this.#instances.size >= DNS_SD_LIMITS.instances)
        return `PTR ${name}: ${DNS_SD_LIMITS.instances} instances kept already`;
      const fromSource = this.#perSource.get(origin.address) ?? 0;
      if (fromSource >= DNS_SD_LIMITS.instancesPerSource) {
        return `PTR ${name}: ${origin.address} names ${DNS_SD_LIMITS.instancesPerSource} instances already`;
      }
      this.#instances.set(target, { instance: peerText(label, 63), type: name, origin, expiresAt });
      this.#perSource.set(origin.address, fromSource + 1);
      result.changed = true;
      return undefined;
    }
    if (r.type === 'SRV' || r.type === 'TXT') {
      const instance = this.#instances.get(name);
      if (!instance) return undefined; // not an instance we browse
      // An instance is its announcer's word: another sender cannot repoint or relabel it.
      if (instance.origin.address !== origin.address)
        return `${r.type} ${name}: ${origin.address} is not its announcer`;
      if (r.type === 'SRV') {
        const data = r.data as { port?: unknown; target?: unknown } | undefined;
        const port = data?.port;
        const target = normalName(data?.target);
        if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535 || target === undefined) {
          return `SRV ${name}: a port or target out of bounds`;
        }
        if (ttl === 0) {
          if (instance.srv) result.changed = delete instance.srv;
          return undefined;
        }
        if (instance.srv?.target !== target || instance.srv.port !== port) result.changed = true;
        instance.srv = { target, port, expiresAt };
        return undefined;
      }
      if (ttl === 0) {
        delete instance.txt;
        return undefined;
      }
      const entries = parseTxt(r.data);
      if (!entries) return `TXT ${name}: over ${DNS_SD_LIMITS.txtBytes} bytes or ${DNS_SD_LIMITS.txtKeys} keys`;
      instance.txt = { entries, expiresAt };
      return undefined;
    }
    if (r.type === 'A' || r.type === 'AAAA') {
      // Addresses come after every SRV of the packet: the hosts named are gathered once a packet.
      packet.named ??= this.#namedHosts();
      if (!packet.named.has(name)) return undefined; // no SRV names it
      const address = typeof r.data === 'string' ? parseAddress(r.data) : undefined;
      if (!address || address.family !== (r.type === 'A' ? 4 : 6)) return `${r.type} ${name}: not an address`;
      const text = r.data as string;
      // A neighbour cannot point us at our own loopback: only this host's answers may name it.
      if (isLoopbackAddress(text) && !isLocal(origin)) {
        return `${r.type} ${name}: a loopback address from ${origin.address}`;
      }
      let addresses = this.#hosts.get(name);
      if (ttl === 0) {
        if (addresses?.delete(text)) result.changed = true;
        return undefined;
      }
      if (!addresses) this.#hosts.set(name, (addresses = new Map()));
      if (!addresses.has(text)) {
        if (addresses.size >= DNS_SD_LIMITS.addressesPerHost)
          return `${r.type} ${name}: ${DNS_SD_LIMITS.addressesPerHost} addresses kept already`;
        result.changed = true;
      }
      addresses.set(text, { expiresAt, origin });
      return undefined;
    }
    return undefined;
  }

  /** Drops what has expired, and hosts no instance names; whether anything left. */
  expire(now: number): boolean {
    let changed = false;
    for (const [key, i] of this.#instances) {
      if (i.expiresAt <= now) {
        this.#drop(key, i);
        changed = true;
        continue;
      }
      if (i.srv && i.srv.expiresAt <= now) {
        delete i.srv;
        changed = true;
      }
      if (i.txt && i.txt.expiresAt <= now) delete i.txt;
    }
    const named = this.#namedHosts();
    for (const [host, addresses] of this.#hosts) {
      for (const [a, t] of addresses) {
        if (t.expiresAt > now) continue;
        addresses.delete(a);
        changed = true;
      }
      if (addresses.size === 0 || !named.has(host)) this.#hosts.delete(host);
    }
    return changed;
  }

  /** The host names some instance's SRV names. */
  #namedHosts(): Set<string> {
    return new Set([...this.#instances.values()].flatMap((i) => (i.srv ? [i.srv.target] : [])));
  }

  #drop(key: string, instance: Instance): boolean {
    const left = (this.#perSource.get(instance.origin.address) ?? 1) - 1;
    if (left > 0) this.#perSource.set(instance.origin.address, left);
    else this.#perSource.delete(instance.origin.address);
    return this.#instances.delete(key);
  }

  /** Every live instance with an address: one candidate per address. */
  candidates(now: number): DnsSdCandidate[] {
    const out: DnsSdCandidate[] = [];
    for (const i of this.#instances.values()) {
      if (i.expiresAt <= now || !i.srv || i.srv.expiresAt <= now) continue;
      const txt = i.txt && i.txt.expiresAt > now ? i.txt.entries : {};
      for (const [address, t] of this.#hosts.get(i.srv.target) ?? []) {
        if (t.expiresAt <= now) continue;
        // Host names are shared by every instance: a loopback address is a candidate only when
        // this host named the instance and the address, never when a neighbour's SRV points at
        // a name this host gave 127.x.
        if (isLoopbackAddress(address) && !(isLocal(i.origin) && isLocal(t.origin))) continue;
        out.push({
          host: address,
          port: i.srv.port,
          instance: i.instance,
          type: i.type,
          interface: t.origin.interface,
          txt,
        });
      }
    }
    return out;
  }

  /** The questions still open: SRV/TXT of instances without them, addresses of hosts without any. */
  missing(): { name: string; type: 'SRV' | 'TXT' | 'A' | 'AAAA' }[] {
    const out: { name: string; type: 'SRV' | 'TXT' | 'A' | 'AAAA' }[] = [];
    for (const [name, i] of this.#instances) {
      if (!i.srv) out.push({ name, type: 'SRV' });
      if (!i.txt) out.push({ name, type: 'TXT' });
      if (i.srv && !this.#hosts.get(i.srv.target)?.size) {
        out.push({ name: i.srv.target, type: 'A' }, { name: i.srv.target, type: 'AAAA' });
      }
    }
    return out;
  }
}

/** One service instance as `announce` advertises it. */
export interface Announcement {
  /** The instance label ("gpu-node-1"): dots become dashes, at most 63 bytes. */
  instance: string;
  /** "_ggml-rpc._tcp.local". */
  type: string;
  /** The host name the SRV record names (srvTargetHost: "gpu-node-1-rpc.local"). */
  host: string;
  port: number;
  /** What the host's A/AAAA records say. */
  addresses: readonly string[];
  txt: Readonly<Record<string, string>>;
}

/** TXT strings (key=value), within the limits the browser reads: 255 bytes each, 16 keys. */
export function txtStrings(txt: Readonly<Record<string, string>>): Buffer[] {
  return Object.entries(txt)
    .slice(0, DNS_SD_LIMITS.txtKeys)
    .map(([k, v]) => Buffer.from(`${k}=${v}`).subarray(0, DNS_SD_LIMITS.txtStringBytes));
}
