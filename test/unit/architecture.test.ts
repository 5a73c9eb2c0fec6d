// The layering ARCHITECTURE.md describes, checked on the source by the same functions as
// `node scripts/check-architecture.mjs`: no import cycle, every file in a room, and none of
// the never-arrows listed in architecture.json.
import { describe, expect, it } from 'vitest';

// @ts-expect-error: a plain ESM script without declarations
import { forbiddenArrows, importCycles, importGraph, readRules, roomOf } from '../../scripts/check-architecture.mjs';

describe('the import graph of lib/', () => {
  const graph: Map<string, string[]> = importGraph();
  const rules = readRules();

  it('has no cycle', () => {
    expect(importCycles(graph)).toEqual([]);
  });

  it('has no arrow architecture.json forbids, and every file in a room', () => {
    expect(forbiddenArrows(graph, rules)).toEqual([]);
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
