// xorshift32 for the seeded fuzz tests: the same inputs every run, so a failure replays from
// the seed it prints.
export function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
