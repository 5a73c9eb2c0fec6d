// The pure parts of serve's request limits (issue 18): which Host a server answers (DNS
// rebinding), and whom a connection counts against (the per-client share).
import { describe, expect, it } from 'vitest';

import { hostCheck } from '../../lib/serve/allowed-hosts.js';
import { clientOf } from '../../lib/serve/connection-guard.js';

describe('the Host a server answers', () => {
  it('on 127.0.0.1 answers loopback and allowed names, any port, and nothing else', () => {
    const allowed = hostCheck('127.0.0.1', ['Dash.Example.']);
    const answered = [
      '127.0.0.1:8765',
      '127.9.9.9',
      'localhost',
      'LOCALHOST.:1',
      '[::1]:8765',
      '[0:0::1]',
      'dash.example:80',
    ];
    const refused = [
      undefined,
      '',
      'rebind.example:8765',
      'localhost.rebind.example',
      '10.0.0.5:8765',
      '[2001:db8::1]:8765',
      'dash.example.evil',
      'dash.example:port',
      'a b',
    ];
    expect(answered.filter((h) => !allowed(h))).toEqual([]);
    expect(refused.filter((h) => allowed(h))).toEqual([]);
  });

  it('on an address or a name answers that one; on 0.0.0.0 or :: every address, still no stranger name', () => {
    expect(hostCheck('10.0.0.5', [])('10.0.0.5:8765')).toBe(true);
    expect(hostCheck('10.0.0.5', [])('10.0.0.6:8765')).toBe(false);
    expect(hostCheck('gpu-box.lan', [])('GPU-box.lan:8765')).toBe(true);
    for (const wildcard of ['0.0.0.0', '::']) {
      const allowed = hostCheck(wildcard, []);
      expect(
        ['10.0.0.6:8765', '[2001:db8::1]:1', '192.168.1.2'].every((h) => allowed(h)),
        wildcard,
      ).toBe(true);
      expect(allowed('rebind.example:8765'), wildcard).toBe(false);
    }
  });
});

describe('whom a connection counts against', () => {
  it('an IPv4 address, mapped or not, and an IPv6 /64', () => {
    expect(clientOf('127.0.181.9')).toBe('127.0.181.9');
    expect(clientOf('::ffff:127.0.181.9')).toBe('127.0.181.9');
    expect(clientOf('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientOf('2001:db8:1:2:bbbb::7')).toBe('2001:db8:1:2::/64');
    expect(clientOf('::1')).toBe('::/64');
  });
});
