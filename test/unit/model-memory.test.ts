// Memory per layer on replicas of the models measured on llama-server (commit 34af94cd9):
// the KV figures below are what its devices reported, divided by the layers they held.
import { describe, expect, it } from 'vitest';

import { GgufError, InvalidOptionError } from '../../lib/common/errors.js';
import { readGgufHeader } from '../../lib/plan/gguf.js';
import { modelMemory, readModelMemory } from '../../lib/plan/model-memory.js';
import { llamaTensors, T, writeGguf, type GgufSpec } from '../helpers/gguf-writer.js';

const MiB = 1024 * 1024;

function llama(o: { layers: number; embd: number; heads: number; kvHeads: number; type: string; ctxTrain: number }) {
  const ff = o.embd * 3;
  const vocab = 32000;
  return {
    spec: {
      kv: {
        'general.architecture': 'llama',
        'general.name': `replica ${o.layers}x${o.embd}`,
        'llama.block_count': o.layers,
        'llama.context_length': o.ctxTrain,
        'llama.embedding_length': o.embd,
        'llama.feed_forward_length': ff,
        'llama.attention.head_count': o.heads,
        'llama.attention.head_count_kv': o.kvHeads,
      },
      tensors: llamaTensors({ ...o, ff, vocab }),
    } satisfies GgufSpec,
    ff,
    vocab,
  };
}

// Model A: 8 layers, 512 wide, 8 heads, 2 KV heads (GQA), F16. Model B: 12 layers, 768, 12/12, Q8_0.
const A = llama({ layers: 8, embd: 512, heads: 8, kvHeads: 2, type: 'F16', ctxTrain: 8192 });
const B = llama({ layers: 12, embd: 768, heads: 12, kvHeads: 12, type: 'Q8_0', ctxTrain: 4096 });
const pathA = writeGguf('model-a.gguf', A.spec);
const pathB = writeGguf('model-b.gguf', B.spec);

describe('KV cache per layer, as llama-server allocated it', () => {
  it('model A at -c 2048, f16: 1 MiB a layer (5 MiB on 5 layers, 3 on 3)', async () => {
    const m = await readModelMemory(pathA, { ctx: 2048, cacheType: 'f16' });
    expect(m.kvBytesPerLayer).toEqual(new Array(8).fill(1 * MiB));
    expect(m.kvBytesPerLayer.slice(0, 5).reduce((a, b) => a + b)).toBe(5 * MiB);
    expect(m.ctx).toBe(2048);
    expect(m.assumptions).toEqual([]);
  });

  it('model B at -c 2048, f16: 6 MiB a layer (42 MiB on 7 layers, 30 on 5)', async () => {
    const m = await readModelMemory(pathB, { ctx: 2048, cacheType: 'f16' });
    expect(m.kvBytesPerLayer.slice(0, 7).reduce((a, b) => a + b)).toBe(42 * MiB);
    expect(m.kvBytesPerLayer.slice(0, 5).reduce((a, b) => a + b)).toBe(30 * MiB);
  });

  it('model A with a q8_0 cache: 0.53125 MiB a layer (2.66 / 1.59 MiB on 5 / 3 layers)', async () => {
    const m = await readModelMemory(pathA, { ctx: 2048, cacheType: 'q8_0' });
    expect(m.kvBytesPerLayer[0]).toBe(0.53125 * MiB);
    expect((5 * (m.kvBytesPerLayer[0] as number)) / MiB).toBeCloseTo(2.66, 2);
    expect((3 * (m.kvBytesPerLayer[0] as number)) / MiB).toBeCloseTo(1.59, 2);
  });

  it('q4_0 takes 18 bytes per 32 elements', async () => {
    const m = await readModelMemory(pathA, { ctx: 2048, cacheType: 'q4_0' });
    expect(m.kvBytesPerLayer[0]).toBe(2048 * ((256 / 32) * 18));
  });

  it('ctx 0 takes the model context_length: model A at 8192 is 20 / 12 MiB on 5 / 3 layers', async () => {
    const m = await readModelMemory(pathA, { ctx: 0, cacheType: 'f16' });
    expect(m.ctx).toBe(8192);
    expect(m.kvBytesPerLayer.slice(0, 5).reduce((a, b) => a + b)).toBe(20 * MiB);
    expect(m.kvBytesPerLayer.slice(0, 3).reduce((a, b) => a + b)).toBe(12 * MiB);
  });

  it('pads the context to a multiple of 256 as llama.cpp does (-c 1000 allocated 1024)', async () => {
    const m = await readModelMemory(pathA, { ctx: 1000, cacheType: 'f16' });
    expect(m.ctx).toBe(1024);
    expect(m.kvBytesPerLayer[0]).toBe(0.5 * MiB);
    expect(m.assumptions).toEqual(['context 1000 padded to 1024, as llama.cpp pads its KV cache']);
  });
});

