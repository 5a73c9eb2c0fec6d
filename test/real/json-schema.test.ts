// The JSON Schemas shipped in schemas/ describe what the CLI really prints: every schema: 1
// output, and every NDJSON line, is validated against them here on real peers.
import { describe, expect, it, onTestFinished } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { llmHttpServer } from '../helpers/llm-http.js';
import { closedPort, eventually } from '../helpers/net.js';
import { ajv, valid } from '../helpers/schemas.js';
import { writeLlamaModel } from '../helpers/gguf-writer.js';
import { watchBackends } from '../../lib/watch/watcher.js';

describe('the shipped JSON Schemas', () => {
  it('describe scan and probe JSON and NDJSON, probed and not', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.37' });
    const closed = await closedPort('127.0.0.38');
    const ollama = await llmHttpServer('ollama', '127.0.0.39');
    const scan = await runCli(['scan', '127.0.0.37-38', '-p', `${peer.port},${closed}`, '--probe', '--format', 'json']);
    expect(valid('scan-report', JSON.parse(scan.stdout))).toBe('valid');
    // The timing the scan used: adaptive by default, fixed when --timeout alone is given.
    expect(JSON.parse(scan.stdout).timing).toMatchObject({ mode: 'adaptive', floorMs: 30, ceilingMs: 1000 });
    const fixed = await runCli(['scan', '127.0.0.38', '-p', `${closed}`, '--timeout', '700', '--format', 'json']);
    expect(valid('scan-report', JSON.parse(fixed.stdout))).toBe('valid');
    expect(JSON.parse(fixed.stdout).timing).toMatchObject({ mode: 'fixed', floorMs: 700, timeoutMs: 700, retried: 0 });
    const lines = await runCli(['scan', '127.0.0.37-38', '-p', `${peer.port},${closed}`, '--format', 'ndjson']);
    for (const line of lines.stdout.trim().split('\n')) expect(valid('scan-result', JSON.parse(line))).toBe('valid');
    const probe = await runCli([
      'probe',
      `127.0.0.37:${peer.port}`,
      `127.0.0.39:${ollama}`,
      `127.0.0.38:${closed}`,
      '--format',
      'json',
    ]);
    const report = JSON.parse(probe.stdout);
    expect(report.results.map((r: { service: string }) => r.service)).toEqual(['ggml-rpc', 'ollama', 'unknown']);
    expect(valid('scan-report', report)).toBe('valid');
  });

  it('describe resolve JSON and NDJSON', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.0.40' });
    const closed = await closedPort('127.0.0.41');
    const file = configFile([`127.0.0.40:${peer.port}`, `127.0.0.41:${closed}`, 'bad line']);
    const json = await runCli(['resolve', '--sources', 'config', '--config', file, '--format', 'json']);
    const resolution = JSON.parse(json.stdout);
    expect(resolution.backends).toHaveLength(1);
    expect(valid('resolution', resolution)).toBe('valid');
    const scanned = await runCli([
      'resolve',
      '--sources',
      'scan',
      '--subnet',
      '127.0.0.40-41',
      '-p',
      `${peer.port}`,
      '--format',
      'json',
    ]);
    const byScan = JSON.parse(scanned.stdout);
    expect(valid('resolution', byScan)).toBe('valid');
    expect(byScan.sources[0].timing).toMatchObject({ mode: 'adaptive', retried: 0 });
    const ndjson = await runCli(['resolve', '--sources', 'config', '--config', file, '--format', 'ndjson']);
    const backend = ajv.compile({ $ref: 'resolution.schema.json#/definitions/backend' });
    for (const line of ndjson.stdout.trim().split('\n')) expect(backend(JSON.parse(line))).toBe(true);
  });

  it('reject what breaks the contract: a renamed field, a state that does not exist', () => {
    const good = { host: '127.0.0.1', port: 1, state: 'closed', rttMs: 0.1 };
    expect(valid('scan-result', good)).toBe('valid');
    expect(valid('scan-result', { ...good, state: 'gone' })).toContain('must be equal to one of the allowed values');
    const renamed = { host: good.host, port: good.port, state: good.state, rtt: good.rttMs };
    expect(valid('scan-result', renamed)).toContain("must have required property 'rttMs'");
  });

  it('describe watch events and the snapshot backends', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.80' });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.81', version: [5, 1, 0] });
    const config = configFile([`127.0.1.80:${a.port}`, `127.0.1.81:${b.port}`]);
    const watcher = watchBackends({
      sources: ['config'],
      configPath: config,
      intervalMs: 60_000,
      healthIntervalMs: 100,
      failAfter: 1,
      recoverAfter: 1,
      forgetAfterMs: 1000,
      timeoutMs: 300,
      probeTimeoutMs: 500,
    });
    onTestFinished(() => watcher.close());
    await watcher.ready;
    await b.close();
    // down, then forgotten (removed) a second later; a is still up.
    expect(await eventually(() => watcher.eventsSince(0)?.some((e) => e.type === 'removed') === true, 8000)).toBe(true);
    const events = watcher.eventsSince(0) ?? [];
    expect(events.map((e) => e.type)).toEqual(['added', 'added', 'down', 'removed']);
    for (const e of events) expect(valid('watch-event', JSON.parse(JSON.stringify(e)))).toBe('valid');
    const check = ajv.getSchema('watch-event.schema.json#/definitions/watchedBackend');
    for (const backend of watcher.snapshot().backends) expect(check?.(backend)).toBe(true);
  });

  it('describe plan JSON, fitting or not, and refuse a plan with a negative headroom', async () => {
    const peer = await ggmlRpcPeer({
      generation: '5.x',
      host: '127.0.1.82',
      devices: [{ freeBytes: 2 ** 30, totalBytes: 2 ** 31 }],
    });
    const config = configFile([`127.0.1.82:${peer.port}`]);
    const dims = { layers: 4, embd: 256, heads: 4, kvHeads: 4, ff: 512, vocab: 1000 };
    const file = writeLlamaModel('tiny.gguf', dims, { type: 'F32', contextLength: 2048 });
    const source = ['--sources', 'config', '--config', config, '--format', 'json'];
    const fits = JSON.parse((await runCli(['plan', file, ...source])).stdout);
    expect(fits.fits).toBe(true);
    expect(valid('plan', fits)).toBe('valid');
    const tooBig = JSON.parse((await runCli(['plan', file, ...source, '--reserve', '2GiB'])).stdout);
    expect(tooBig.fits).toBe(false);
    expect(valid('plan', tooBig)).toBe('valid');
    const broken = { ...fits, devices: [{ ...fits.devices[0], headroomBytes: -1 }] };
    expect(valid('plan', broken)).toContain('must be >= 0');
  });
});
