// The shapes a plan is made of: what a model needs (read from its GGUF header), and where it
// goes (devices of the usable ggml-rpc servers). Plain data; `plan --format json` prints a
// PlanResult as schema 1.

/** A KV cache type llama-server takes as --cache-type-k/-v. */
export type CacheType = 'f16' | 'q8_0' | 'q4_0';

/** The memory a model needs, per layer, for one context size and cache type. */
export interface ModelMemory {
  /** general.architecture ("llama", "qwen2", …). */
  architecture: string;
  /** general.name when the file has one (peer text: print it escaped). */
  name?: string;
  /** Weights of each repeating layer (tensors named blk.N.*), N = 0 … layers-1. */
  layerBytes: number[];
  /** KV cache of each layer at `ctx` and `cacheType`. */
  kvBytesPerLayer: number[];
  /**
   * Weights llama.cpp puts on the last device with the layers: output.weight, output_norm.*
   * (it counts them as one more layer at the end of the split).
   */
  outputBytes: number;
  /** Weights that stay on the coordinator's host: token embeddings (token_embd.*), rope tables. */
  hostBytes: number;
  ctx: number;
  cacheType: CacheType;
  /** What the estimate assumed (an architecture it does not know, a default it filled). */
  assumptions: string[];
}

/** One device of one server in the plan, in the order llama.cpp numbers them (RPC0, RPC1, …). */
export interface PlannedDevice {
  /** "host:port" of its server, as in --rpc. */
  server: string;
  /** The device's index on its server. */
  device: number;
  freeBytes: number;
  totalBytes: number;
  /** The layers it gets: [first, end); `output` when it also holds the output layer. */
  layers: { first: number; end: number; output: boolean };
  weightBytes: number;
  kvBytes: number;
  reserveBytes: number;
  /** weight + kv + reserve. */
  expectedBytes: number;
  /** free − expected (≥ 0 in a plan that fits). */
  headroomBytes: number;
}

export interface LeftOut {
  server: string;
  /** busy, other protocol, down, claimed by another coordinator, not needed… */
  reason: string;
}

export interface PlanResult {
  schema: 1;
  fits: boolean;
  model: ModelMemory & { path: string; totalWeightBytes: number };
  /** Bytes the model needs in all (weights on devices + KV + a reserve per device used). */
  neededBytes: number;
  /** Free bytes of every usable device (the reserves are in neededBytes). */
  availableBytes: number;
  /** The servers in --rpc order (empty when it does not fit). */
  rpc: string[];
  /** One value per device: the layers it gets, as llama.cpp's --tensor-split reads them. */
  tensorSplit: number[];
  devices: PlannedDevice[];
  leftOut: LeftOut[];
  /** Exactly what to append to llama-server: ["--rpc", "a,b", "--tensor-split", "3,4", "-ngl", "999"]. */
  args: string[];
  /** When it does not fit: why, in a sentence. */
  reason?: string;
}
