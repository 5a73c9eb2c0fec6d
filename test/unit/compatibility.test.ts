// The compatibility rule resolve and the watcher share: one major group, chosen by the number
// of servers, then the newest major, then memory; or llama.cpp's rule against a client.
import { describe, expect, it } from 'vitest';

import { applyCompatibility, chooseCompatibleGroup } from '../../lib/resolver/compatibility.js';

const GiB = 2 ** 30;
const server = (host: string, protocol: string, totalGiB = 8) => ({
  host,
  port: 50052,
  rpc: {
    protocol,
    usableBy: '',
    legacyHello: false,
    devices: [{ index: 0, freeBytes: totalGiB * GiB, totalBytes: totalGiB * GiB }],
  },
});

describe('the compatibility rule', () => {
  it('on a tie in servers prefers the newest major over more memory', () => {
    const old = server('127.0.0.48', '2.0.0', 64);
    const current = server('127.0.0.45', '5.0.0', 24);
    const { keep, drop, usableBy } = chooseCompatibleGroup([old, current]);
    expect(keep).toEqual([current]);
    expect(drop.map((d) => d.backend)).toEqual([old]);
    expect(drop[0]?.reason).toMatch(
      /^ggml-rpc 2\.0\.0: no single client can use it beside the 1 server of protocol 5\.x/,
    );
    expect(usableBy).toBe('>=5.0.0 <6.0.0');
  });

  it('still prefers more servers to a newer major, and needs the group’s highest minor', () => {
    const current = server('127.0.0.45', '5.0.0');
    const a = server('127.0.0.47', '2.0.0');
    const b = server('127.0.0.48', '2.3.0');
    const { keep, usableBy } = chooseCompatibleGroup([current, a, b]);
    expect(keep).toEqual([a, b]);
    expect(usableBy).toBe('>=2.3.0 <3.0.0');
  });

  it('keeps a server whose protocol is unknown (busy, vouched for): nothing says it differs', () => {
    const busy = { host: '127.0.0.46', port: 50052 };
    const current = server('127.0.0.45', '5.0.0');
    expect(chooseCompatibleGroup([busy, current, server('127.0.0.48', '3.6.1')]).keep).toEqual([busy, current]);
  });

  it('against a client version applies llama.cpp’s rule server by server', () => {
    const servers = [server('127.0.0.45', '5.0.0'), server('127.0.0.46', '5.2.0'), server('127.0.0.48', '3.6.1')];
    const { keep, drop } = applyCompatibility(servers, '5.1.0');
    expect(keep.map((b) => b.host)).toEqual(['127.0.0.45']);
    expect(drop.map((d) => [d.backend.host, d.reason])).toEqual([
      ['127.0.0.46', expect.stringMatching(/^ggml-rpc 5\.2\.0 does not match client 5\.1\.0/)],
      ['127.0.0.48', expect.stringMatching(/^ggml-rpc 3\.6\.1 does not match client 5\.1\.0/)],
    ]);
  });
});