describe('weights by where llama.cpp puts them', () => {
  it('sums each blk.N into its layer, output and output_norm into the output, token_embd on the host', async () => {
    const m = await readModelMemory(pathB, { ctx: 2048, cacheType: 'f16' });
    const { ff, vocab } = B;
    const q8 = (elements: number) => (elements / 32) * 34;
    const layer = 2 * 768 * 4 + q8(4 * 768 * 768) + q8(3 * 768 * ff);
    expect(m.layerBytes).toEqual(new Array(12).fill(layer));
    expect(m.outputBytes).toBe(768 * 4 + q8(768 * vocab));
    expect(m.hostBytes).toBe(q8(768 * vocab));
    expect(m.architecture).toBe('llama');
    expect(m.name).toBe('replica 12x768');
  });

  it('counts token_embd on the last device too when the output is tied to it, and says so', async () => {
    const spec = llama({ layers: 2, embd: 256, heads: 4, kvHeads: 4, type: 'F16', ctxTrain: 2048 }).spec;
    const path = writeGguf('tied.gguf', { ...spec, tensors: spec.tensors.filter((t) => t.name !== 'output.weight') });
    const m = await readModelMemory(path, { ctx: 0, cacheType: 'f16' });
    expect(m.outputBytes).toBe(256 * 4 + 256 * 32000 * 2);
    expect(m.hostBytes).toBe(256 * 32000 * 2);
    expect(m.assumptions.join(' ')).toMatch(/tied embeddings/);
  });

  it('refuses a layer past block_count', async () => {
    const spec = llama({ layers: 2, embd: 256, heads: 4, kvHeads: 4, type: 'F16', ctxTrain: 2048 }).spec;
    const path = writeGguf('extra-layer.gguf', {
      ...spec,
      tensors: [...spec.tensors, { name: 'blk.2.attn_norm.weight', dims: [256], type: 'F32' }],
    });
    await expect(readModelMemory(path, { ctx: 0, cacheType: 'f16' })).rejects.toThrow(
      /tensor blk\.2\.attn_norm\.weight is in layer 2, but llama\.block_count is 2/,
    );
  });
});

