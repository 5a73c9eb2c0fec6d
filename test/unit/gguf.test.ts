// The GGUF header reader on files written by test/helpers/gguf-writer.ts: replicas of real
// models, and every hostile shape a downloaded file can take.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { GgufError, InvalidOptionError } from '../../lib/common/errors.js';
import { GgufType, KEPT_ARRAY_ELEMENTS, readGgufHeader } from '../../lib/plan/gguf.js';
import { modelMemory } from '../../lib/plan/model-memory.js';
import { ggufImage, llamaTensors, T, tempPath, writeGguf, writeImage, type GgufSpec } from '../helpers/gguf-writer.js';
import { rng } from '../helpers/rng.js';

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

/** The message of what `path` is refused with; fails the test on anything but a GgufError. */
async function refusal(path: string): Promise<string> {
  const error = await readGgufHeader(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GgufError);
  expect((error as GgufError).code).toBe('SB_GGUF');
  return (error as Error).message;
}

/** `image` with the u64 at `at` replaced by `value`. */
function patched(header: Buffer, at: number, value: bigint, bytes: 4 | 8 = 8): Buffer {
  const copy = Buffer.from(header);
  if (bytes === 8) copy.writeBigUInt64LE(value, at);
  else copy.writeUInt32LE(Number(value), at);
  return copy;
}

// A tiny model: one key "a" (u8 array) first, so the byte offsets below are fixed:
// magic 0, version 4, tensors 8, kvs 16, key length 24, key 32, type 33, element type 37,
// array length 41, elements 49.
const TINY: GgufSpec = {
  kv: [
    ['a', T.ARRAY, [T.U8, [1, 2, 3]]],
    ['general.architecture', T.STRING, 'llama'],
  ],
  tensors: [
    { name: 'token_embd.weight', dims: [64, 10], type: 'Q8_0' },
    { name: 'blk.0.attn_q.weight', dims: [64, 64], type: 'F16' },
  ],
};

