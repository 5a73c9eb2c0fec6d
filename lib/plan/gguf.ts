// The header of a GGUF model file: its metadata and tensor infos, never the tensor data.
// A model file comes from anywhere, so every count, length and offset is checked before it is
// used, the header is read in bounded chunks up to a cap, and every refusal names the byte
// where it went wrong. Versions 2 and 3, little-endian: what llama.cpp loads.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

import { GgufError } from '../common/errors.js';
import { peerText } from '../common/peer-text.js';
import { irregularFile } from '../common/regular-file.js';
import { ggmlType, tensorBytes, type GgmlType } from './ggml-types.js';

/** Past this the "header" is no header: real ones (a 256k-token vocabulary) stay under 16 MiB. */
export const MAX_HEADER_BYTES = 64 * 1024 * 1024;
export const MAX_TENSORS = 100_000;
export const MAX_KVS = 100_000;
export const MAX_STRING_BYTES = 1024 * 1024;
/** Elements of one metadata array; every element takes a byte at least, and the header cap holds. */
export const MAX_ARRAY_LENGTH = MAX_HEADER_BYTES;
/** Elements of an array kept in `metadata`; the rest are read past (a vocabulary is not needed). */
export const KEPT_ARRAY_ELEMENTS = 4096;
/** ggml's GGML_MAX_DIMS. */
export const MAX_DIMS = 4;
/** ggml's GGML_MAX_NAME is 64 bytes with the terminating NUL. */
export const MAX_TENSOR_NAME_BYTES = 63;
const DEFAULT_ALIGNMENT = 32;
const CHUNK_BYTES = 1024 * 1024;

/** GGUF's metadata value types (gguf_type). */
export enum GgufType {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
}

export type GgufScalar = number | bigint | boolean | string;

/** An array value: its element type, its full length, and at most KEPT_ARRAY_ELEMENTS of it. */
export interface GgufArray {
  type: GgufType;
  length: number;
  values: GgufScalar[];
}

export type GgufValue = GgufScalar | GgufArray;

export interface GgufMetadataEntry {
  type: GgufType;
  /** 64-bit integers are bigints; the others numbers, booleans and strings. */
  value: GgufValue;
}

export interface GgufTensor {
  name: string;
  /** ne0 first, as ggml counts them. */
  dims: number[];
  type: GgmlType;
  /** From the start of the data section. */
  offset: number;
  bytes: number;
}

export interface GgufHeader {
  path: string;
  version: 2 | 3;
  metadata: Map<string, GgufMetadataEntry>;
  tensors: GgufTensor[];
  alignment: number;
  /** Where the tensor data starts in the file. */
  dataOffset: number;
  fileBytes: number;
}

/** A window on the file: bytes read in chunks as the parser asks, never past the header cap. */
class HeaderReader {
  pos = 0;
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly fileBytes: number,
  ) {}

  fail(what: string, at = this.pos): never {
    throw new GgufError(this.path, at, what);
  }

  /** Makes bytes [pos, pos + n) readable, or says which cap or end of file stops them. */
  async need(n: number, what: string): Promise<void> {
    this.check(n, what);
    const end = this.pos + n;
    if (this.pos >= this.bufferStart && end <= this.bufferStart + this.buffer.length) return;
    const length = Math.min(Math.max(n, CHUNK_BYTES), this.fileBytes - this.pos, MAX_HEADER_BYTES - this.pos);
    const chunk = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.handle.read(chunk, filled, length - filled, this.pos + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled < n) this.fail(`the file ends at byte ${this.pos + filled}, inside ${what} (it shrank while read)`);
    this.buffer = chunk.subarray(0, filled);
    this.bufferStart = this.pos;
  }

  /** Says whether n bytes from here would end within the file and the header cap. */
  check(n: number, what: string): void {
    const end = this.pos + n;
    if (end > MAX_HEADER_BYTES)
      this.fail(`${what} would end past the ${MAX_HEADER_BYTES / 1024 / 1024} MiB header cap`);
    if (end > this.fileBytes) this.fail(`the file ends at byte ${this.fileBytes}, inside ${what}`);
  }

  /** Moves past n bytes without reading them. */
  skip(n: number, what: string): void {
    this.check(n, what);
    this.pos += n;
  }

  private at(n: number): number {
    const i = this.pos - this.bufferStart;
    this.pos += n;
    return i;
  }

  u8(): number {
    return this.buffer.readUInt8(this.at(1));
  }
  i8(): number {
    return this.buffer.readInt8(this.at(1));
  }
  u16(): number {
    return this.buffer.readUInt16LE(this.at(2));
  }
  i16(): number {
    return this.buffer.readInt16LE(this.at(2));
  }
  u32(): number {
    return this.buffer.readUInt32LE(this.at(4));
  }
  i32(): number {
    return this.buffer.readInt32LE(this.at(4));
  }
  f32(): number {
    return this.buffer.readFloatLE(this.at(4));
  }
  f64(): number {
    return this.buffer.readDoubleLE(this.at(8));
  }
  u64(): bigint {
    return this.buffer.readBigUInt64LE(this.at(8));
  }
  i64(): bigint {
    return this.buffer.readBigInt64LE(this.at(8));
  }
  bytes(n: number): Buffer {
    const i = this.at(n);
    return this.buffer.subarray(i, i + n);
  }

  /** A u64 count, refused past `max` before anything is allocated for it. */
  async count(what: string, max: number): Promise<number> {
    const at = this.pos;
    await this.need(8, what);
    const value = this.u64();
    if (value > BigInt(max)) this.fail(`${what} is ${value}; at most ${max}`, at);
    return Number(value);
  }

  /** A GGUF string: u64 length, then UTF-8 bytes. */
  async string(what: string): Promise<string> {
    const length = await this.count(`the length of ${what}`, MAX_STRING_BYTES);
    await this.need(length, what);
    return this.bytes(length).toString('utf8');
  }
}

