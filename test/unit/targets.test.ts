import { describe, expect, it } from 'vitest';

import { formatAddress, parseAddress } from '../../lib/common/addresses.js';
import { InvalidTargetError } from '../../lib/common/errors.js';
import { TargetTable } from '../../lib/scan/targets/table.js';
import { chooseLocalSubnets } from '../../lib/scan/targets/local-subnets.js';
import { parsePorts, resolveTargets, type LookupFn } from '../../lib/scan/targets/grammar.js';

// No test here resolves a real name or touches an interface: names come from this table.
const names: Record<string, string[]> = {
  'gpu-box-1': ['10.9.66.7'],
  'dual.lan': ['10.9.66.8', 'fd00::8'],
  'empty.lan': [],
};
const lookup: LookupFn = async (hostname) => {
  const answers = names[hostname];
  if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return answers.map((a) => parseAddress(a)!);
};

async function hosts(targets: string | string[], options: Parameters<typeof resolveTargets>[1] = {}) {
  const endpoints = await resolveTargets(targets, { lookup, ...options });
  return endpoints.map((e) => `${e.host}:${e.port}`);
}

async function rejection(targets: string | string[], options: Parameters<typeof resolveTargets>[1] = {}) {
  const error = await resolveTargets(targets, { lookup, ...options }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidTargetError);
  return error as InvalidTargetError;
}

describe('target grammar', () => {
  it('accepts a single IPv4 address with the default port 50052', async () => {
    expect(await hosts('10.9.66.1')).toEqual(['10.9.66.1:50052']);
  });

  it('accepts IPv6 addresses, bracketed or not, and prints them in RFC 5952 form', async () => {
    expect(await hosts('[fd00:0:0:0:0:0:0:1],::1')).toEqual(['fd00::1:50052', '::1:50052']);
  });

  it('skips the network and broadcast addresses of a /24', async () => {
    const list = await hosts('10.9.66.0/24');
    expect(list).toHaveLength(254);
    expect(list[0]).toBe('10.9.66.1:50052');
    expect(list.at(-1)).toBe('10.9.66.254:50052');
  });

  it('skips network and broadcast up to /30 but keeps both addresses of a /31 and the one of a /32', async () => {
    expect(await hosts('10.0.0.4/30')).toEqual(['10.0.0.5:50052', '10.0.0.6:50052']);
    expect(await hosts('10.0.0.4/31')).toEqual(['10.0.0.4:50052', '10.0.0.5:50052']);
    expect(await hosts('10.0.0.4/32')).toEqual(['10.0.0.4:50052']);
  });

  it('normalises a CIDR whose address has host bits set', async () => {
    expect(await hosts('10.9.66.77/30')).toEqual(['10.9.66.77:50052', '10.9.66.78:50052']);
  });

  it('expands an IPv6 prefix without skipping any address', async () => {
    expect(await hosts('fd00::/126')).toEqual(['fd00:::50052', 'fd00::1:50052', 'fd00::2:50052', 'fd00::3:50052']);
  });

  it('expands a last-octet range and a full range across octets', async () => {
    expect(await hosts('10.9.66.1-3')).toEqual(['10.9.66.1:50052', '10.9.66.2:50052', '10.9.66.3:50052']);
    const across = await hosts('10.9.66.254-10.9.67.1');
    expect(across).toEqual(['10.9.66.254:50052', '10.9.66.255:50052', '10.9.67.0:50052', '10.9.67.1:50052']);
  });

  it('expands an IPv6 range', async () => {
    expect(await hosts('fd00::1-fd00::2')).toEqual(['fd00::1:50052', 'fd00::2:50052']);
  });

  it('resolves a hostname once and keeps every address, even one with a dash in its name', async () => {
    expect(await hosts('gpu-box-1,dual.lan')).toEqual(['10.9.66.7:50052', '10.9.66.8:50052', 'fd00::8:50052']);
  });

  it('mixes every form in comma lists and separate arguments, each pair once, in order', async () => {
    expect(await hosts(['10.9.66.2,10.9.66.1-2', 'gpu-box-1 10.9.66.7/32'])).toEqual([
      '10.9.66.2:50052',
      '10.9.66.1:50052',
      '10.9.66.7:50052',
    ]);
  });

  it('keeps overlapping ranges in order, each address once, with an exclude cutting through them', async () => {
    const list = await hosts(['10.9.66.5-9', '10.9.66.1-12', 'fd00::1-fd00::3', 'fd00::2'], {
      exclude: '10.9.66.7,10.9.66.11,fd00::3',
    });
    expect(list).toEqual(
      [5, 6, 8, 9, 1, 2, 3, 4, 10, 12].map((n) => `10.9.66.${n}:50052`).concat(['fd00::1:50052', 'fd00::2:50052']),
    );
  });

  it('applies --exclude with the same grammar', async () => {
    const list = await hosts('10.9.66.0/24', { exclude: ['10.9.66.2-254', 'gpu-box-1'] });
    expect(list).toEqual(['10.9.66.1:50052']);
  });

  it('excludes a whole CIDR block, its network and broadcast addresses included', async () => {
    const list = await hosts('10.9.66.0/24', { exclude: '10.9.66.0/25' });
    expect(list).toHaveLength(127);
    expect(list[0]).toBe('10.9.66.128:50052');
  });

  it('crosses every host with every port', async () => {
    expect(await hosts('10.0.0.1-2', { ports: '50052,11434' })).toEqual([
      '10.0.0.1:50052',
      '10.0.0.1:11434',
      '10.0.0.2:50052',
      '10.0.0.2:11434',
    ]);
  });
});

