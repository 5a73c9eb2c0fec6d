// The supervisor's pure parts: the command line a choice starts, the default choice, the
// options and run's flags.
import { describe, expect, it } from 'vitest';

import { parseRunArgs } from '../../lib/cli/run-command.js';
import { normalizeRunOptions, RUN_DEFAULTS } from '../../lib/common/options.js';
import { InvalidOptionError } from '../../lib/common/errors.js';
import { commandLine, wholeUsableSet } from '../../lib/run/supervisor.js';
import type { WatchedBackend } from '../../lib/watch/types.js';

const backend = (host: string, port: number) => ({ host, port }) as WatchedBackend;

describe('the supervisor', () => {
  it("appends --rpc and the plan's arguments, or puts the list where an argument is {rpc}", () => {
    const choice = { rpc: ['10.0.0.1:50052', '10.0.0.2:50052'], extraArgs: ['--tensor-split', '1,1'] };
    expect(commandLine(['llama-server', '-m', 'x.gguf'], choice)).toEqual([
      'llama-server',
      '-m',
      'x.gguf',
      '--rpc',
      '10.0.0.1:50052,10.0.0.2:50052',
      '--tensor-split',
      '1,1',
    ]);
    expect(commandLine(['run.sh', '--backends', '{rpc}', 'x{rpc}'], { ...choice, extraArgs: [] })).toEqual([
      'run.sh',
      '--backends',
      '10.0.0.1:50052,10.0.0.2:50052',
      'x{rpc}',
    ]);
  });

  it('takes the whole usable set once it has --min-servers, and says why it waits', () => {
    const choose = wholeUsableSet(2);
    expect(choose([backend('10.0.0.1', 50052)])).toEqual({ wait: '1 of 2 servers usable' });
    expect(choose([backend('10.0.0.1', 50052), backend('::1', 50053)])).toEqual({
      rpc: ['10.0.0.1:50052', '[::1]:50053'],
      extraArgs: [],
    });
  });

  it('fills every default once and refuses what is out of range', () => {
    expect(normalizeRunOptions({})).toEqual(RUN_DEFAULTS);
    expect(normalizeRunOptions({ grow: 'never', healthUrl: 'http://127.0.0.1:9/health' })).toMatchObject({
      grow: 'never',
      healthUrl: 'http://127.0.0.1:9/health',
    });
    expect(() => normalizeRunOptions({ grow: 'sometimes' as 'idle' })).toThrow(InvalidOptionError);
    expect(() => normalizeRunOptions({ maxRestarts: 0 })).toThrow(/maxRestarts: must be an integer 1\.\.1000/);
    expect(() => normalizeRunOptions({ healthUrl: 'file:///etc/passwd' })).toThrow(/healthUrl/);
  });
});

describe("run's flags", () => {
  it("takes the command after --, the model from --model or the command's own -m", () => {
    const request = parseRunArgs(['--grow', 'always', '--min-servers', '2', '--', 'llama-server', '-m', 'a.gguf']);
    expect(request).toMatchObject({ command: ['llama-server', '-m', 'a.gguf'], model: 'a.gguf' });
    expect(request !== 'help' && request.run).toMatchObject({ grow: 'always', minServers: 2 });
    expect(parseRunArgs(['-m', 'b.gguf', '--', 'llama-server', '--model=a.gguf'])).toMatchObject({ model: 'b.gguf' });
    expect(parseRunArgs(['--no-plan', '--', 'llama-server', '-m', 'a.gguf'])).not.toHaveProperty('model');
    expect(parseRunArgs(['--help'])).toBe('help');
  });

  it('refuses a missing command, --model with --no-plan, and a bad --grow', () => {
    expect(() => parseRunArgs(['--grow', 'idle'])).toThrow(/the command to run is missing/);
    expect(() => parseRunArgs(['-m', 'a', '--no-plan', '--', 'x'])).toThrow(/choose one/);
    expect(() => parseRunArgs(['--grow', 'later', '--', 'x'])).toThrow(/grow: must be idle, always or never/);
  });
});
