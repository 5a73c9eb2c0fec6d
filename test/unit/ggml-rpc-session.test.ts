// The JS engine's ggml-rpc session on the bytes real servers sent (docs/ggml-rpc-wire.md),
// the same cases native/test/probe_test.cc runs against the C++ session.
import { describe, expect, it } from 'vitest';

import { GgmlRpcSession } from '../../lib/probes/ggml-rpc.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const le64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const MEMORY_REPLY = hex('10 00 00 00 00 00 00 00 00 c0 7e e2 05 00 00 00 00 c0 7e e2 05 00 00 00');

describe('GgmlRpcSession (JS twin)', () => {
  it('5.0.0: caps HELLO, DEVICE_COUNT, one device', () => {
    const s = new GgmlRpcSession();
    expect(s.onConnected()).toEqual(Buffer.concat([hex('0e 18 00 00 00 00 00 00 00'), Buffer.alloc(24)]));
    const hello = s.onData(Buffer.concat([hex('1c 00 00 00 00 00 00 00 05 00 00 00'), Buffer.alloc(24)]));
    expect(hello).toEqual({ action: 'continue', out: hex('0f 00 00 00 00 00 00 00 00') });
    const count = s.onData(hex('04 00 00 00 00 00 00 00 01 00 00 00'));
    expect(count.out).toEqual(hex('0b 04 00 00 00 00 00 00 00 00 00 00 00'));
    expect(s.onData(MEMORY_REPLY.subarray(0, 5)).action).toBe('continue');
    expect(s.onData(MEMORY_REPLY.subarray(5)).action).toBe('done');
    expect(s.step).toMatchObject({ outcome: 'recognized', version: [5, 0, 0], legacyHello: false });
    expect(s.step.devices).toEqual([{ index: 0, freeBytes: 25274793984, totalBytes: 25274793984 }]);
    expect(s.requestPending()).toBe(false);
  });

  it('3.6.1: RST on the caps HELLO, reconnect, empty HELLO', () => {
    const s = new GgmlRpcSession();
    s.onConnected();
    expect(s.onClosed(true)).toBe('reconnect');
    expect(s.onConnected()).toEqual(hex('0e 00 00 00 00 00 00 00 00'));
    expect(s.onData(hex('03 00 00 00 00 00 00 00 03 06 01')).out).toEqual(hex('0f 00 00 00 00 00 00 00 00'));
  });

  it('2.0.0: memory without a device index', () => {
    const s = new GgmlRpcSession();
    s.onConnected();
    s.onClosed(true);
    s.onConnected();
    expect(s.onData(hex('03 00 00 00 00 00 00 00 02 00 00')).out).toEqual(hex('0b 00 00 00 00 00 00 00 00'));
    expect(s.onData(MEMORY_REPLY).action).toBe('done');
    expect(s.step.devices).toHaveLength(1);
  });

  it('a size field of 2^63 is judged on its header, without buffering', () => {
    const s = new GgmlRpcSession();
    s.onConnected();
    expect(s.onData(Buffer.concat([le64(1n << 63n), Buffer.alloc(100)])).action).toBe('done');
    expect(s.step).toMatchObject({
      outcome: 'not-recognized',
      detail: 'sent "........................", not a ggml-rpc HELLO reply',
    });
  });

  it('reads the version from a HELLO reply longer than 28 bytes (a fork appending fields)', () => {
    const s = new GgmlRpcSession();
    s.onConnected();
    const reply = Buffer.concat([le64(32n), Buffer.from([6, 1, 0, 0]), Buffer.alloc(24), Buffer.from([101, 0, 0, 0])]);
    expect(s.onData(reply.subarray(0, 5)).action).toBe('continue');
    const next = s.onData(reply.subarray(5));
    expect(next.action).toBe('continue');
    expect(next.out?.[0]).toBe(15); // DEVICE_COUNT
    expect(s.step.version).toEqual([6, 1, 0]);
    expect(s.onData(Buffer.concat([le64(4n), Buffer.alloc(4)])).action).toBe('done');
    expect(s.step.detail).toBe('its HELLO reply carries 4 bytes beyond the 28 this probe reads (ignored)');
  });

  it('nudges a silent peer once, and names what a line-based server answers', () => {
    const s = new GgmlRpcSession();
    s.onConnected();
    expect(s.onQuiet()).toEqual(Buffer.from([0xff, 0x0d, 0x0a]));
    expect(s.onQuiet()).toBeUndefined();
    expect(s.onData(Buffer.from('-ERR unknown command\r\n')).action).toBe('done');
    expect(s.step).toMatchObject({
      outcome: 'not-recognized',
      detail: 'answered a newline with "-ERR unknown command..": another protocol, not ggml-rpc',
    });
  });

  it('silence keeps the request pending, so the driver aborts with RST', () => {
    const s = new GgmlRpcSession();
    s.onConnected();
    s.onTimeout();
    expect(s.step.outcome).toBe('silent');
    expect(s.requestPending()).toBe(true);
  });
});
