// Every Redis key and channel name this project uses, built here and nowhere else.
//
//   <prefix>backend:<host>:<port>  the registry: one hash per verified backend (registry.ts)
//   <prefix>scanner:<id>           a watcher's registration, JSON, heartbeat TTL (registration.ts)
//   <prefix>lease:<subnet>         who scans a subnet: "<id>[ <sig>]", SET NX PX (leases.ts)
//   <prefix>claim:<address>:<port> the coordinator using a server: JSON {watcher, host, pid, at,
//                                  sig?}, SET NX PX, renewed while it runs (claims.ts)
//   <prefix>watch-events           pub/sub: the one event channel, every message an envelope
//                                  {origin, at, event | registry, sig?} (events.ts)
//   <prefix>events                 pub/sub, deprecated: registry changes in their old shape
//                                  {type, host, port, sources?, reason?, at}, still published
import { formatHostPort } from '../common/host-port.js';

export const DEFAULT_REDIS_PREFIX = 'scan-backends:';

export class RedisKeys {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_REDIS_PREFIX) {
    this.prefix = prefix;
  }

  backend(host: string, port: number): string {
    return `${this.prefix}backend:${formatHostPort({ host, port })}`;
  }

  /** The SCAN pattern of every registry entry. */
  get backends(): string {
    return `${this.prefix}backend:*`;
  }

  scanner(id: string): string {
    return `${this.prefix}scanner:${id}`;
  }

  /** The SCAN pattern of every registration. */
  get scanners(): string {
    return `${this.prefix}scanner:*`;
  }

  lease(subnet: string): string {
    return `${this.prefix}lease:${subnet}`;
  }

  /** A server's claim: its address as printed canonically (RFC 5952), IPv6 in brackets. */
  claim(address: string, port: number): string {
    return `${this.prefix}claim:${formatHostPort({ host: address, port })}`;
  }

  /** The SCAN pattern of every claim. */
  get claims(): string {
    return `${this.prefix}claim:*`;
  }

  /** The one event channel: watchers' events and registry changes, in one envelope. */
  get events(): string {
    return `${this.prefix}watch-events`;
  }

  /** @deprecated The registry's old channel, kept for coordinators that read it; use `events`. */
  get registryEvents(): string {
    return `${this.prefix}events`;
  }
}
