// A real Prometheus (Debian's package) scrapes serve's /metrics and discovers the cluster's
// llama-server through /api/prometheus-sd; the test reads Prometheus's own API for the
// series and the targets. Without the package the test fails in CI naming it.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { configFile } from '../helpers/config.js';
import { stopOnFinish } from '../helpers/coordinator.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { get } from '../helpers/http.js';
import { llmHttpServer } from '../helpers/llm-http.js';
import { closedPort, eventually } from '../helpers/net.js';
import { foreignEnv, requireTools, skipWithout } from '../helpers/tools.js';
import { isLog, startWatch, type LogLine } from '../helpers/watch.js';

interface Target {
  scrapePool: string;
  scrapeUrl: string;
  health: string;
  labels: Record<string, string>;
}

describe.skipIf(skipWithout(['prometheus', 'prometheus']))('Prometheus', () => {
  it('scrapes /metrics and discovers the llama-server that exposes metrics', async () => {
    requireTools(['prometheus', 'prometheus']);
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.1.120' });
    // On the backend's own host: where serve looks for HTTP backends without --subnet.
    const llama = await llmHttpServer('llama-server-metrics', '127.0.1.120');
    const plain = await llmHttpServer('llama-server', '127.0.1.120'); // no /metrics: not a target
    const serve = startWatch(
      [
        '--sources',
        'config',
        '--config',
        configFile([`127.0.1.120:${peer.port}`]),
        '--listen',
        '127.0.0.1:0',
        '--interval',
        '2s',
        '--http-ports',
        `${llama},${plain}`,
      ],
      {},
      'serve',
    );
    const url = (await serve.waitFor<LogLine>('serving', isLog('serving'))).url as string;
    await serve.waitFor('metrics targets', isLog('metrics targets'), 15_000);
    expect(JSON.parse((await get(`${url}/api/prometheus-sd`)).body)).toEqual([
      { targets: [`127.0.1.120:${llama}`], labels: { service: 'llama-server', version: 'b6402-a1b2c3d4' } },
    ]);

    const dir = mkdtempSync(join(tmpdir(), 'sb-prometheus-'));
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      `global:
  scrape_interval: 1s
scrape_configs:
  - job_name: scan-backends
    static_configs:
      - targets: ['${url.replace('http://', '')}']
  - job_name: llm
    http_sd_configs:
      - url: ${url}/api/prometheus-sd
        refresh_interval: 1s
`,
    );
    const port = await closedPort('127.0.0.1');
    const prometheus = spawn(
      'prometheus',
      [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: 'ignore', detached: true, env: foreignEnv() },
    );
    stopOnFinish(prometheus);
    const api = `http://127.0.0.1:${port}`;
    const ready = await eventually(
      async () => (await get(`${api}/-/ready`).catch(() => ({ status: 0 }))).status === 200,
      20_000,
    );
    expect(ready).toBe(true);

    // Both jobs' targets up: serve itself, and the llama-server found through service discovery.
    let targets: Target[] = [];
    const bothUp = await eventually(async () => {
      const answer = await get(`${api}/api/v1/targets`).catch(() => undefined);
      targets = answer ? (JSON.parse(answer.body).data.activeTargets as Target[]) : [];
      return targets.length === 2 && targets.every((t) => t.health === 'up');
    }, 30_000);
    expect(bothUp, JSON.stringify(targets)).toBe(true);
    const discovered = targets.find((t) => t.scrapePool === 'llm');
    expect(discovered).toMatchObject({
      scrapeUrl: `http://127.0.1.120:${llama}/metrics`,
      labels: { service: 'llama-server', job: 'llm' },
    });

    const query = async (q: string) =>
      JSON.parse((await get(`${api}/api/v1/query?query=${encodeURIComponent(q)}`)).body).data.result as {
        metric: Record<string, string>;
        value: [number, string];
      }[];
    expect(await eventually(async () => (await query('scan_backends_backend_up')).length === 1, 15_000)).toBe(true);
    const up = await query('scan_backends_backend_up');
    expect(up[0]?.metric).toMatchObject({ backend: `127.0.1.120:${peer.port}`, job: 'scan-backends' });
    expect(up[0]?.value[1]).toBe('1');
    expect(Number((await query('scan_backends_device_total_bytes'))[0]?.value[1])).toBeGreaterThan(0);
    const tokens = await query('llamacpp:prompt_tokens_total');
    expect(tokens[0]?.value[1]).toBe('42');

    serve.signal('SIGTERM');
    expect((await serve.exited).code).toBe(0);
  }, 90_000);
});