describe('hostile files', () => {
  it('refuses a FIFO and /dev/zero without reading them', async () => {
    const fifo = tempPath('fifo.gguf');
    execFileSync('mkfifo', [fifo]);
    expect(await refusal(fifo)).toBe(`${fifo}: a FIFO, not a regular file`);
    expect(await refusal('/dev/zero')).toBe('/dev/zero: a character device, not a regular file');
    expect(await refusal('/nonexistent/model.gguf')).toMatch(/^\/nonexistent\/model\.gguf: cannot open: ENOENT/);
  });

  it('refuses the file cut at every byte of its header, naming where it ends', async () => {
    const image = ggufImage(TINY);
    const path = tempPath('cut.gguf');
    for (let cut = 0; cut < image.header.length; cut++) {
      writeImage(path, { header: image.header.subarray(0, cut), fileBytes: cut });
      expect(await refusal(path)).toMatch(/byte \d+: (the file ends at byte \d+|tensor .* end past the end)/);
    }
    writeImage(path, { header: image.header, fileBytes: image.fileBytes - 1 });
    expect(await refusal(path)).toMatch(
      /tensor blk\.0\.attn_q\.weight: its 8192 bytes .* end past the end of the file/,
    );
  });

  it('says a big-endian file is big-endian, and refuses versions 1 and 4', async () => {
    expect(await refusal(writeGguf('be.gguf', { ...TINY, bigEndian: true }))).toMatch(
      /byte 4: version 3 written big-endian/,
    );
    expect(await refusal(writeGguf('v1.gguf', { ...TINY, version: 1 }))).toMatch(/byte 4: GGUF version 1 /);
    expect(await refusal(writeGguf('v4.gguf', { ...TINY, version: 4 }))).toMatch(/byte 4: GGUF version 4;/);
  });

  it('refuses absurd counts and lengths before allocating for them', async () => {
    const { header, fileBytes } = ggufImage(TINY);
    const cases: [Buffer, RegExp][] = [
      [patched(header, 8, 2n ** 40n), /byte 8: the tensor count is 1099511627776; at most 100000/],
      [patched(header, 16, 100_001n), /byte 16: the metadata count is 100001; at most 100000/],
      [patched(header, 24, 2n ** 60n), /byte 24: the length of metadata key 0 is 1152921504606846976; at most 1048576/],
      [patched(header, 41, 2n ** 40n), /byte 41: the length of a is 1099511627776; at most/],
      [patched(header, 41, 2n ** 26n), /byte 49: the 67108864 elements of a would end past the 64 MiB header cap/],
      [patched(header, 37, 9n, 4), /byte 37: a: an array of arrays/],
      [patched(header, 37, 13n, 4), /byte 37: a: unknown array element type 13/],
      [patched(header, 33, 77n, 4), /byte 33: a: unknown value type 77/],
    ];
    for (const [bytes, message] of cases) {
      expect(await refusal(writeImage(tempPath('absurd.gguf'), { header: bytes, fileBytes }))).toMatch(message);
    }
  });

  it('names an unknown and a removed tensor type', async () => {
    const spec = (type: number): GgufSpec => ({ kv: [], tensors: [{ name: 'blk.0.x.weight', dims: [32], type }] });
    expect(await refusal(writeGguf('t99.gguf', spec(99)))).toMatch(/tensor blk\.0\.x\.weight: unknown ggml type 99/);
    expect(await refusal(writeGguf('t31.gguf', spec(31)))).toMatch(/ggml type 31 \(Q4_0_4_4\) was removed/);
    expect(await refusal(writeGguf('t5.gguf', spec(5)))).toMatch(/ggml type 5 \(Q4_3\) was removed/);
  });

  it('refuses shapes ggml cannot hold', async () => {
    const one = (tensor: GgufSpec['tensors'][number]) => writeGguf('shape.gguf', { kv: [], tensors: [tensor] });
    expect(await refusal(one({ name: 'x', dims: [1, 1, 1, 1, 1], type: 'F32' }))).toMatch(
      /tensor x has 5 dimensions; ggml has at most 4/,
    );
    expect(await refusal(one({ name: 'n'.repeat(64), dims: [1], type: 'F32' }))).toMatch(
      /byte 24: tensor name "n{64}" is longer than ggml's 63 bytes/,
    );
    expect(await refusal(one({ name: 'q', dims: [100, 2], type: 8, bytes: 32 }))).toMatch(
      /tensor q: ne0 = 100 is not a multiple of Q8_0's block of 32/,
    );
    const twice = writeGguf('dup.gguf', {
      kv: [],
      tensors: [
        { name: 'x', dims: [8], type: 'F32' },
        { name: 'x', dims: [8], type: 'F32' },
      ],
    });
    expect(await refusal(twice)).toMatch(/duplicate tensor name "x"/);
    // a name of exactly 63 bytes is what ggml holds
    const header = await readGgufHeader(one({ name: 'n'.repeat(63), dims: [4, 4], type: 'F32' }));
    expect(header.tensors[0]?.bytes).toBe(64);
  });

  it('refuses a duplicate key and an alignment that is no power of two', async () => {
    const dup = writeGguf('dupkey.gguf', {
      kv: [
        ['k', T.U32, 1],
        ['k', T.U32, 2],
      ],
      tensors: [],
    });
    expect(await refusal(dup)).toMatch(/byte 41: duplicate metadata key "k"/);
    const align = writeGguf('align.gguf', { kv: [['general.alignment', T.U32, 24]], tensors: [] });
    expect(await refusal(align)).toMatch(/byte 24: general.alignment must be a u32 power of two, got 24/);
  });

  it('honours general.alignment for the data offset', async () => {
    const spec: GgufSpec = { kv: [['general.alignment', T.U32, 64]], tensors: TINY.tensors };
    const image = ggufImage(spec);
    const header = await readGgufHeader(writeGguf('align64.gguf', spec));
    expect(header.alignment).toBe(64);
    expect(header.dataOffset % 64).toBe(0);
    expect(header.dataOffset).toBe(image.header.length);
    expect(header.tensors.map((t) => t.offset)).toEqual(image.layout.map(([offset]) => offset));
  });

  it('keeps the first 4096 elements of a long array and its full length', async () => {
    const tokens = Array.from({ length: 10_000 }, (_, i) => `t${i}`);
    const header = await readGgufHeader(
      writeGguf('vocab.gguf', { kv: [['tokenizer.ggml.tokens', T.ARRAY, [T.STRING, tokens]]], tensors: [] }),
    );
    const value = header.metadata.get('tokenizer.ggml.tokens')?.value as { length: number; values: string[] };
    expect(value.length).toBe(10_000);
    expect(value.values).toHaveLength(KEPT_ARRAY_ELEMENTS);
    expect(value.values.at(-1)).toBe('t4095');
  });
});

