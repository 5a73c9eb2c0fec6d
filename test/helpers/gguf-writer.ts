// Writes GGUF files from the format's own facts (not through lib/plan): the header, the
// metadata, the tensor infos, then the file truncated (sparse) to the size its data would
// take, so a model of gigabytes costs a few hundred bytes of disk. Replicas of real models
// and hostile variants of them are made here.
import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** gguf_type ids. */
export const T = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;

export type Scalar = number | bigint | boolean | string;
/** [key, gguf type, value]; an array value is [element type, values]. */
export type KvEntry = [string, number, Scalar | [number, Scalar[]]];

// ggml types the replicas use: [id, elements per block, bytes per block], from ggml-common.h's
// block structs (block_q8_0: a half and 32 int8 = 34 bytes). Written here again on purpose: the
// writer is the parser's witness, so it must not share the parser's table.
const TYPES: Record<string, [number, number, number]> = {
  F32: [0, 1, 4],
  F16: [1, 1, 2],
  Q4_0: [2, 32, 18],
  Q8_0: [8, 32, 34],
  Q4_K: [12, 256, 144],
  Q6_K: [14, 256, 210],
  BF16: [30, 1, 2],
};

export interface TensorSpec {
  name: string;
  /** ne0 first. */
  dims: number[];
  /** A name from the table above, or a raw ggml type id (then give `bytes`). */
  type: string | number;
  /** The tensor's data size when the type is a raw id. */
  bytes?: number;
}

export interface GgufSpec {
  version?: number;
  kv: KvEntry[] | Record<string, Scalar | Scalar[]>;
  tensors: TensorSpec[];
  /** Write counts and numbers big-endian (the version then reads byte-swapped). */
  bigEndian?: boolean;
}

export interface GgufImage {
  /** Header, metadata, tensor infos and the padding to the data section. */
  header: Buffer;
  /** The size of the whole file, data included. */
  fileBytes: number;
  /** Each tensor's [offset from the data section, bytes]. */
  layout: [number, number][];
}

function inferType(value: Scalar): number {
  if (typeof value === 'string') return T.STRING;
  if (typeof value === 'boolean') return T.BOOL;
  if (typeof value === 'bigint') return T.U64;
  if (!Number.isInteger(value)) return T.F32;
  return value < 0 ? T.I32 : T.U32;
}

/** Object form → entries: strings, booleans, u32/i32 integers, f32, u64 bigints, arrays of them. */
function entries(kv: GgufSpec['kv']): KvEntry[] {
  if (Array.isArray(kv)) return kv;
  return Object.entries(kv).map(([key, value]): KvEntry => {
    if (!Array.isArray(value)) return [key, inferType(value), value];
    return [key, T.ARRAY, [value.length > 0 ? inferType(value[0] as Scalar) : T.U32, value]];
  });
}

class Out {
  private parts: Buffer[] = [];
  length = 0;
  constructor(private readonly bigEndian: boolean) {}

