// The memory a model needs, layer by layer, as llama.cpp lays it out over devices: each
// repeating layer's weights and KV cache, the output layer the last device holds, and what
// stays on the coordinator's host. Arithmetic over a GGUF header, checked against llama-server.
import { GgufError, InvalidOptionError } from '../common/errors.js';
import { peerText } from '../common/peer-text.js';
import { ggmlTypeNamed, type GgmlType } from './ggml-types.js';
import { readGgufHeader, type GgufHeader, type GgufValue } from './gguf.js';
import type { CacheType, ModelMemory } from './types.js';

export interface ModelMemoryOptions {
  /** Context size; 0 takes the model's <arch>.context_length. */
  ctx: number;
  cacheType: CacheType;
}

/** llama.cpp's LLAMA_MAX_LAYERS: a block_count past it is no model llama.cpp loads. */
export const MAX_LAYERS = 512;
/** llama.cpp pads the KV cache to a multiple of this (measured: -c 1000 allocates 1024 cells). */
export const CTX_PADDING = 256;

/**
 * Architectures whose KV cache follows the generic rule on every layer: n_ctx × (key_length +
 * value_length) × head_count_kv, from their <arch>.attention.* metadata.
 */
export const STANDARD_ATTENTION_ARCHITECTURES: readonly string[] = [
  'llama',
  'mistral3',
  'qwen',
  'qwen2',
  'qwen2moe',
  'qwen2vl',
  'qwen3',
  'qwen3moe',
  'gemma',
  'gemma2',
  'gemma3',
  'phi2',
  'phi3',
  'phimoe',
  'starcoder',
  'starcoder2',
  'command-r',
  'cohere2',
  'falcon',
  'gpt2',
  'gptneox',
  'bloom',
  'mpt',
  'refact',
  'baichuan',
  'internlm2',
  'stablelm',
  'olmo',
  'olmo2',
  'olmoe',
  'granite',
  'granitemoe',
  'exaone',
  'minicpm',
  'orion',
  'xverse',
  'nemotron',
  'deci',
  'chatglm',
  'glm4',
  'smollm3',
  'arcee',
];

/** Recurrent: a fixed state per sequence instead of a cache that grows with the context. */
const RECURRENT = new Set(['mamba', 'mamba2', 'rwkv6', 'rwkv6qwen2', 'rwkv7', 'arwkv7']);
/** Attention layers and recurrent ones in one stack; the recurrent ones have head_count_kv 0. */
const HYBRID = new Set(['jamba', 'falcon-h1', 'granitehybrid', 'lfm2', 'nemotron_h', 'plamo2', 'qwen3next']);
const STANDARD = new Set(STANDARD_ATTENTION_ARCHITECTURES);

