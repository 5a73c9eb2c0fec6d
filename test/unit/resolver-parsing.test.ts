import { describe, expect, it } from 'vitest';

import { configSearchPath } from '../../lib/common/options.js';
import { parseConfig } from '../../lib/resolver/config-file.js';
import { isCoordinator, parseRpcList, rpcLists } from '../../lib/resolver/process.js';

describe('rpc_backends.conf', () => {
  it('reads host[:port] lines, comments and blank lines, with 50052 as the default port', () => {
    const text = [
      '# cluster A',
      '',
      '10.9.66.7',
      '  10.9.66.8:50053  # second box',
      '[fd00::9]:50052',
      'gpu-box-3',
      '\t',
    ].join('\n');
    const parsed = parseConfig(text, 'rpc_backends.conf');
    expect(parsed.candidates.map((c) => `${c.host}:${c.port}`)).toEqual([
      '10.9.66.7:50052',
      '10.9.66.8:50053',
      'fd00::9:50052',
      'gpu-box-3:50052',
    ]);
    expect(parsed.candidates.every((c) => c.source === 'config')).toBe(true);
    expect(parsed.warnings).toEqual([]);
  });

  it('reports a bad line as file:line: bad token and skips it', () => {
    const parsed = parseConfig('10.0.0.1\n10.0.0.2:99999\nnot a host\n10.0.0.3:0\r\n10.0.0.4', '/etc/x.conf');
    expect(parsed.warnings).toEqual([
      '/etc/x.conf:2: bad token "10.0.0.2:99999" (port must be 1..65535)',
      '/etc/x.conf:3: bad token "not a host" (not a host[:port])',
    ]);
    expect(parsed.dropped).toEqual([
      { host: '10.0.0.3', port: 0, reason: '/etc/x.conf:4: port 0: a placeholder, not a backend' },
    ]);
    expect(parsed.candidates.map((c) => c.host)).toEqual(['10.0.0.1', '10.0.0.4']);
  });

  it('--strict makes a bad line an error naming file and line', () => {
    expect(() => parseConfig('10.0.0.1\n\nbad token here', 'a.conf', true)).toThrow(
      'a.conf:3: bad token "bad token here"',
    );
  });

  it('is looked for in the documented order', () => {
    const env = { SCAN_BACKENDS_CONFIG: '/env/x.conf', XDG_CONFIG_HOME: '/xdg' };
    expect(configSearchPath(undefined, env)).toEqual([
      '/env/x.conf',
      `${process.cwd()}/rpc_backends.conf`,
      '/xdg/scan-backends/rpc_backends.conf',
      '/etc/scan-backends/rpc_backends.conf',
    ]);
    expect(configSearchPath('/given.conf', env)).toEqual(['/given.conf']);
  });
});

describe('--rpc on a coordinator command line', () => {
  it('finds --rpc LIST and --rpc=LIST', () => {
    expect(rpcLists(['/usr/bin/llama-server', '-m', 'x.gguf', '--rpc', 'a:1,b', '--rpc=c'])).toEqual(['a:1,b', 'c']);
    expect(rpcLists(['python3', 'serve.py'])).toEqual([]);
  });

  it('knows llama-server and llama-cli by name, and anything carrying --rpc', () => {
    expect(isCoordinator(['/opt/llama.cpp/build/bin/llama-server', '-m', 'x'])).toBe(true);
    expect(isCoordinator(['/bin/sh', '/tmp/llama-cli'])).toBe(true);
    expect(isCoordinator(['my-coordinator', '--rpc=10.0.0.1'])).toBe(true);
    expect(isCoordinator(['vim', 'notes.txt'])).toBe(false);
  });

  it('defaults the port, keeps bracketed IPv6, and drops placeholders with a reason', () => {
    const { candidates, dropped } = parseRpcList('10.0.0.1:50052,gpu-2,[fd00::1]:50060,coordinator:0,:80', 'process');
    expect(candidates.map((c) => `${c.host}|${c.port}`)).toEqual(['10.0.0.1|50052', 'gpu-2|50052', 'fd00::1|50060']);
    expect(dropped).toEqual([
      { host: 'coordinator', port: 0, reason: 'port 0: a placeholder, not a backend' },
      { host: ':80', port: 0, reason: '":80": not a host[:port]' },
    ]);
  });
});
