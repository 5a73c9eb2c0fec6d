// The layering ARCHITECTURE.md describes, checked on the source: lib/ has no import cycle
// (static or dynamic), probes are leaves — nothing under lib/probes/ imports the scanner,
// the resolver, the CLI or the scan orchestration — and the watcher reaches the resolver only
// through resolver/for-watcher.ts (and its result types).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '../../lib');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Each file's imports of other lib files, as paths relative to lib/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(LIB)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/(?:from|import\(|import)\s*'(\.{1,2}\/[^']+)\.js'/g)].map((m) =>
      relative(LIB, resolve(dirname(file), `${m[1]}.ts`)),
    );
    graph.set(relative(LIB, file), targets);
  }
  return graph;
}

describe('the import graph of lib/', () => {
  const graph = importGraph();

  it('has no cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const walk = (node: string, path: string[]) => {
      if (state.get(node) === 'done') return;
      if (state.get(node) === 'open') {
        cycles.push([...path.slice(path.indexOf(node)), node].join(' -> '));
        return;
      }
      state.set(node, 'open');
      for (const next of graph.get(node) ?? []) walk(next, [...path, node]);
      state.set(node, 'done');
    };
    for (const node of graph.keys()) walk(node, []);
    expect(cycles).toEqual([]);
  });

  it('keeps probes as leaves', () => {
    const upward = [...graph]
      .filter(([file]) => file.startsWith('probes/'))
      .flatMap(([file, targets]) => targets.filter((t) => !t.startsWith('probes/')).map((t) => `${file} -> ${t}`))
      .filter((edge) => !/-> (common\/(peer-text|errors|addresses)|scan\/addon\/layout)\.ts$/.test(edge));
    expect(upward).toEqual([]);
  });

  it('lets the watcher reach the resolver through its one door', () => {
    const door = /^resolver\/(for-watcher|types)\.ts$/;
    const around = [...graph]
      // fleet.ts reads the registry's keys; it leaves lib/watch/ for lib/redis/.
      .filter(([file]) => file.startsWith('watch/') && file !== 'watch/fleet.ts')
      .flatMap(([file, targets]) =>
        targets.filter((t) => t.startsWith('resolver/') && !door.test(t)).map((t) => `${file} -> ${t}`),
      );
    expect(around).toEqual([]);
  });
});