describe('ports', () => {
  it('parses single ports, lists and ranges, each once', () => {
    expect(parsePorts('50052')).toEqual([50052]);
    expect(parsePorts('50052,11434')).toEqual([50052, 11434]);
    expect(parsePorts('8000-8003,8001')).toEqual([8000, 8001, 8002, 8003]);
    expect(parsePorts([80, 443])).toEqual([80, 443]);
    expect(parsePorts(undefined)).toEqual([50052]);
  });

  it.each([
    ['0', '0: port must be 1..65535'],
    ['70000', '70000: port must be 1..65535'],
    ['8010-8000', '8010-8000: range ends before it starts'],
    ['http', 'http: "http" is not a port number'],
    ['', 'empty port list'],
    ['80,,81', '"80,,81": empty entry in the port list'],
  ])('rejects %j with "%s"', (spec, message) => {
    expect(() => parsePorts(spec)).toThrow(message);
  });
});

describe('bad input is a usage error naming the token', () => {
  it.each([
    ['10.9.66.0/33', '10.9.66.0/33: prefix must be 0..32'],
    ['fd00::/129', 'fd00::/129: prefix must be 0..128'],
    ['300.1.1.1', '300.1.1.1: octet 300 is out of range 0..255'],
    ['10.1.1', '10.1.1: not an IPv4 address'],
    ['10.9.66.9-3', '10.9.66.9-3: range ends before it starts'],
    ['10.9.66.1-300', '10.9.66.1-300: octet 300 is out of range 0..255'],
    ['fd00::1::2', 'fd00::1::2: "::" may appear once'],
    ['fe80::1%eth0', 'fe80::1%eth0: IPv6 zone ids are not supported'],
    ['bad_host!', 'bad_host!: not an address, range, CIDR block or hostname'],
    ['', 'empty target list'],
    ['10.0.0.1,', '"10.0.0.1,": empty entry in the target list'],
  ])('%j', async (target, message) => {
    const error = await rejection(target);
    expect(error.message).toBe(message);
    expect(error.code).toBe('SB_INVALID_TARGET');
  });

  it('names an unresolvable hostname and keeps the resolver error as the cause', async () => {
    const error = await rejection('no-such-host');
    expect(error.message).toBe('no-such-host: name does not resolve (ENOTFOUND)');
    expect(error.token).toBe('no-such-host');
    expect((error.cause as Error).message).toContain('ENOTFOUND');
  });

  it('names a hostname that resolves to nothing', async () => {
    expect((await rejection('empty.lan')).message).toBe('empty.lan: name resolves to no address');
  });
});