describe('parser fuzz (seeded, bounded)', () => {
  const SEED = 0x6775_6766;
  const ROUNDS = 2400;

  it(`${ROUNDS} mutated files end in a header or a GgufError (seed ${SEED.toString(16)})`, async () => {
    const bases = [
      ggufImage(TINY),
      ggufImage(MODEL_A),
      ggufImage({
        version: 2,
        kv: [
          ['general.alignment', T.U32, 64],
          ['s', T.STRING, 'héllo'],
          ['f', T.F64, 1.5],
          ['b', T.BOOL, true],
          ['i', T.I64, -5n],
          ['arr', T.ARRAY, [T.STRING, ['a', 'bb', 'ccc']]],
          ['h', T.ARRAY, [T.I16, [1, -2, 3]]],
        ],
        tensors: TINY.tensors,
      }),
    ];
    const next = rng(SEED);
    const int = (n: number) => Math.floor(next() * n);
    const path = tempPath('fuzz.gguf');
    const outcomes = { parsed: 0, refused: 0 };
    const started = Date.now();
    for (let round = 0; round < ROUNDS; round++) {
      const base = bases[round % bases.length] as (typeof bases)[number];
      const bytes = Buffer.from(base.header);
      let fileBytes = base.fileBytes;
      const kind = int(3);
      if (kind === 0) {
        for (let flips = 1 + int(8); flips > 0; flips--) {
          const at = int(bytes.length);
          bytes[at] = (bytes[at] as number) ^ (1 << int(8));
        }
      } else if (kind === 1) {
        fileBytes = int(bytes.length + 64);
      } else {
        // A count or length inflated: a u64 somewhere replaced by a small, large or huge value.
        const at = int(bytes.length - 8);
        const values = [BigInt(int(1 << 16)), BigInt(int(2 ** 31)) << 8n, 2n ** 63n - 1n, 2n ** 64n - 1n];
        bytes.writeBigUInt64LE(values[int(values.length)] as bigint, at);
      }
      writeImage(path, { header: bytes.subarray(0, Math.min(bytes.length, fileBytes)), fileBytes });
      try {
        const header = await readGgufHeader(path);
        expect(header.dataOffset).toBeLessThanOrEqual(header.fileBytes);
        outcomes.parsed++;
        // What parses goes on to the arithmetic, which may refuse it only with its own errors.
        try {
          modelMemory(header, { ctx: 0, cacheType: 'q8_0' });
        } catch (error) {
          if (!(error instanceof GgufError || error instanceof InvalidOptionError)) throw error;
        }
      } catch (error) {
        if (!(error instanceof GgufError)) {
          throw new Error(`round ${round} (seed ${SEED.toString(16)}, kind ${kind}): ${String(error)}`, {
            cause: error,
          });
        }
        outcomes.refused++;
      }
    }
    // Both outcomes occur, or the mutations are not reaching the parser.
    expect(outcomes.parsed).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(ROUNDS / 4);
    expect(process.memoryUsage().heapUsed).toBeLessThan(512 * 1024 * 1024);
    console.log(`gguf fuzz: ${JSON.stringify(outcomes)} in ${Date.now() - started} ms, seed ${SEED.toString(16)}`);
  }, 120_000);
});