/** The model's memory from its header. Pure: the same header and options, the same answer. */
export function modelMemory(header: GgufHeader, options: ModelMemoryOptions): ModelMemory {
  checkOptions(options);
  const meta = new Metadata(header);
  const assumptions: string[] = [];
  const architecture = meta.string('general.architecture');
  const arch = peerText(architecture, 64);
  const name = header.metadata.get('general.name')?.value;
  const layers = meta.int(`${architecture}.block_count`);
  if (layers < 1 || layers > MAX_LAYERS)
    meta.fail(`${arch}.block_count is ${layers}; llama.cpp loads 1..${MAX_LAYERS}`);

  const layerBytes = new Array<number>(layers).fill(0);
  let outputBytes = 0;
  let hostBytes = 0;
  let tokenEmbdBytes: number | undefined;
  let hasOutput = false;
  for (const tensor of header.tensors) {
    const layer = /^blk\.(\d+)\./.exec(tensor.name);
    if (layer) {
      const n = Number(layer[1]);
      if (n >= layers)
        meta.fail(`tensor ${peerText(tensor.name)} is in layer ${n}, but ${arch}.block_count is ${layers}`);
      layerBytes[n] = (layerBytes[n] as number) + tensor.bytes;
    } else if (tensor.name.startsWith('output.') || tensor.name.startsWith('output_norm.')) {
      outputBytes += tensor.bytes;
      if (tensor.name === 'output.weight') hasOutput = true;
    } else {
      hostBytes += tensor.bytes;
      if (tensor.name === 'token_embd.weight') tokenEmbdBytes = tensor.bytes;
    }
  }
  if (!hasOutput && tokenEmbdBytes !== undefined) {
    outputBytes += tokenEmbdBytes;
    assumptions.push(
      'no output.weight (tied embeddings): llama.cpp copies token_embd.weight to the last device as the output, counted there too',
    );
  } else if (!hasOutput) {
    assumptions.push('neither output.weight nor token_embd.weight: no output matrix counted');
  }

  const ctx = contextSize(meta, architecture, options.ctx, assumptions);
  const kvBytesPerLayer = kvCache(meta, architecture, layers, ctx, options.cacheType, assumptions);
  return {
    architecture: arch,
    ...(typeof name === 'string' ? { name: peerText(name) } : {}),
    layerBytes,
    kvBytesPerLayer,
    outputBytes,
    hostBytes,
    ctx,
    cacheType: options.cacheType,
    assumptions,
  };
}

/** Reads the header of the GGUF file at `path` and computes its memory. */
export async function readModelMemory(path: string, options: ModelMemoryOptions): Promise<ModelMemory> {
  checkOptions(options);
  return modelMemory(await readGgufHeader(path), options);
}

const CACHE_TYPES: readonly string[] = ['f16', 'q8_0', 'q4_0'] satisfies CacheType[];

/** The ggml type of a KV cache type (f16 → F16: 2 bytes; q8_0 → Q8_0: 34 bytes per 32). */
function cacheGgmlType(cacheType: CacheType): GgmlType {
  const type = CACHE_TYPES.includes(cacheType) ? ggmlTypeNamed(cacheType) : undefined;
  if (!type) throw new InvalidOptionError(`cacheType: must be f16, q8_0 or q4_0, got ${String(cacheType)}`);
  return type;
}

function checkOptions(options: ModelMemoryOptions): void {
  if (!Number.isSafeInteger(options.ctx) || options.ctx < 0) {
    throw new InvalidOptionError(`ctx: must be an integer ≥ 0 (0: the model's own), got ${options.ctx}`);
  }
  cacheGgmlType(options.cacheType);
}

function contextSize(meta: Metadata, architecture: string, asked: number, assumptions: string[]): number {
  const wanted = asked === 0 ? meta.int(`${architecture}.context_length`) : asked;
  if (wanted < 1) meta.fail(`${peerText(architecture)}.context_length is 0`);
  const padded = Math.ceil(wanted / CTX_PADDING) * CTX_PADDING;
  if (padded !== wanted) assumptions.push(`context ${wanted} padded to ${padded}, as llama.cpp pads its KV cache`);
  return padded;
}