const SCALAR_BYTES: Partial<Record<GgufType, number>> = {
  [GgufType.U8]: 1,
  [GgufType.I8]: 1,
  [GgufType.BOOL]: 1,
  [GgufType.U16]: 2,
  [GgufType.I16]: 2,
  [GgufType.U32]: 4,
  [GgufType.I32]: 4,
  [GgufType.F32]: 4,
  [GgufType.U64]: 8,
  [GgufType.I64]: 8,
  [GgufType.F64]: 8,
};

async function readScalar(reader: HeaderReader, type: GgufType, what: string): Promise<GgufScalar> {
  if (type === GgufType.STRING) return reader.string(what);
  const size = SCALAR_BYTES[type];
  if (size === undefined) return reader.fail(`${what}: unknown value type ${type}`);
  await reader.need(size, what);
  switch (type) {
    case GgufType.U8:
      return reader.u8();
    case GgufType.I8:
      return reader.i8();
    case GgufType.U16:
      return reader.u16();
    case GgufType.I16:
      return reader.i16();
    case GgufType.U32:
      return reader.u32();
    case GgufType.I32:
      return reader.i32();
    case GgufType.F32:
      return reader.f32();
    case GgufType.U64:
      return reader.u64();
    case GgufType.I64:
      return reader.i64();
    case GgufType.F64:
      return reader.f64();
    default: {
      const at = reader.pos;
      const byte = reader.u8();
      if (byte > 1) reader.fail(`${what}: a bool of ${byte}, not 0 or 1`, at);
      return byte === 1;
    }
  }
}

async function readValue(reader: HeaderReader, type: GgufType, key: string): Promise<GgufValue> {
  const what = `the value of ${key}`;
  if (type !== GgufType.ARRAY) return readScalar(reader, type, what);
  await reader.need(4, `the element type of ${key}`);
  const typeAt = reader.pos;
  const elementType = reader.u32() as GgufType;
  if (elementType === GgufType.ARRAY) reader.fail(`${key}: an array of arrays, which llama.cpp does not read`, typeAt);
  if (elementType !== GgufType.STRING && SCALAR_BYTES[elementType] === undefined) {
    reader.fail(`${key}: unknown array element type ${elementType}`, typeAt);
  }
  const length = await reader.count(`the length of ${key}`, MAX_ARRAY_LENGTH);
  const size = SCALAR_BYTES[elementType];
  if (size !== undefined) reader.check(length * size, `the ${length} elements of ${key}`);
  const kept = Math.min(length, KEPT_ARRAY_ELEMENTS);
  const values: GgufScalar[] = [];
  for (let i = 0; i < kept; i++) values.push(await readScalar(reader, elementType, `${key}[${i}]`));
  if (size !== undefined) {
    reader.skip((length - kept) * size, `the ${length} elements of ${key}`);
  } else {
    for (let i = kept; i < length; i++) {
      const skipped = await reader.count(`the length of ${key}[${i}]`, MAX_STRING_BYTES);
      reader.skip(skipped, `${key}[${i}]`);
    }
  }
  return { type: elementType, length, values };
}

