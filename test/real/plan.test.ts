// `scan-backends plan` against real ggml-rpc peers on 127.0.5.x that report devices with
// memory, over GGUF files written header-only (sparse) by the test's own writer.
import { writeFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { configFile } from '../helpers/config.js';
import { ggmlRpcPeer } from '../helpers/ggml-rpc-peer.js';
import { tempPath, writeLlamaModel } from '../helpers/gguf-writer.js';
import { closedPort } from '../helpers/net.js';
import { valid } from '../helpers/schemas.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

// A 7B-class llama: 32 layers, 4096 wide, GQA 32/8 heads, Q8_0 weights.
const DIMS = { layers: 32, embd: 4096, heads: 32, kvHeads: 8, ff: 14336, vocab: 32000 };
const CONTEXT = 4096;
/** Q8_0: 34 bytes a block of 32. */
const q8 = (elements: number) => (elements / 32) * 34;
const KV_WIDTH = (DIMS.embd / DIMS.heads) * DIMS.kvHeads;
/** Each layer's weights, from the dimensions (the F32 norms are 2 × 4096 × 4 bytes). */
const LAYER_BYTES =
  q8(2 * DIMS.embd * DIMS.embd + 2 * DIMS.embd * KV_WIDTH + 3 * DIMS.embd * DIMS.ff) + 2 * DIMS.embd * 4;
/** K and V, f16, at the model's context length. */
const KV_BYTES = 2 * KV_WIDTH * CONTEXT * 2;
const OUTPUT_BYTES = q8(DIMS.embd * DIMS.vocab) + DIMS.embd * 4;
const MODEL_ON_DEVICES = DIMS.layers * (LAYER_BYTES + KV_BYTES) + OUTPUT_BYTES;

function model7b(): string {
  return writeLlamaModel('model-7b.gguf', DIMS, { type: 'Q8_0', contextLength: CONTEXT, name: 'Replica 7B' });
}

const device = (free: number) => ({ freeBytes: free, totalBytes: free + GiB });

describe('scan-backends plan', () => {
  it('fits on one roomy server: exit 0, the table, and --format args exactly', async () => {
    const small = await ggmlRpcPeer({ generation: '5.x', host: '127.0.5.1', devices: [device(4 * GiB)] });
    const big = await ggmlRpcPeer({ generation: '5.x', host: '127.0.5.2', devices: [device(16 * GiB)] });
    const config = configFile([`127.0.5.1:${small.port}`, `127.0.5.2:${big.port}`]);
    const file = model7b();
    const source = ['--sources', 'config', '--config', config];
    const table = await runCli(['plan', file, ...source, '--format', 'table']);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('Model: Replica 7B (llama), 32 layers');
    expect(table.stdout).toMatch(new RegExp(`RPC0 +127\\.0\\.5\\.2:${big.port} +0 +0-31\\+output `));
    expect(table.stdout).toContain(`Left out:\n  127.0.5.1:${small.port}  not needed`);
    const args = await runCli(['plan', file, ...source, '--format', 'args']);
    expect(args.code).toBe(0);
    expect(args.stdout).toBe(`--rpc 127.0.5.2:${big.port} --tensor-split 33 -ngl 999\n`);
    const tuned = await runCli(['plan', file, ...source, '--format', 'args', '--ctx', '2048', '--cache-type', 'q8_0']);
    expect(tuned.stdout).toBe(
      `--rpc 127.0.5.2:${big.port} --tensor-split 33 -ngl 999 -c 2048 --cache-type-k q8_0 --cache-type-v q8_0\n`,
    );
  });

  it('splits over two servers as llama.cpp will read it; the JSON is schema 1', async () => {
    // Neither holds the model alone with its 512 MiB reserve; together they do.
    const alone = MODEL_ON_DEVICES + 512 * MiB;
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.5.3', devices: [device(Math.round(alone * 0.55))] });
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.5.4', devices: [device(Math.round(alone * 0.65))] });
    const config = configFile([`127.0.5.3:${a.port}`, `127.0.5.4:${b.port}`]);
    const run = await runCli(['plan', model7b(), '--sources', 'config', '--config', config, '--format', 'json']);
    expect(run.code).toBe(0);
    const plan = JSON.parse(run.stdout);
    expect(valid('plan', plan)).toBe('valid');
    // The roomier server last: it also holds the output layer.
    expect(plan.rpc).toEqual([`127.0.5.3:${a.port}`, `127.0.5.4:${b.port}`]);
    const [first, last] = plan.tensorSplit as number[];
    expect((first as number) + (last as number)).toBe(DIMS.layers + 1);
    expect(plan.devices[0]).toMatchObject({
      layers: { first: 0, end: first, output: false },
      weightBytes: (first as number) * LAYER_BYTES,
      kvBytes: (first as number) * KV_BYTES,
    });
    expect(plan.devices[1]).toMatchObject({
      layers: { first, end: DIMS.layers, output: true },
      weightBytes: ((last as number) - 1) * LAYER_BYTES + OUTPUT_BYTES,
    });
    for (const d of plan.devices) expect(d.freeBytes - d.expectedBytes).toBe(d.headroomBytes);
    expect(plan.devices.every((d: { headroomBytes: number }) => d.headroomBytes >= 0)).toBe(true);
    expect(plan.model.hostBytes).toBe(q8(DIMS.embd * DIMS.vocab)); // token embeddings stay home
  });

  it('does not fit: exit 1 with what it needs, what they have, and who was left out and why', async () => {
    const a = await ggmlRpcPeer({ generation: '5.x', host: '127.0.5.5', devices: [device(2 * GiB)] });
    const old = await ggmlRpcPeer({ generation: '3.x', host: '127.0.5.6', devices: [device(64 * GiB)] });
    const down = await closedPort('127.0.5.7');
    const b = await ggmlRpcPeer({ generation: '5.x', host: '127.0.5.8', devices: [device(2 * GiB)] });
    const config = configFile([
      `127.0.5.5:${a.port}`,
      `127.0.5.6:${old.port}`,
      `127.0.5.7:${down}`,
      `127.0.5.8:${b.port}`,
    ]);
    const source = ['--sources', 'config', '--config', config];
    const table = await runCli(['plan', model7b(), ...source, '--format', 'table']);
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(/Does not fit: needs [0-9.]+ GiB \(.*\); the usable servers have 4\.00 GiB free/);
    expect(table.stdout).toContain(`127.0.5.6:${old.port}  other protocol: ggml-rpc 3.6.1`);
    expect(table.stdout).toContain(`127.0.5.7:${down}  down: closed`);
    const args = await runCli(['plan', model7b(), ...source, '--format', 'args']);
    expect(args.code).toBe(1);
    expect(args.stdout).toBe('');
    expect(args.stderr).toContain('Does not fit: needs');
    const json = await runCli(['plan', model7b(), ...source, '--format', 'json']);
    const plan = JSON.parse(json.stdout);
    expect(valid('plan', plan)).toBe('valid');
    expect(plan).toMatchObject({ fits: false, rpc: [], args: [], availableBytes: 4 * GiB });
    expect(plan.neededBytes).toBe(MODEL_ON_DEVICES + 2 * 512 * MiB);
  });

  it('a bad model file is exit 3 with the GGUF error, before any server is asked', async () => {
    const peer = await ggmlRpcPeer({ generation: '5.x', host: '127.0.5.9' });
    const config = configFile([`127.0.5.9:${peer.port}`]);
    const file = tempPath('not-a-model.gguf');
    writeFileSync(file, 'this is no GGUF file, only text\n');
    const run = await runCli(['plan', file, '--sources', 'config', '--config', config, '--format', 'args']);
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`scan-backends: ${file}: `);
    expect(run.stderr).toMatch(/GGUF/);
    expect(peer.connections).toBe(0);
  });

  it('usage errors are exit 2', async () => {
    for (const args of [
      ['plan'],
      ['plan', 'a.gguf', 'b.gguf'],
      ['plan', 'a.gguf', '--cache-type', 'q5_1'],
      ['plan', 'a.gguf', '--reserve', '12 parsecs'],
      ['plan', 'a.gguf', '--ctx', '-1'],
      ['plan', 'a.gguf', '--format', 'rpc'],
    ]) {
      const run = await runCli(args);
      expect([args.join(' '), run.code]).toEqual([args.join(' '), 2]);
      expect(run.stderr).toContain('scan-backends plan --help');
    }
  });

  it('has its help, its line in the command list and its flags in shell completion', async () => {
    for (const args of [
      ['plan', '--help'],
      ['help', 'plan'],
    ]) {
      const run = await runCli(args);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('Usage: scan-backends plan MODEL.gguf');
      expect(run.stdout).toContain('needs flash attention: add -fa on');
    }
    expect((await runCli(['--help'])).stdout).toContain('plan MODEL.gguf');
    const bash = (await runCli(['completion', 'bash'])).stdout;
    expect(bash).toMatch(/ {4}plan\) words="[^"]*--cache-type[^"]*--reserve/);
  });
});
