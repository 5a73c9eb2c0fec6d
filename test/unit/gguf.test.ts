// The GGUF header reader on files written by test/helpers/gguf-writer.ts: replicas of real
// models, and every hostile shape a downloaded file can take.
import { describe, expect, it } from 'vitest';

import { GgufError } from '../../lib/common/errors.js';
import { GgufType, readGgufHeader } from '../../lib/plan/gguf.js';
import { ggufImage, llamaTensors, T, writeGguf } from '../helpers/gguf-writer.js';

const MODEL_A = {
  kv: {
    'general.architecture': 'llama',
    'general.name': 'model A',
    'llama.block_count': 8,
    'llama.context_length': 8192,
    'llama.embedding_length': 512,
    'llama.attention.head_count': 8,
    'llama.attention.head_count_kv': 2,
  },
  tensors: llamaTensors({ layers: 8, embd: 512, heads: 8, kvHeads: 2, ff: 1536, vocab: 32000, type: 'F16' }),
};

describe('readGgufHeader', () => {
  it('reads the metadata, tensor infos and data offset of a v3 replica', async () => {
    const image = ggufImage(MODEL_A);
    const header = await readGgufHeader(writeGguf('a.gguf', MODEL_A));
    expect(header.version).toBe(3);
    expect(header.alignment).toBe(32);
    expect(header.dataOffset).toBe(image.header.length);
    expect(header.fileBytes).toBe(image.fileBytes);
    expect(header.metadata.get('llama.block_count')).toEqual({ type: GgufType.U32, value: 8 });
    expect(header.metadata.get('general.name')?.value).toBe('model A');
    expect(header.tensors).toHaveLength(MODEL_A.tensors.length);
    const q = header.tensors.find((t) => t.name === 'blk.3.attn_q.weight');
    expect(q).toMatchObject({ dims: [512, 512], bytes: 512 * 512 * 2 });
    expect(q?.type.name).toBe('F16');
    expect(header.tensors.map((t) => [t.offset, t.bytes])).toEqual(image.layout);
  });

  it('reads version 2 the same way', async () => {
    const header = await readGgufHeader(writeGguf('a-v2.gguf', { ...MODEL_A, version: 2 }));
    expect(header.version).toBe(2);
    expect(header.tensors).toHaveLength(MODEL_A.tensors.length);
  });

  it('refuses a file that is not GGUF, naming byte 0', async () => {
    const path = writeGguf('x.gguf', { kv: [], tensors: [] });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, 'GGML\x03\x00\x00\x00 and then some');
    await expect(readGgufHeader(path)).rejects.toThrow(/byte 0: not a GGUF file/);
    await expect(readGgufHeader(path)).rejects.toBeInstanceOf(GgufError);
  });

  it('keeps arrays with their full length', async () => {
    const path = writeGguf('arr.gguf', {
      kv: [['llama.attention.head_count_kv', T.ARRAY, [T.I32, [2, 2, 0, 2]]]],
      tensors: [],
    });
    const header = await readGgufHeader(path);
    expect(header.metadata.get('llama.attention.head_count_kv')?.value).toEqual({
      type: GgufType.I32,
      length: 4,
      values: [2, 2, 0, 2],
    });
  });
});