describe('guards', () => {
  it('refuses more than 65,536 host:port pairs without allowLarge, naming the flag', async () => {
    const error = await rejection('10.0.0.0/15');
    expect(error.message).toBe('131070 host:port pairs: over 65536; pass --allow-large (allowLarge) to scan them');
    expect(await hosts('10.0.0.0/15', { allowLarge: true })).toHaveLength(131070);
  });

  it('counts pairs after exclusion and across ports', async () => {
    await expect(resolveTargets('10.0.0.0/16', { lookup, ports: '1,2' })).rejects.toThrow('--allow-large');
    const list = await resolveTargets('10.0.0.0/16', { lookup, ports: '1,2', exclude: '10.0.128.0/17' });
    expect(list).toHaveLength(2 * 32767);
  });

  it('allows exactly 65,536 pairs', async () => {
    expect(await hosts('10.0.0.0-10.0.255.255')).toHaveLength(65536);
  });

  it('refuses a job too large to hold even with allowLarge', async () => {
    const error = await rejection('fd00::/64', { allowLarge: true });
    expect(error.message).toBe('18446744073709551616 host:port pairs: one job holds at most 16777216; split the range');
  });

  it('refuses public addresses without allowPublic, naming the flag', async () => {
    for (const target of ['8.8.8.8', '2001:db8::1', '10.255.255.255-11.0.0.1', '0.0.0.0/0', '::ffff:8.8.8.8']) {
      const error = await rejection(target);
      expect(error.message).toBe(
        `${target}: outside private, loopback, link-local, CGNAT and ULA space; pass --allow-public (allowPublic) to scan it`,
      );
    }
    expect(await hosts('8.8.8.8', { allowPublic: true })).toEqual(['8.8.8.8:50052']);
  });

  it('accepts private, loopback, link-local, CGNAT, ULA and IPv6 link-local space', async () => {
    const list = await hosts(
      '10.1.2.3,172.16.0.1,172.31.255.254,192.168.1.1,127.0.0.45,169.254.1.1,100.64.0.1,fd12::1,fe80::1,::1,::ffff:10.1.2.3',
    );
    expect(list).toHaveLength(11);
  });

  it('refuses link-local and cloud-metadata space where the caller asks (the resolver), naming the flag', async () => {
    for (const target of [
      '169.254.169.254',
      '169.254.0.0/16',
      'fe80::1',
      'fd00:ec2::254',
      '169.254.169.250-169.254.169.255',
      // IPv4-mapped: an IPv6 socket connects to it over IPv4, so it is the same address.
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
    ]) {
      const error = await rejection(target, { allowLinkLocal: false });
      expect(error.message).toBe(
        `${target}: a link-local or cloud-metadata address: never connected to unless allowed (--allow-link-local, allowLinkLocal)`,
      );
    }
    // A range beside it is no link-local address; a scan of typed targets allows it by default.
    expect(await hosts('169.253.255.255', { allowPublic: true, allowLinkLocal: false })).toHaveLength(1);
    expect(await hosts('169.254.169.254')).toEqual(['169.254.169.254:50052']);
  });

  it('checks resolved names against the public guard too', async () => {
    names['public.example'] = ['93.184.216.34'];
    expect((await rejection('public.example')).token).toBe('public.example');
  });
});

describe('addresses', () => {
  it.each(['::', '::1', '1::', 'fd00::1:0:0:1', '1:0:0:1::', '1:2:3:4:5:6:7:8', '::ffff:10.0.0.1'])(
    'round-trips %s',
    (text) => {
      const address = parseAddress(text)!;
      expect(parseAddress(formatAddress(address))).toEqual(address);
    },
  );

  it('compresses the longest zero run and leaves a single zero group alone', () => {
    expect(formatAddress(parseAddress('1:0:0:2:0:0:0:3')!)).toBe('1:0:0:2::3');
    expect(formatAddress(parseAddress('1:0:2:3:4:5:6:7')!)).toBe('1:0:2:3:4:5:6:7');
  });

  it('rejects leading zeros in IPv4 octets, which inet_aton would read as octal', () => {
    expect(parseAddress('010.0.0.1')).toBeNull();
  });
});

