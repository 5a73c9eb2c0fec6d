// The DNS-SD responder behind `announce`: one service instance (PTR, SRV, TXT and the host's
// A/AAAA records), announced twice a second apart when it starts or changes (RFC 6762 §8.3),
// answered when asked, and withdrawn with a goodbye (TTL 0, §10.1). multicast-dns does the
// wire format. What arrives is only read for its questions, bounded as the browser bounds
// answers.
import { announcementRecords, openMdns, type MdnsAnswer, type MulticastDns } from './mdns-wire.js';
import { normalName, type Announcement } from './records.js';

export type { Announcement } from './records.js';

/** Every record's TTL: short, so a node that dies without a goodbye leaves within two minutes. */
export const ANNOUNCE_TTL_SECONDS = 120;
/** Questions read per query packet; the rest are ignored. */
const QUESTIONS_PER_PACKET = 16;
/**
 * The least time between two multicast answers (RFC 6762 §6: a record at most once a second
 * on a link), whoever asks: a flood of queries costs nothing more.
 */
const ANSWER_GAP_MS = 1000;

/** An instance label as DNS carries it: no dots, at most 63 bytes. */
export function instanceLabel(name: string): string {
  let label = name.replace(/\./g, '-');
  while (Buffer.byteLength(label) > 63) label = label.slice(0, -1);
  return label;
}

/**
 * The host name the SRV record names, of our own: "<instance>-rpc.local" in letters, digits
 * and dashes. Never the system's "<hostname>.local": our A records carry cache-flush, and
 * under the name Avahi/Bonjour answers for they would replace the host's real addresses in
 * every neighbour's cache.
 */
export function srvTargetHost(instance: string): string {
  const label = instance
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63 - '-rpc'.length);
  return `${label.replace(/-+$/, '') || 'scan-backends'}-rpc.local`;
}

export class Announcer {
  readonly #mdns: MulticastDns;
  #current?: Announcement;
  #repeat?: NodeJS.Timeout;
  #answeredAt = -Infinity;

  private constructor(mdns: MulticastDns) {
    this.#mdns = mdns;
  }

  /** Joins the mDNS group; a SourceUnavailableError when port 5353 cannot be bound. */
  static async open(): Promise<Announcer> {
    const mdns = await openMdns();
    const announcer = new Announcer(mdns);
    mdns.on('query', (packet) => announcer.#onQuery(packet.questions ?? []));
    return announcer;
  }

  /** What is announced now, if anything. */
  get current(): Announcement | undefined {
    return this.#current;
  }

  /** Announces `a` (twice, a second apart), replacing what was announced. */
  announce(a: Announcement): void {
    this.#current = a;
    clearTimeout(this.#repeat);
    this.#send(announcementRecords(a, ANNOUNCE_TTL_SECONDS));
    this.#repeat = setTimeout(
      () => this.#current === a && this.#send(announcementRecords(a, ANNOUNCE_TTL_SECONDS)),
      1000,
    );
    this.#repeat.unref();
  }

  /** Withdraws what is announced: a goodbye (TTL 0) for its service records. Resolves once sent. */
  async withdraw(): Promise<void> {
    const a = this.#current;
    clearTimeout(this.#repeat);
    this.#current = undefined;
    if (!a) return;
    // The host's addresses stay valid: only the service leaves.
    await new Promise<void>((resolve) =>
      this.#mdns.respond({ answers: announcementRecords(a, 0).slice(0, 3) }, () => resolve()),
    );
  }

  #send(answers: MdnsAnswer[]): void {
    this.#mdns.respond({ answers });
  }

  /** Answers a question about our type, instance or host: the whole record set, multicast. */
  #onQuery(questions: readonly { name?: unknown; type?: unknown }[]): void {
    const a = this.#current;
    if (!a) return;
    const ours = new Set([a.type, `${a.instance}.${a.type}`.toLowerCase(), a.host.toLowerCase()]);
    if (!questions.slice(0, QUESTIONS_PER_PACKET).some((q) => ours.has(normalName(q.name) ?? ''))) return;
    const now = Date.now();
    if (now - this.#answeredAt < ANSWER_GAP_MS) return;
    this.#answeredAt = now;
    this.#send(announcementRecords(a, ANNOUNCE_TTL_SECONDS));
  }

  async close(): Promise<void> {
    clearTimeout(this.#repeat);
    await new Promise<void>((resolve) => this.#mdns.destroy(() => resolve()));
  }
}
