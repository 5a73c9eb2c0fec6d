// The layering ARCHITECTURE.md describes, checked on the source by the same functions as
// `node scripts/check-architecture.mjs`: no import cycle, every file in a room, none of the
// never-arrows listed in architecture.json, and the CLI on the public API only.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  forbiddenArrows,
  importCycles,
  importGraph,
  nonPublicImports,
  readRules,
  roomOf,
  // @ts-expect-error: a plain ESM script without declarations
} from '../../scripts/check-architecture.mjs';

describe('the import graph of lib/', () => {
  const graph: Map<string, string[]> = importGraph();
  const rules = readRules();

  it('has no cycle', () => {
    expect(importCycles(graph)).toEqual([]);
  });

  it('has no arrow architecture.json forbids, and every file in a room', () => {
    expect(forbiddenArrows(graph, rules)).toEqual([]);
  });

  it("has the CLI take from below only names index.ts exports, doctor's listed modules aside", () => {
    expect(nonPublicImports(graph, rules)).toEqual([]);
  });

  it('reports a CLI import of a name the public API does not export, and an unused exception', () => {
    const lib = mkdtempSync(join(tmpdir(), 'sb-arch-'));
    const write = (file: string, text: string) => {
      mkdirSync(dirname(join(lib, file)), { recursive: true });
      writeFileSync(join(lib, file), text);
    };
    try {
      write('index.ts', "export { scan, type ScanResult } from './scan/job.js';\n");
      write('scan/job.ts', 'export const scan = 1, ScanJob = 2;\n');
      write(
        'cli/a.ts',
        "import { scan, ScanJob, type ScanResult } from '../scan/job.js';\nimport '../scan/side.js';\nconst r = import('../resolver/index.js');\n",
      );
      const planted = new Map([['cli/a.ts', ['scan/job.ts', 'resolver/index.ts']]]);
      const withException = {
        ...rules,
        publicApiOnly: {
          ...rules.publicApiOnly,
          exceptions: [{ file: 'cli/b.ts', modules: ['scan/job.ts'], why: '' }],
        },
      };
      expect(nonPublicImports(planted, withException, lib)).toEqual([
        'cli/a.ts -> scan/job.ts: ScanJob not in the public API (index.ts)',
        'cli/a.ts -> scan/side.ts: (not by name) not in the public API (index.ts)',
        'cli/a.ts -> resolver/index.ts: (not by name) not in the public API (index.ts)',
        'cli/b.ts -> scan/job.ts: an exception nothing uses any more',
      ]);
    } finally {
      rmSync(lib, { recursive: true, force: true });
    }
  });

  it('reports a forbidden arrow with the rule that forbids it', () => {
    // The arrow this check was written for: the target grammar reading the scanner's options.
    const planted = new Map([['scan/targets/grammar.ts', ['scan/engines/options.ts', 'common/errors.ts']]]);
    const problems: string[] = forbiddenArrows(planted, rules);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^scan\/targets\/grammar\.ts -> scan\/engines\/options\.ts \(targets -> engines: /);
    expect(forbiddenArrows(new Map([['probes/session.ts', ['scan/job.ts']]]), rules)).toHaveLength(1);
    expect(forbiddenArrows(new Map([['common/options.ts', ['probes/plan.ts']]]), rules)).toHaveLength(1);
  });

  it('puts a file in the room of its longest listed path', () => {
    expect(roomOf('scan/addon/layout.ts', rules)).toBe('layout');
    expect(roomOf('scan/addon/load.ts', rules)).toBe('addon');
    expect(roomOf('scan/job.ts', rules)).toBe('scan');
    expect(roomOf('cli.ts', rules)).toBe('cli');
    expect(roomOf('elsewhere/new.ts', rules)).toBeUndefined();
  });

  it('reports a cycle', () => {
    const cycle = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['a.ts']],
    ]);
    expect(importCycles(cycle)).toEqual(['a.ts -> b.ts -> a.ts']);
  });
});