describe('local subnets (from a given interface table, never the real one)', () => {
  const iface = (address: string, netmask: string, internal = false) => ({
    address,
    netmask,
    family: 'IPv4' as const,
    mac: '00:00:00:00:00:00',
    internal,
    cidr: null,
  });

  it('takes the /24 around each non-internal IPv4 address, clamping larger subnets', () => {
    const choice = chooseLocalSubnets({
      lo: [iface('127.0.0.1', '255.0.0.0', true)],
      eth0: [iface('10.9.66.23', '255.255.0.0')],
      wlan0: [iface('192.168.1.40', '255.255.255.0')],
    });
    expect(choice.subnets).toEqual([
      { cidr: '10.9.66.0/24', interface: 'eth0', address: '10.9.66.23' },
      { cidr: '192.168.1.0/24', interface: 'wlan0', address: '192.168.1.40' },
    ]);
  });

  it('keeps a subnet smaller than /24 as it is', () => {
    const choice = chooseLocalSubnets({ eth0: [iface('10.0.0.20', '255.255.255.240')] });
    expect(choice.subnets.map((s) => s.cidr)).toEqual(['10.0.0.16/28']);
  });

  it('skips IPv6, duplicate subnets and public addresses, saying why for the last', () => {
    const choice = chooseLocalSubnets({
      eth0: [
        iface('10.0.0.2', '255.255.255.0'),
        { ...iface('fd00::2', 'ffff:ffff:ffff:ffff::'), family: 'IPv6' as const, scopeid: 0 },
      ],
      eth1: [iface('10.0.0.3', '255.255.255.0')],
      wan: [iface('203.0.113.9', '255.255.255.0')],
    });
    expect(choice.subnets.map((s) => s.cidr)).toEqual(['10.0.0.0/24']);
    expect(choice.skipped).toEqual([{ interface: 'wan', address: '203.0.113.9', reason: 'public address' }]);
  });

  it('never picks a link-local interface (a cloud host’s 169.254.x)', () => {
    const choice = chooseLocalSubnets({ eth0: [iface('169.254.10.20', '255.255.0.0')] });
    expect(choice.subnets).toEqual([]);
    expect(choice.skipped).toEqual([{ interface: 'eth0', address: '169.254.10.20', reason: 'link-local address' }]);
  });

  it('returns nothing for a machine with only loopback', () => {
    expect(chooseLocalSubnets({ lo: [iface('127.0.0.1', '255.0.0.0', true)] })).toEqual({ subnets: [], skipped: [] });
  });
});

describe('TargetTable', () => {
  it('packs the records the native core reads, and reads them back', () => {
    const v6 = parseAddress('fd00::1:2')!;
    const table = TargetTable.fromEndpoints([
      { host: '127.0.0.45', family: 4, port: 50052, value: parseAddress('127.0.0.45')!.value },
      { host: 'gpu-box-1', family: 6, port: 8080, value: v6.value },
    ]);
    table.setPlan(1, 3);
    expect(table.length).toBe(2);
    expect([...table.bytes.subarray(0, 12)]).toEqual([4, 0, 0xc3, 0x84, 0, 0, 0, 0, 127, 0, 0, 45]);
    expect([table.family(1), table.port(1), table.plan(1), table.plan(0)]).toEqual([6, 8080, 3, 0]);
    // A name the caller gave is what results report; the address is what is connected to.
    expect(table.host(1)).toBe('gpu-box-1');
    expect(table.endpoint(1)).toEqual({ host: 'gpu-box-1', family: 6, port: 8080, value: v6.value });
    expect([...table.bytes.subarray(24 + 8, 48)]).toEqual([0xfd, ...Array(11).fill(0), 0, 1, 0, 2]);
  });
});