function kvCache(
  meta: Metadata,
  architecture: string,
  layers: number,
  ctx: number,
  cacheType: CacheType,
  assumptions: string[],
): number[] {
  const arch = peerText(architecture, 64);
  if (RECURRENT.has(architecture)) {
    assumptions.push(
      `${arch} is recurrent: its state per layer is small and does not grow with the context; counted as no KV cache`,
    );
    return new Array<number>(layers).fill(0);
  }
  const prefix = `${architecture}.attention`;
  const embedding = meta.int(`${architecture}.embedding_length`);
  const heads = meta.perLayer(`${prefix}.head_count`, layers);
  const kvHeads = meta.has(`${prefix}.head_count_kv`) ? meta.perLayer(`${prefix}.head_count_kv`, layers) : heads;
  const firstHeads = heads[0] as number;
  if (firstHeads === 0) meta.fail(`${prefix}.head_count is 0 on layer 0`);
  // llama.cpp: n_embd_head_k = key_length, else n_embd / n_head of the first layer.
  const headK = meta.has(`${prefix}.key_length`)
    ? meta.int(`${prefix}.key_length`)
    : Math.floor(embedding / firstHeads);
  const headV = meta.has(`${prefix}.value_length`)
    ? meta.int(`${prefix}.value_length`)
    : Math.floor(embedding / firstHeads);
  let rowK = (il: number) => headK * (kvHeads[il] as number);
  let rowV = (il: number) => headV * (kvHeads[il] as number);

  if (meta.has(`${prefix}.kv_lora_rank`)) {
    // Multi-head latent attention caches one compressed row per token for all heads.
    const rank = meta.int(`${prefix}.kv_lora_rank`);
    const rope = meta.has(`${architecture}.rope.dimension_count`)
      ? meta.int(`${architecture}.rope.dimension_count`)
      : 0;
    rowK = () => rank + rope;
    rowV = () => rank;
    assumptions.push(
      `${arch} uses multi-head latent attention: counted a cache of kv_lora_rank + rope dimensions (${rank + rope}) for K and kv_lora_rank (${rank}) for V per token, an upper bound where llama.cpp keeps V as a view of K`,
    );
  } else if (HYBRID.has(architecture)) {
    assumptions.push(
      `${arch} is hybrid: layers with head_count_kv 0 (recurrent) counted with no KV cache, and their small fixed state not counted`,
    );
  } else if (!STANDARD.has(architecture)) {
    assumptions.push(
      `architecture ${arch} is not one this estimate knows: assumed standard attention on every layer (KV = context × (key_length + value_length) × head_count_kv)`,
    );
  }
  if (meta.has(`${prefix}.sliding_window`)) {
    assumptions.push(
      `${arch} has sliding-window layers (window ${meta.int(`${prefix}.sliding_window`)}): counted the full context on every layer, an upper bound`,
    );
  }

  const type = cacheGgmlType(cacheType);
  const rowBytes = (elements: number, which: string) => {
    if (elements % type.blockSize !== 0) {
      throw new InvalidOptionError(
        `cacheType ${cacheType}: a ${which} row of ${elements} elements is not whole blocks of ${type.blockSize}; use f16`,
      );
    }
    return (elements / type.blockSize) * type.typeSize;
  };
  return Array.from({ length: layers }, (_, il) => ctx * (rowBytes(rowK(il), 'K') + rowBytes(rowV(il), 'V')));
}

/** Typed reads of a header's metadata; a missing or mistyped key is a GgufError naming it. */
class Metadata {
  constructor(private readonly header: GgufHeader) {}

  fail(what: string): never {
    throw new GgufError(this.header.path, undefined, what);
  }

  has(key: string): boolean {
    return this.header.metadata.has(key);
  }

  private value(key: string): GgufValue {
    const entry = this.header.metadata.get(key);
    if (!entry) return this.fail(`metadata key ${peerText(key)} is missing`);
    return entry.value;
  }

  string(key: string): string {
    const value = this.value(key);
    if (typeof value !== 'string' || value === '') this.fail(`${peerText(key)} must be a string`);
    return value;
  }

  int(key: string): number {
    return this.integer(this.value(key), key);
  }

  /** A value per layer: one number for all, or an array of exactly `layers`, as llama.cpp takes them. */
  perLayer(key: string, layers: number): number[] {
    const value = this.value(key);
    if (typeof value !== 'object') return new Array<number>(layers).fill(this.integer(value, key));
    if (value.length !== layers) this.fail(`${peerText(key)} has ${value.length} values for ${layers} layers`);
    return value.values.map((v, il) => this.integer(v, `${key}[${il}]`));
  }

  private integer(value: GgufValue, key: string): number {
    const n = typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      this.fail(`${peerText(key)} must be a non-negative integer, got ${peerText(JSON.stringify(String(n)))}`);
    }
    return n;
  }
}
