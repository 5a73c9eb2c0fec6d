// The DNS-SD browser: multicast DNS on the machine's IPv4 interfaces (multicast-dns does the
// wire format), questions for the browsed types' PTR records and then for whatever an
// instance still lacks, and every response fed to the bounded view. A one-shot browse listens
// for a bounded time; a continuous one re-asks on RFC 6762's doubling interval and keeps the
// view current (TTLs, goodbyes). It never connects to what it finds: the resolver does that,
// through its guards and its probe.
import { networkInterfaces } from 'node:os';

import { addressBits, parseAddress } from '../common/addresses.js';
import { InvalidOptionError } from '../common/errors.js';
import { MDNS_PORT, openMdns, type MulticastDns } from './mdns-wire.js';
import { DEFAULT_SERVICE_TYPES, DnsSdView, serviceType, type DnsSdCandidate, type PacketOrigin } from './records.js';

export { DEFAULT_SERVICE_TYPES, type DnsSdCandidate } from './records.js';

/** mDNS's port and IPv4 group (RFC 6762 §3). */

/** Packets one source may send per second before the rest of that second is ignored. */
const PACKETS_PER_SOURCE_PER_SECOND = 20;
/** Sources rate-tracked at once; past this the table starts over (a flood of spoofed senders). */
const TRACKED_SOURCES = 1024;
/** RFC 6762 §5.2: continuous querying starts at 1 s and doubles; we stop doubling at 60 s. */
const FIRST_QUERY_DELAY_MS = 1000;
const MAX_QUERY_DELAY_MS = 60_000;
/** Questions asked in one query packet about instances that lack SRV, TXT or an address. */
const FOLLOW_UP_QUESTIONS = 16;
/** How long the interface table a packet's interface is found in is kept (one read, not one a packet). */
const INTERFACES_TTL_MS = 5000;

export interface BrowseOptions {
  /** Service types ("_ggml-rpc._tcp" or "….local"); default DEFAULT_SERVICE_TYPES. */
  types?: readonly string[];
  signal?: AbortSignal;
  /** Called (debounced to the event loop turn) when the set of candidates may have changed. */
  onChange?: () => void;
  /** Refused records, for a debug log. */
  onRefused?: (why: string, origin: PacketOrigin) => void;
}

/** The types to browse in their .local form ("_ggml-rpc._tcp" → "_ggml-rpc._tcp.local"). */
export function browsedTypes(types: readonly string[] | undefined): string[] {
  return (types ?? DEFAULT_SERVICE_TYPES).map((t) => {
    const type = serviceType(t);
    if (type === undefined)
      throw new InvalidOptionError(`types: expected a service type such as "_ggml-rpc._tcp", got "${t}"`);
    return type;
  });
}

/** The local interface whose subnet holds `address` ("lo", "eth0"), or "?". */
export function interfaceOf(address: string, interfaces = networkInterfaces()): string {
  const a = parseAddress(address);
  if (!a) return '?';
  for (const [name, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      const [base, prefix] = info.cidr?.split('/') ?? [];
      const net = base === undefined ? null : parseAddress(base);
      if (!net || net.family !== a.family) continue;
      const shift = addressBits(a.family) - BigInt(Number(prefix));
      if (a.value >> shift === net.value >> shift) return name;
    }
  }
  return '?';
}

/**
 * A response's origin, or undefined when its sender is not on a local link (RFC 6762 §11):
 * the socket also takes unicast from anywhere with source port 5353, and that is no neighbour.
 */
export function linkOrigin(address: string, interfaces = networkInterfaces()): PacketOrigin | undefined {
  const name = interfaceOf(address, interfaces);
  return name === '?' ? undefined : { address, interface: name };
}

/** A continuous browse: open() joins the group and asks; close() leaves. */
export class DnsSdBrowser {
  readonly #types: readonly string[];
  readonly #view: DnsSdView;
  readonly #options: BrowseOptions;
  readonly #mdns: MulticastDns;
  readonly #sources = new Map<string, { second: number; packets: number }>();
  #timer: NodeJS.Timeout | undefined;
  #expiry: NodeJS.Timeout | undefined;
  #delayMs = FIRST_QUERY_DELAY_MS;
  #changePending = false;
  #closed = false;
  #interfaces = { table: networkInterfaces(), at: performance.now() };
  readonly #onAbort = () => void this.close();

  private constructor(types: readonly string[], options: BrowseOptions, mdns: MulticastDns) {
    this.#types = types;
    this.#view = new DnsSdView(types);
    this.#options = options;
    this.#mdns = mdns;
  }

