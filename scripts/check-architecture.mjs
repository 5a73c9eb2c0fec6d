#!/usr/bin/env node
// The layering of lib/, checked on the source: no import cycle (static or dynamic), none of the
// never-arrows that architecture.json lists, and the CLI on the public API only. `node scripts/check-architecture.mjs` prints
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
      if (to === undefined) {
        problems.push(`${file} -> ${target}: in no room of architecture.json`);
        continue;
      }
      const rule = rules.never.find((r) => r.from.includes(from) && r.to.includes(to));
      if (rule) problems.push(`${file} -> ${target} (${from} -> ${to}: ${rule.why})`);
    }
  }
  return problems;
}

/** The names each module's public exports come from: module (relative to lib/) → names. */
export function publicNames(lib = join(ROOT, 'lib')) {
  const text = readFileSync(join(lib, 'index.ts'), 'utf8');
  const names = new Map();
  for (const m of text.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}\s*from\s*'\.\/([^']+)\.js'/g)) {
    const module = `${m[2]}.ts`;
    const list = names.get(module) ?? new Set();
    for (const item of m[1].split(',')) {
      const name = item
        .replace(/^\s*type\s+/, '')
        .split(/\s+as\s+/)[0]
        .trim();
      if (name) list.add(name);
    }
    names.set(module, list);
  }
  return names;
}

/** Each import of a file: the module (relative to lib/) and the names taken (null: not by name). */
export function namedImports(file, lib = join(ROOT, 'lib')) {
  const text = readFileSync(join(lib, file), 'utf8');
  const found = [];
  for (const m of text.matchAll(
    /(?:import|export)\s+(?:type\s+)?(\{[^}]*\}|\*[^']*)\s*from\s*'(\.{1,2}\/[^']+)\.js'/g,
  )) {
    const names = m[1].startsWith('{')
      ? m[1]
          .slice(1, -1)
          .split(',')
          .map((item) =>
            item
              .replace(/^\s*type\s+/, '')
              .split(/\s+as\s+/)[0]
              .trim(),
          )
          .filter(Boolean)
      : null;
    found.push({ module: relative(lib, resolve(dirname(join(lib, file)), `${m[2]}.ts`)), names });
  }
  // Dynamic, default and side-effect imports take nothing by name.
  for (const m of text.matchAll(/import(?:\(\s*|\s+[\w$]+\s+from\s*|\s*)'(\.{1,2}\/[^']+)\.js'/g)) {
    found.push({ module: relative(lib, resolve(dirname(join(lib, file)), `${m[1]}.ts`)), names: null });
  }
  return found;
}

/**
 * The rule `publicApiOnly`: files of its rooms take from the rooms it names only what index.ts
 * re-exports from that same module (so they call the public API, yet load only the modules a
 * command runs); `exceptions` name the modules one file may reach besides, with why.
 */
export function nonPublicImports(graph, rules, lib = join(ROOT, 'lib')) {
  const rule = rules.publicApiOnly;
  if (!rule) return [];
  const exported = publicNames(lib);
  const problems = [];
  const used = new Set();
  for (const file of graph.keys()) {
    if (!rule.from.includes(roomOf(file, rules))) continue;
    for (const { module, names } of namedImports(file, lib)) {
      if (!rule.rooms.includes(roomOf(module, rules))) continue;
      const exception = (rule.exceptions ?? []).find((e) => e.file === file && e.modules.includes(module));
      if (exception) {
        used.add(`${file} ${module}`);
        continue;
      }
      const open = exported.get(module) ?? new Set();
      const hidden = names === null ? ['(not by name)'] : names.filter((name) => !open.has(name));
      if (hidden.length > 0)
        problems.push(`${file} -> ${module}: ${hidden.join(', ')} not in the public API (index.ts)`);
    }
  }
  for (const e of rule.exceptions ?? []) {
    for (const module of e.modules) {
      if (!used.has(`${e.file} ${module}`)) problems.push(`${e.file} -> ${module}: an exception nothing uses any more`);
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
  const rules = readRules();
  const problems = [
    ...forbiddenArrows(graph, rules),
    ...nonPublicImports(graph, rules),
    ...importCycles(graph).map((c) => `cycle: ${c}`),
  ];
  for (const line of problems) console.error(`architecture: ${line}`);
  process.exit(problems.length > 0 ? 1 : 0);
}