describe('the attention metadata', () => {
  const base = {
    'general.architecture': 'qwen2',
    'qwen2.block_count': 4,
    'qwen2.context_length': 4096,
    'qwen2.embedding_length': 1024,
    'qwen2.attention.head_count': 16,
  };

  it('defaults head_count_kv to head_count and key/value lengths to embedding / heads', async () => {
    const m = await readModelMemory(writeGguf('defaults.gguf', { kv: base, tensors: [] }), {
      ctx: 256,
      cacheType: 'f16',
    });
    expect(m.kvBytesPerLayer).toEqual(new Array(4).fill(256 * 2 * 1024 * 2));
  });

  it('takes key_length, value_length and a per-layer head_count_kv array', async () => {
    const path = writeGguf('per-layer.gguf', {
      kv: [
        ...Object.entries(base).map(([k, v]): [string, number, string | number] => [
          k,
          typeof v === 'string' ? T.STRING : T.U32,
          v,
        ]),
        ['qwen2.attention.key_length', T.U32, 128],
        ['qwen2.attention.value_length', T.U32, 64],
        ['qwen2.attention.head_count_kv', T.ARRAY, [T.I32, [2, 4, 0, 2]]],
      ],
      tensors: [],
    });
    const m = await readModelMemory(path, { ctx: 256, cacheType: 'f16' });
    expect(m.kvBytesPerLayer).toEqual([2, 4, 0, 2].map((kv) => 256 * (128 + 64) * kv * 2));
  });

  it('refuses a per-layer array of the wrong length, naming the key', async () => {
    const path = writeGguf('short-array.gguf', {
      kv: { ...base, 'qwen2.attention.head_count_kv': [2, 2] },
      tensors: [],
    });
    await expect(readModelMemory(path, { ctx: 256, cacheType: 'f16' })).rejects.toThrow(
      /qwen2\.attention\.head_count_kv has 2 values for 4 layers/,
    );
  });

  it('refuses a missing key, naming it', async () => {
    const { ['qwen2.embedding_length']: _, ...rest } = base;
    const path = writeGguf('missing.gguf', { kv: rest, tensors: [] });
    const error = await readModelMemory(path, { ctx: 256, cacheType: 'f16' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GgufError);
    expect((error as Error).message).toMatch(/metadata key qwen2\.embedding_length is missing/);
  });

  it('says what it assumed for an unknown, a recurrent, a sliding-window and an MLA architecture', async () => {
    const unknown = { ...base, 'general.architecture': 'novel' };
    const renamed = Object.fromEntries(Object.entries(unknown).map(([k, v]) => [k.replace(/^qwen2\./, 'novel.'), v]));
    const u = await readModelMemory(writeGguf('novel.gguf', { kv: renamed, tensors: [] }), {
      ctx: 256,
      cacheType: 'f16',
    });
    expect(u.assumptions.join(' ')).toMatch(/architecture novel is not one this estimate knows/);
    expect(u.kvBytesPerLayer[0]).toBe(256 * 2 * 1024 * 2);

    const mamba = { 'general.architecture': 'mamba', 'mamba.block_count': 4, 'mamba.context_length': 4096 };
    const r = await readModelMemory(writeGguf('mamba.gguf', { kv: mamba, tensors: [] }), { ctx: 0, cacheType: 'f16' });
    expect(r.kvBytesPerLayer).toEqual([0, 0, 0, 0]);
    expect(r.assumptions.join(' ')).toMatch(/mamba is recurrent/);

    const swa = { ...base, 'qwen2.attention.sliding_window': 4096 };
    const s = await readModelMemory(writeGguf('swa.gguf', { kv: swa, tensors: [] }), { ctx: 256, cacheType: 'f16' });
    expect(s.assumptions.join(' ')).toMatch(/sliding-window layers \(window 4096\)/);

    const mla = {
      'general.architecture': 'deepseek2',
      'deepseek2.block_count': 2,
      'deepseek2.context_length': 4096,
      'deepseek2.embedding_length': 2048,
      'deepseek2.attention.head_count': 16,
      'deepseek2.attention.kv_lora_rank': 512,
      'deepseek2.rope.dimension_count': 64,
    };
    const d = await readModelMemory(writeGguf('mla.gguf', { kv: mla, tensors: [] }), { ctx: 256, cacheType: 'f16' });
    expect(d.kvBytesPerLayer).toEqual([256 * (576 + 512) * 2, 256 * (576 + 512) * 2]);
    expect(d.assumptions.join(' ')).toMatch(/multi-head latent attention/);
  });

  it('bounds a hostile general.name and refuses bad options before reading', async () => {
    const path = writeGguf('name.gguf', {
      kv: { ...base, 'general.name': `\u001b[2J${'x'.repeat(5000)}` },
      tensors: [],
    });
    const m = modelMemory(await readGgufHeader(path), { ctx: 256, cacheType: 'f16' });
    expect(m.name).not.toContain('\u001b');
    expect(m.name?.length).toBeLessThanOrEqual(128);
    await expect(readModelMemory(path, { ctx: -1, cacheType: 'f16' })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(readModelMemory(path, { ctx: 256, cacheType: 'q5_1' as 'f16' })).rejects.toBeInstanceOf(
      InvalidOptionError,
    );
  });
});
