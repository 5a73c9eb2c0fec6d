// Every probe step's evidence counts: a port that answered one step in another protocol is no
// busy ggml-rpc server because a later step (HELLO) met silence. redis-server is such a port:
// it resets the HTTP probe, answers the gRPC preface with "-ERR unknown command", and waits
// for a newline after HELLO.
import { describe, expect, it } from 'vitest';

import { scanAll } from '../../lib/scan/job.js';
import { runCli } from '../helpers/cli.js';
import { startRedis } from '../helpers/redis.js';

const HOST = '127.0.0.174';
const engines = ['native', 'js'] as const;

describe('a port that answered another protocol', () => {
  it.each(engines)('redis-server is no busy ggml-rpc guess in probe (%s engine)', async (engine) => {
    const redis = await startRedis(HOST);
    const run = await runCli([
      'probe',
      `${HOST}:${redis.port}`,
      '--engine',
      engine,
      '--probe-timeout',
      '500',
      '--format',
      'json',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    const result = JSON.parse(run.stdout).results[0];
    expect(result).toMatchObject({ host: HOST, port: redis.port, state: 'open', service: 'unknown' });
    expect(result.health).toBe('unknown');
    expect(result.guess).toBeUndefined();
    // Both engines say what redis sent, in the same words.
    expect(result.reason).toMatch(
      /^another service: the grpc probe got an answer that is not ggml-rpc \(not an HTTP\/2 server: it answered "-ERR unknown com"\); ggml-rpc: /,
    );
  });

  it.each(engines)('and in a scan with the probe (%s engine)', async (engine) => {
    const redis = await startRedis(HOST);
    const report = await scanAll(HOST, { ports: [redis.port], probe: 'auto', engine, probeTimeoutMs: 500 });
    expect(report.engine).toBe(engine);
    const [result] = report.results;
    expect(result).toMatchObject({ state: 'open', service: 'unknown', health: 'unknown' });
    expect(result?.guess).toBeUndefined();
    expect(result?.reason).toContain('it answered "-ERR unknown com"');
  });
});
