#!/usr/bin/env node
// The layering of lib/, checked on the source: no import cycle (static or dynamic), and none of
// the never-arrows that architecture.json lists. `node scripts/check-architecture.mjs` prints
// each offending import and exits 1; test/unit/architecture.test.ts runs the same functions.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Each file's imports of other lib files (type-only and dynamic ones too), relative to lib/. */
export function importGraph(lib = join(ROOT, 'lib')) {
  const graph = new Map();
  for (const file of sources(lib)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(/(?:from|import\(|import)\s*'(\.{1,2}\/[^']+)\.js'/g)].map((m) =>
      relative(lib, resolve(dirname(file), `${m[1]}.ts`)),
    );
    graph.set(relative(lib, file), targets);
  }
  return graph;
}

export function readRules(file = join(ROOT, 'architecture.json')) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** The room of a file: the room whose listed path matches it longest; undefined if none. */
export function roomOf(file, rules) {
  let best;
  let bestLength = -1;
  for (const [room, paths] of Object.entries(rules.rooms)) {
    for (const path of paths) {
      const matches = path.endsWith('/') ? file.startsWith(path) : file === path;
      if (matches && path.length > bestLength) [best, bestLength] = [room, path.length];
    }
  }
  return best;
}

/** Every import that is a never-arrow, and every file no room holds, as lines to print. */
export function forbiddenArrows(graph, rules) {
  const problems = [];
  for (const [file, targets] of graph) {
    const from = roomOf(file, rules);
    if (from === undefined) {
      problems.push(`${file}: in no room of architecture.json`);
      continue;
    }
    for (const target of targets) {
      const to = roomOf(target, rules);
      const rule = rules.never.find((r) => r.from.includes(from) && r.to.includes(to));
      if (rule) problems.push(`${file} -> ${target} (${from} -> ${to}: ${rule.why})`);
    }
  }
  return problems;
}

/** Every import cycle, each as "a -> b -> … -> a". */
export function importCycles(graph) {
  const cycles = [];
  const state = new Map();
  const walk = (node, path) => {
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
  return cycles;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const graph = importGraph();
  const problems = [...forbiddenArrows(graph, readRules()), ...importCycles(graph).map((c) => `cycle: ${c}`)];
  for (const line of problems) console.error(`architecture: ${line}`);
  process.exit(problems.length > 0 ? 1 : 0);
}
