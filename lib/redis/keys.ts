// Every Redis key and channel name this project uses, built here and nowhere else.
//
//   <prefix>backend:<host>:<port>  the registry: one hash per verified backend (registry.ts)
//   <prefix>scanner:<id>           a watcher's registration, JSON, heartbeat TTL (registration.ts)
//   <prefix>lease:<subnet>         who scans a subnet: "<id>[ <sig>]", SET NX PX (leases.ts)
//   <prefix>watch-events           pub/sub: watchers' events, {origin, at, event, sig?} (events.ts)
//   <prefix>events                 pub/sub: registry changes, {type, host, port, sources?,
//                                  reason?, at} (registry.ts)
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

  /** The watchers' event channel. */
  get events(): string {
    return `${this.prefix}watch-events`;
  }

  /** The registry's change channel. */
  get registryEvents(): string {
    return `${this.prefix}events`;
  }
}
