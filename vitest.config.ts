import { defineConfig } from 'vitest/config';

// Three projects: unit (no sockets), real (real peers on 127.0.0.x), netns (must run inside
// `unshare -rn`, where nftables rules make filtered hosts; scripts/test.sh does that).
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'real', include: ['test/real/**/*.test.ts'] } },
      // One file at a time: they share the namespace's firewall.
      { extends: true, test: { name: 'netns', include: ['test/netns/**/*.test.ts'], fileParallelism: false } },
    ],
  },
});