  /** Joins the mDNS group on every IPv4 interface and sends the first question. */
  static async open(options: BrowseOptions = {}): Promise<DnsSdBrowser> {
    options.signal?.throwIfAborted();
    const types = browsedTypes(options.types);
    const browser = new DnsSdBrowser(types, options, await openMdns());
    await browser.#start();
    return browser;
  }

  async #start(): Promise<void> {
    const mdns = this.#mdns;
    // RFC 6762 §6: a response not from port 5353 is not a multicast DNS answer.
    mdns.on('response', (packet, rinfo) => rinfo.port === MDNS_PORT && this.#onResponse(packet, rinfo.address));
    this.#options.signal?.addEventListener('abort', this.#onAbort, { once: true });
    // An abort while the socket was binding fired before the listener was there.
    if (this.#options.signal?.aborted) {
      await this.close();
      this.#options.signal.throwIfAborted();
    }
    this.#ask();
  }

  #onResponse(packet: { answers?: unknown[]; additionals?: unknown[] }, address: string): void {
    if (this.#closed || !this.#admit(address)) return;
    const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
    if (performance.now() - this.#interfaces.at > INTERFACES_TTL_MS) {
      this.#interfaces = { table: networkInterfaces(), at: performance.now() };
    }
    const origin = linkOrigin(address, this.#interfaces.table);
    if (!origin) {
      this.#options.onRefused?.('a response from off the local link', { address, interface: '?' });
      return;
    }
    const result = this.#view.take(records, origin, Date.now());
    for (const why of result.refused) this.#options.onRefused?.(why, origin);
    if (result.changed) this.#changed();
    this.#scheduleExpiry();
  }

  /** Per-source rate: a flood from one address costs a counter, never the view's work. */
  #admit(address: string): boolean {
    const second = Math.floor(Date.now() / 1000);
    if (this.#sources.size >= TRACKED_SOURCES && !this.#sources.has(address)) this.#sources.clear();
    const seen = this.#sources.get(address);
    if (!seen || seen.second !== second) {
      this.#sources.set(address, { second, packets: 1 });
      return true;
    }
    return ++seen.packets <= PACKETS_PER_SOURCE_PER_SECOND;
  }

  #changed(): void {
    if (this.#changePending) return;
    this.#changePending = true;
    setImmediate(() => {
      this.#changePending = false;
      if (!this.#closed) this.#options.onChange?.();
    });
  }

  /** The next expiry is checked once a second at most: a TTL's end withdraws without a packet. */
  #scheduleExpiry(): void {
    if (this.#expiry || this.#closed || this.#view.size === 0) return;
    this.#expiry = setTimeout(() => {
      this.#expiry = undefined;
      if (this.#view.expire(Date.now())) this.#changed();
      this.#scheduleExpiry();
    }, 1000);
    this.#expiry.unref();
  }

  /** One query: the types' PTR, and what instances still lack; then the next, later. */
  #ask(): void {
    if (this.#closed) return;
    const questions = [
      ...this.#types.map((name) => ({ name, type: 'PTR' as const })),
      ...this.#view.missing().slice(0, FOLLOW_UP_QUESTIONS),
    ];
    this.#mdns.query({ questions });
    this.#timer = setTimeout(() => this.#ask(), this.#delayMs);
    this.#timer.unref();
    this.#delayMs = Math.min(this.#delayMs * 2, MAX_QUERY_DELAY_MS);
  }

  /** Every live instance with an address, one candidate per address. */
  candidates(): DnsSdCandidate[] {
    return this.#view.candidates(Date.now());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    clearTimeout(this.#timer);
    clearTimeout(this.#expiry);
    await new Promise<void>((resolve) => this.#mdns.destroy(() => resolve()));
  }
}

/** A one-shot browse: listens for `waitMs`, then returns what it found (an abort ends it early). */
export async function browseOnce(options: BrowseOptions & { waitMs: number }): Promise<DnsSdCandidate[]> {
  const browser = await DnsSdBrowser.open(options);
  let timer: NodeJS.Timeout | undefined;
  let wake = () => {};
  try {
    await new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, options.waitMs);
      options.signal?.addEventListener('abort', wake, { once: true });
      if (options.signal?.aborted) resolve(); // aborted since open() returned
    });
    options.signal?.throwIfAborted();
    return browser.candidates();
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', wake);
    await browser.close();
  }
}