/** The header of a version 2 or 3 GGUF file at `path`. Throws GgufError on anything else. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  // Without O_NONBLOCK a FIFO with no writer would hang the open itself.
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new GgufError(path, undefined, `cannot open: ${(error as Error).message}`);
  }
  try {
    const stat = await handle.stat();
    const irregular = irregularFile(stat);
    if (irregular) throw new GgufError(path, undefined, irregular);
    return await parseHeader(new HeaderReader(handle, path, stat.size));
  } finally {
    await handle.close();
  }
}

async function parseHeader(reader: HeaderReader): Promise<GgufHeader> {
  await reader.need(4, 'the magic');
  const magic = reader.bytes(4).toString('latin1');
  if (magic !== 'GGUF') {
    reader.fail(
      magic === 'FUGG'
        ? 'the magic is "FUGG": a big-endian GGUF file; llama.cpp loads little-endian ones'
        : `not a GGUF file (magic ${JSON.stringify(peerText(magic))}, expected "GGUF")`,
      0,
    );
  }
  await reader.need(4, 'the version');
  const version = reader.u32();
  const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
  if (version !== 2 && version !== 3) {
    if (swapped === 2 || swapped === 3) {
      reader.fail(`version ${swapped} written big-endian; llama.cpp loads little-endian GGUF files`, 4);
    }
    if (version === 1) reader.fail('GGUF version 1 (32-bit counts); llama.cpp loads versions 2 and 3', 4);
    reader.fail(`GGUF version ${version}; llama.cpp loads versions 2 and 3`, 4);
  }
  const tensorCount = await reader.count('the tensor count', MAX_TENSORS);
  const kvCount = await reader.count('the metadata count', MAX_KVS);

  const metadata = new Map<string, GgufMetadataEntry>();
  let alignmentAt = 0;
  for (let i = 0; i < kvCount; i++) {
    const keyAt = reader.pos;
    const key = await reader.string(`metadata key ${i}`);
    if (metadata.has(key)) reader.fail(`duplicate metadata key ${JSON.stringify(peerText(key))}`, keyAt);
    await reader.need(4, `the type of ${key}`);
    const typeAt = reader.pos;
    const type = reader.u32() as GgufType;
    if (type !== GgufType.ARRAY && type !== GgufType.STRING && SCALAR_BYTES[type] === undefined) {
      reader.fail(`${peerText(key)}: unknown value type ${type}`, typeAt);
    }
    if (key === 'general.alignment') alignmentAt = keyAt;
    metadata.set(key, { type, value: await readValue(reader, type, peerText(key)) });
  }

  const alignmentEntry = metadata.get('general.alignment');
  let alignment = DEFAULT_ALIGNMENT;
  if (alignmentEntry) {
    const value = alignmentEntry.value;
    if (
      alignmentEntry.type !== GgufType.U32 ||
      typeof value !== 'number' ||
      value === 0 ||
      (value & (value - 1)) !== 0
    ) {
      reader.fail(`general.alignment must be a u32 power of two, got ${peerText(String(value))}`, alignmentAt);
    }
    alignment = value;
  }

  const tensors: GgufTensor[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) tensors.push(await readTensorInfo(reader, i, names));

  const dataOffset = Math.ceil(reader.pos / alignment) * alignment;
  for (const tensor of tensors) {
    const shown = peerText(tensor.name);
    if (tensor.offset % alignment !== 0) {
      reader.fail(
        `tensor ${shown}: data offset ${tensor.offset} is not a multiple of the alignment ${alignment}`,
        dataOffset,
      );
    }
    if (dataOffset + tensor.offset + tensor.bytes > reader.fileBytes) {
      reader.fail(
        `tensor ${shown}: its ${tensor.bytes} bytes at data offset ${tensor.offset} end past the end of the file (${reader.fileBytes} bytes)`,
        dataOffset,
      );
    }
  }
  return { path: reader.path, version, metadata, tensors, alignment, dataOffset, fileBytes: reader.fileBytes };
}

async function readTensorInfo(reader: HeaderReader, i: number, names: Set<string>): Promise<GgufTensor> {
  const nameAt = reader.pos;
  const name = await reader.string(`the name of tensor ${i}`);
  const shown = peerText(name);
  if (Buffer.byteLength(name) > MAX_TENSOR_NAME_BYTES) {
    reader.fail(`tensor name ${JSON.stringify(shown)} is longer than ggml's ${MAX_TENSOR_NAME_BYTES} bytes`, nameAt);
  }
  if (names.has(name)) reader.fail(`duplicate tensor name ${JSON.stringify(shown)}`, nameAt);
  names.add(name);
  await reader.need(4, `the dimension count of tensor ${shown}`);
  const dimsAt = reader.pos;
  const dimCount = reader.u32();
  if (dimCount > MAX_DIMS)
    reader.fail(`tensor ${shown} has ${dimCount} dimensions; ggml has at most ${MAX_DIMS}`, dimsAt);
  await reader.need(8 * dimCount + 4 + 8, `the shape, type and offset of tensor ${shown}`);
  const dims: number[] = [];
  for (let d = 0; d < dimCount; d++) {
    const dimAt = reader.pos;
    const dim = reader.i64();
    if (dim < 0n || dim > BigInt(Number.MAX_SAFE_INTEGER)) {
      reader.fail(`tensor ${shown}: dimension ${d} is ${dim}`, dimAt);
    }
    dims.push(Number(dim));
  }
  const typeAt = reader.pos;
  const type = ggmlType(reader.u32());
  if (typeof type === 'string') reader.fail(`tensor ${shown}: ${type}`, typeAt);
  const offsetAt = reader.pos;
  const offset = reader.u64();
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) reader.fail(`tensor ${shown}: data offset ${offset}`, offsetAt);
  const bytes = tensorBytes(type, dims);
  if (typeof bytes === 'string') reader.fail(`tensor ${shown}: ${bytes}`, dimsAt);
  return { name, dims, type, offset: Number(offset), bytes };
}
