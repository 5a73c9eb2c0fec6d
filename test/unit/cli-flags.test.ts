// The CLI's pure parts: --listen's defaults, the messages a mistyped command line gets.
import { describe, expect, it } from 'vitest';

import { parseServeFlags } from '../../lib/cli/serve-command.js';
import { parseHostPort } from '../../lib/common/host-port.js';

describe('serve --listen', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1', 8765],
    ['localhost', 'localhost', 8765],
    [':8765', '127.0.0.1', 8765],
    [':9000', '127.0.0.1', 9000],
    ['127.0.0.7:0', '127.0.0.7', 0],
    ['[::1]', '::1', 8765],
    ['::1', '::1', 8765],
  ])('%s listens on %s port %i (a host alone never takes ggml-rpc 50052)', (listen, host, port) => {
    expect(parseServeFlags({ listen })).toMatchObject({ host, port });
  });

  it('run --listen reads it the same way', async () => {
    const { parseRunArgs } = await import('../../lib/cli/run-command.js');
    expect(parseRunArgs(['--listen', 'localhost', '--', 'true'])).toMatchObject({
      serve: { host: 'localhost', port: 8765 },
    });
    expect(parseRunArgs(['--listen', ':9000', '--', 'true'])).toMatchObject({
      serve: { host: '127.0.0.1', port: 9000 },
    });
  });

  it('without --listen it is 127.0.0.1:8765', () => {
    expect(parseServeFlags({})).toMatchObject({ host: '127.0.0.1', port: 8765 });
  });

  it.each(['', ':', '127.0.0.1:70000', 'a b:80'])('refuses %j naming the forms it takes', (listen) => {
    expect(() => parseServeFlags({ listen })).toThrow(/--listen: expected HOST:PORT, HOST or :PORT/);
  });

  it('the address lists coordinators write still default to 50052, and ":port" alone is no host there', () => {
    expect(parseHostPort('10.0.0.7')).toEqual({ host: '10.0.0.7', port: 50052 });
    expect(parseHostPort(':50052')).toBe('not a host[:port]');
  });
});

describe('one flag table per command: its parser, its help and its completion', () => {
  it('every command’s help lists each flag of its own table (inherited ones: where it points)', async () => {
    const { SCAN_FLAGS, SCAN_USAGE } = await import('../../lib/cli/scan-command.js');
    const { PROBE_COMMAND_FLAGS, PROBE_USAGE } = await import('../../lib/cli/probe-command.js');
    const { RESOLVE_FLAGS, RESOLVE_USAGE } = await import('../../lib/cli/resolve-command.js');
    const { WATCH_FLAGS, WATCH_USAGE } = await import('../../lib/cli/watch-command.js');
    const { SERVE_FLAGS, SERVE_USAGE } = await import('../../lib/cli/serve-command.js');
    const { RUN_FLAGS, RUN_USAGE } = await import('../../lib/cli/run-command.js');
    const { DOCTOR_FLAGS, DOCTOR_USAGE } = await import('../../lib/cli/doctor-command.js');
    const { DEMO_FLAGS, DEMO_USAGE } = await import('../../lib/cli/demo.js');
    const { PLAN_FLAGS, PLAN_USAGE } = await import('../../lib/cli/plan-command.js');
    // [table, usage, the table whose flags the usage leaves to another command's help]
    const commands = {
      scan: [SCAN_FLAGS, SCAN_USAGE, {}],
      probe: [PROBE_COMMAND_FLAGS, PROBE_USAGE, {}],
      resolve: [RESOLVE_FLAGS, RESOLVE_USAGE, {}],
      watch: [WATCH_FLAGS, WATCH_USAGE, {}],
      serve: [SERVE_FLAGS, SERVE_USAGE, WATCH_FLAGS],
      run: [RUN_FLAGS, RUN_USAGE, WATCH_FLAGS],
      doctor: [DOCTOR_FLAGS, DOCTOR_USAGE, {}],
      demo: [DEMO_FLAGS, DEMO_USAGE, {}],
      plan: [PLAN_FLAGS, PLAN_USAGE, RESOLVE_FLAGS],
    } as const;
    for (const [command, [table, usage, inherited]] of Object.entries(commands)) {
      // A flag it redefines (plan's --format) is its own.
      const own = Object.entries(table)
        .filter(([name, spec]) => (inherited as Record<string, unknown>)[name] !== spec)
        .map(([name]) => name);
      for (const name of own.filter((n) => n !== 'help')) {
        expect(usage, `${command} --${name}`).toMatch(new RegExp(`--${name}\\b(?!-)`));
      }
    }
  });
});

describe('messages', () => {
  it('a duration out of range is named in units', async () => {
    const { parseDuration } = await import('../../lib/cli/flags.js');
    expect(() => parseDuration('--interval', '0', 'intervalMs')).toThrow('--interval: must be 100ms..1d, got 0');
    expect(() => parseDuration('--heartbeat', '500ms', 'heartbeatMs')).toThrow(
      '--heartbeat: must be 1s..1d, got 500ms',
    );
  });

  it('host:port as a scan target points at -p', async () => {
    const { parseToken } = await import('../../lib/scan/targets/ranges.js');
    expect(() => parseToken('10.0.0.7:50052', true)).toThrow(
      '10.0.0.7:50052: a port goes in -p (ports), not in the target: scan 10.0.0.7 -p 50052',
    );
    expect(() => parseToken('gpu-1:50052', true)).toThrow(
      'a port goes in -p (ports), not in the target: scan gpu-1 -p 50052',
    );
    // An IPv6 literal is still one; a bad one is still named as such.
    expect(parseToken('fd00::7:50', true)).toMatchObject({ family: 6 });
    expect(() => parseToken('fd00:::7', true)).toThrow('fd00:::7: not an IPv6 address');
  });
});
