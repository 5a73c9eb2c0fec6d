// The ggml tensor types a GGUF file may name, with the block each is stored in: ggml's
// type_traits (ggml/src/ggml.c) and the block structs of ggml/src/ggml-common.h, as of
// GGML_TYPE_COUNT = 43. Ids are never reused, so a removed id is named as removed.

export interface GgmlType {
  id: number;
  name: string;
  /** Elements per block. */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
}

// [id, name, elements per block, bytes per block]
const TYPES: [number, string, number, number][] = [
  [0, 'F32', 1, 4],
  [1, 'F16', 1, 2],
  [2, 'Q4_0', 32, 18],
  [3, 'Q4_1', 32, 20],
  [6, 'Q5_0', 32, 22],
  [7, 'Q5_1', 32, 24],
  [8, 'Q8_0', 32, 34],
  [9, 'Q8_1', 32, 36],
  [10, 'Q2_K', 256, 84],
  [11, 'Q3_K', 256, 110],
  [12, 'Q4_K', 256, 144],
  [13, 'Q5_K', 256, 176],
  [14, 'Q6_K', 256, 210],
  [15, 'Q8_K', 256, 292],
  [16, 'IQ2_XXS', 256, 66],
  [17, 'IQ2_XS', 256, 74],
  [18, 'IQ3_XXS', 256, 98],
  [19, 'IQ1_S', 256, 50],
  [20, 'IQ4_NL', 32, 18],
  [21, 'IQ3_S', 256, 110],
  [22, 'IQ2_S', 256, 82],
  [23, 'IQ4_XS', 256, 136],
  [24, 'I8', 1, 1],
  [25, 'I16', 1, 2],
  [26, 'I32', 1, 4],
  [27, 'I64', 1, 8],
  [28, 'F64', 1, 8],
  [29, 'IQ1_M', 256, 56],
  [30, 'BF16', 1, 2],
  [34, 'TQ1_0', 256, 54],
  [35, 'TQ2_0', 256, 66],
  [39, 'MXFP4', 32, 17],
  [40, 'NVFP4', 64, 36],
  [41, 'Q1_0', 128, 18],
  [42, 'Q2_0', 64, 18],
];

/** Ids ggml once had and dropped (the repacked CPU layouts were never meant for files). */
const REMOVED = new Map<number, string>([
  [4, 'Q4_2'],
  [5, 'Q4_3'],
  [31, 'Q4_0_4_4'],
  [32, 'Q4_0_4_8'],
  [33, 'Q4_0_8_8'],
  [36, 'IQ4_NL_4_4'],
  [37, 'IQ4_NL_4_8'],
  [38, 'IQ4_NL_8_8'],
]);

export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map(
  TYPES.map(([id, name, blockSize, typeSize]) => [id, { id, name, blockSize, typeSize }]),
);

const BY_NAME = new Map([...GGML_TYPES.values()].map((type) => [type.name, type]));

/** The type with this id, or why there is none ("type 31 (Q4_0_4_4) was removed from ggml"). */
export function ggmlType(id: number): GgmlType | string {
  const type = GGML_TYPES.get(id);
  if (type) return type;
  const removed = REMOVED.get(id);
  if (removed) return `ggml type ${id} (${removed}) was removed from ggml; requantize the model`;
  return `unknown ggml type ${id} (known: 0..42 but 4, 5, 31-33, 36-38)`;
}

/** The type named `name` ("Q8_0", "q8_0"), as llama.cpp spells a cache type. */
export function ggmlTypeNamed(name: string): GgmlType | undefined {
  return BY_NAME.get(name.toUpperCase());
}

/**
 * Bytes of a tensor of `type` with `dims` (ne0 first): rows × blocks per row × bytes per block,
 * or why the shape cannot hold that type (a row that is not whole blocks, a size past 2^53).
 */
export function tensorBytes(type: GgmlType, dims: readonly number[]): number | string {
  const ne0 = dims[0] ?? 1;
  if (ne0 % type.blockSize !== 0) {
    return `ne0 = ${ne0} is not a multiple of ${type.name}'s block of ${type.blockSize}`;
  }
  let bytes = (ne0 / type.blockSize) * type.typeSize;
  for (const dim of dims.slice(1)) bytes *= dim;
  if (!Number.isSafeInteger(bytes)) return `${dims.join(' × ')} ${type.name} is more bytes than 2^53`;
  return bytes;
}