  push(buffer: Buffer): void {
    this.parts.push(buffer);
    this.length += buffer.length;
  }
  /** Little-endian, or its bytes reversed: big-endian. */
  private number(b: Buffer): void {
    this.push(this.bigEndian ? b.reverse() : b);
  }
  int(value: number | bigint, bytes: number, signed = false): void {
    const b = Buffer.alloc(bytes);
    if (bytes === 8 && signed) b.writeBigInt64LE(BigInt(value));
    else if (bytes === 8) b.writeBigUInt64LE(BigInt(value));
    else if (signed) b.writeIntLE(Number(value), 0, bytes);
    else b.writeUIntLE(Number(value), 0, bytes);
    this.number(b);
  }
  float(value: number, bytes: 4 | 8): void {
    const b = Buffer.alloc(bytes);
    if (bytes === 4) b.writeFloatLE(value);
    else b.writeDoubleLE(value);
    this.number(b);
  }
  string(value: string): void {
    const bytes = Buffer.from(value, 'utf8');
    this.int(bytes.length, 8);
    this.push(bytes);
  }
  scalar(type: number, value: Scalar): void {
    switch (type) {
      case T.U8:
      case T.I8:
        return this.int(value as number, 1, type === T.I8);
      case T.U16:
      case T.I16:
        return this.int(value as number, 2, type === T.I16);
      case T.U32:
      case T.I32:
        return this.int(value as number, 4, type === T.I32);
      case T.U64:
      case T.I64:
        return this.int(value as number | bigint, 8, type === T.I64);
      case T.F32:
        return this.float(value as number, 4);
      case T.F64:
        return this.float(value as number, 8);
      case T.BOOL:
        return this.int(value ? 1 : 0, 1);
      case T.STRING:
        return this.string(value as string);
      default:
        throw new Error(`gguf-writer: no way to write type ${type}`);
    }
  }
  concat(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** The bytes of a GGUF header for `spec`, and the size of the file its data would make. */
export function ggufImage(spec: GgufSpec): GgufImage {
  const out = new Out(spec.bigEndian ?? false);
  const kv = entries(spec.kv);
  out.push(Buffer.from('GGUF', 'latin1'));
  out.int(spec.version ?? 3, 4);
  out.int(spec.tensors.length, 8);
  out.int(kv.length, 8);
  for (const [key, type, value] of kv) {
    out.string(key);
    out.int(type, 4);
    if (type === T.ARRAY) {
      const [elementType, values] = value as [number, Scalar[]];
      out.int(elementType, 4);
      out.int(values.length, 8);
      for (const v of values) out.scalar(elementType, v);
    } else {
      out.scalar(type, value as Scalar);
    }
  }
  const alignmentEntry = kv.find(([key]) => key === 'general.alignment');
  const alignment = alignmentEntry ? Number(alignmentEntry[2]) : 32;
  const layout: [number, number][] = [];
  let offset = 0;
  for (const tensor of spec.tensors) {
    const bytes = tensor.bytes ?? sizeOf(tensor);
    out.string(tensor.name);
    out.int(tensor.dims.length, 4);
    for (const dim of tensor.dims) out.int(dim, 8);
    out.int(typeof tensor.type === 'number' ? tensor.type : typeId(tensor.type), 4);
    out.int(offset, 8);
    layout.push([offset, bytes]);
    offset += Math.ceil(bytes / alignment) * alignment;
  }
  const dataOffset = Math.ceil(out.length / alignment) * alignment;
  out.push(Buffer.alloc(dataOffset - out.length));
  return { header: out.concat(), fileBytes: dataOffset + offset, layout };
}

function typeEntry(name: string): [number, number, number] {
  const type = TYPES[name];
  if (!type) throw new Error(`gguf-writer: no table entry for ${name}; give a raw id and bytes`);
  return type;
}

function typeId(name: string): number {
  return typeEntry(name)[0];
}

/** A raw id without `bytes` gets one alignment unit of data. */
function sizeOf(tensor: TensorSpec): number {
  if (typeof tensor.type === 'number') return 32;
  const [, block, size] = typeEntry(tensor.type);
  const rows = tensor.dims.slice(1).reduce((a, b) => a * b, 1);
  return rows * ((tensor.dims[0] ?? 1) / block) * size;
}

let dir: string | undefined;

/** A fresh path in this process's temporary directory. */
export function tempPath(name: string): string {
  dir ??= mkdtempSync(join(tmpdir(), 'sb-gguf-'));
  return join(dir, name);
}

/** Writes `header` and extends the file (sparse) to `fileBytes`; returns the path. */
export function writeImage(path: string, image: Pick<GgufImage, 'header' | 'fileBytes'>): string {
  writeFileSync(path, image.header);
  truncateSync(path, Math.max(image.fileBytes, image.header.length));
  return path;
}

/** Writes the GGUF file `spec` describes as `name` in a temporary directory; returns its path. */
export function writeGguf(name: string, spec: GgufSpec): string {
  return writeImage(tempPath(name), ggufImage(spec));
}

/**
 * A llama model's tensors as convert_hf_to_gguf.py names them: token_embd, per layer the
 * attention and feed-forward weights and norms, output_norm and (unless tied) output.
 */
export function llamaTensors(o: LlamaDims & { type: string; tiedOutput?: boolean }): TensorSpec[] {
  const headDim = o.embd / o.heads;
  const kv = headDim * o.kvHeads;
  const tensors: TensorSpec[] = [{ name: 'token_embd.weight', dims: [o.embd, o.vocab], type: o.type }];
  for (let i = 0; i < o.layers; i++) {
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [o.embd], type: 'F32' },
      { name: `blk.${i}.attn_q.weight`, dims: [o.embd, o.embd], type: o.type },
      { name: `blk.${i}.attn_k.weight`, dims: [o.embd, kv], type: o.type },
      { name: `blk.${i}.attn_v.weight`, dims: [o.embd, kv], type: o.type },
      { name: `blk.${i}.attn_output.weight`, dims: [o.embd, o.embd], type: o.type },
      { name: `blk.${i}.ffn_norm.weight`, dims: [o.embd], type: 'F32' },
      { name: `blk.${i}.ffn_gate.weight`, dims: [o.embd, o.ff], type: o.type },
      { name: `blk.${i}.ffn_up.weight`, dims: [o.embd, o.ff], type: o.type },
      { name: `blk.${i}.ffn_down.weight`, dims: [o.ff, o.embd], type: o.type },
    );
  }
  tensors.push({ name: 'output_norm.weight', dims: [o.embd], type: 'F32' });
  if (!o.tiedOutput) tensors.push({ name: 'output.weight', dims: [o.embd, o.vocab], type: o.type });
  return tensors;
}

/** The dimensions of a llama model, as llamaTensors and its metadata take them. */
export interface LlamaDims {
  layers: number;
  embd: number;
  heads: number;
  kvHeads: number;
  ff: number;
  vocab: number;
}

/** Writes a header-only llama model of these dimensions (weights of `type`, norms F32). */
export function writeLlamaModel(
  file: string,
  dims: LlamaDims,
  o: { type: string; contextLength: number; name?: string },
): string {
  return writeGguf(file, {
    kv: {
      'general.architecture': 'llama',
      ...(o.name === undefined ? {} : { 'general.name': o.name }),
      'llama.context_length': o.contextLength,
      'llama.block_count': dims.layers,
      'llama.embedding_length': dims.embd,
      'llama.feed_forward_length': dims.ff,
      'llama.attention.head_count': dims.heads,
      'llama.attention.head_count_kv': dims.kvHeads,
    },
    tensors: llamaTensors({ ...dims, type: o.type }),
  });
}
