// A scan's host:port pairs, packed as the native core's endpoint records (native/core/endpoint.hh):
// [0] family, [1] probe plan, [2..3] port big-endian, [4..7] scope, [8..23] address. A /16 is
// 1.5 MiB here instead of 65,536 objects; the native engine takes the bytes as they are and
// the JS engine reads a record when it connects.
import { formatAddress, type AddressFamily } from '../../common/addresses.js';
import { ENDPOINT_RECORD_SIZE } from '../addon/layout.js';

/** One host:port to connect to: the name it was given as, and its address as a number. */
export interface Endpoint {
  host: string;
  family: AddressFamily;
  port: number;
  /** The address as a number, for sorting and packing. */
  value: bigint;
}

const ADDRESS_AT = 8;

export class TargetTable {
  readonly bytes: Uint8Array;
  readonly length: number;
  /** Host names to report instead of the address (endpoints resolved from a name). */
  readonly #hosts: readonly string[] | undefined;

  constructor(bytes: Uint8Array, length: number, hosts?: readonly string[]) {
    this.bytes = bytes;
    this.length = length;
    this.#hosts = hosts;
  }

  static fromEndpoints(endpoints: readonly Endpoint[]): TargetTable {
    const builder = new TargetTableBuilder(endpoints.length);
    for (const ep of endpoints) builder.add(ep.family, ep.value, ep.port);
    return builder.finish(endpoints.map((ep) => ep.host));
  }

  family(index: number): AddressFamily {
    return this.bytes[index * ENDPOINT_RECORD_SIZE] === 6 ? 6 : 4;
  }

  port(index: number): number {
    const at = index * ENDPOINT_RECORD_SIZE;
    return ((this.bytes[at + 2] as number) << 8) | (this.bytes[at + 3] as number);
  }

  /** The probe plan code (probes/plan.ts) of a record; 0 means connect only. */
  plan(index: number): number {
    return this.bytes[index * ENDPOINT_RECORD_SIZE + 1] as number;
  }

  setPlan(index: number, plan: number): void {
    this.bytes[index * ENDPOINT_RECORD_SIZE + 1] = plan;
  }

  host(index: number): string {
    const name = this.#hosts?.[index];
    if (name !== undefined) return name;
    const at = index * ENDPOINT_RECORD_SIZE + ADDRESS_AT;
    const b = this.bytes;
    if (this.family(index) === 4) return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
    return formatAddress({ family: 6, value: this.#value(index) });
  }

  endpoint(index: number): Endpoint {
    return { host: this.host(index), family: this.family(index), port: this.port(index), value: this.#value(index) };
  }

  toEndpoints(): Endpoint[] {
    return Array.from({ length: this.length }, (_, i) => this.endpoint(i));
  }

  #value(index: number): bigint {
    const at = index * ENDPOINT_RECORD_SIZE + ADDRESS_AT;
    const size = this.family(index) === 4 ? 4 : 16;
    let value = 0n;
    for (let b = 0; b < size; b++) value = (value << 8n) | BigInt(this.bytes[at + b] as number);
    return value;
  }
}

/** Appends records into a table sized up front; `finish` trims to what was added. */
export class TargetTableBuilder {
  #bytes: Uint8Array;
  #length = 0;

  constructor(capacity: number) {
    this.#bytes = new Uint8Array(capacity * ENDPOINT_RECORD_SIZE);
  }

  add(family: AddressFamily, value: bigint, port: number): void {
    if (family === 4) {
      this.addIPv4(Number(value), port);
      return;
    }
    const at = this.#record(6, port);
    let rest = value;
    for (let i = 15; i >= 0; i--) {
      this.#bytes[at + ADDRESS_AT + i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  }

  /** IPv4 as a plain number: expanding a /16 allocates nothing per address. */
  addIPv4(value: number, port: number): void {
    const at = this.#record(4, port);
    const b = this.#bytes;
    b[at + ADDRESS_AT] = value >>> 24;
    b[at + ADDRESS_AT + 1] = (value >>> 16) & 0xff;
    b[at + ADDRESS_AT + 2] = (value >>> 8) & 0xff;
    b[at + ADDRESS_AT + 3] = value & 0xff;
  }

  /** Starts the next record with its family and port; returns its offset. */
  #record(family: AddressFamily, port: number): number {
    const at = this.#length++ * ENDPOINT_RECORD_SIZE;
    this.#bytes[at] = family;
    this.#bytes[at + 2] = port >> 8;
    this.#bytes[at + 3] = port & 0xff;
    return at;
  }

  finish(hosts?: readonly string[]): TargetTable {
    const used = this.#length * ENDPOINT_RECORD_SIZE;
    const bytes = used === this.#bytes.length ? this.#bytes : this.#bytes.slice(0, used);
    return new TargetTable(bytes, this.#length, hosts);
  }
}
