// The CLI's rule, checked on the source: lib/cli.ts and lib/cli/ map flags to options and
// call the public API, so they import only lib/index.ts, lib/common/, lib/daemon/,
// lib/serve/, lib/demo/ and each other. Anything else the CLI needs becomes an export of
// lib/index.ts. The one exception is doctor, whose checks are of the machinery itself.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const LIB = resolve(dirname(fileURLToPath(import.meta.url)), '../../lib');

/** Where the CLI may reach: paths relative to lib/. */
const ALLOWED = [/^index\.ts$/, /^cli\.ts$/, /^cli\//, /^common\//, /^daemon\//, /^serve\//, /^demo\//];

/**
 * doctor checks what the public API hides on purpose: whether the addon loads, the fd limit
 * and the concurrency it allows, the config search path, the coordinators in /proc, a Redis
 * PING through the registry's own client (lib/redis/ once the Redis code moves there).
 */
const EXCEPTIONS: Record<string, RegExp[]> = {
  'cli/doctor-command.ts': [
    /^scan\/addon\/load\.ts$/,
    /^scan\/job\.ts$/,
    /^scan\/engines\/index\.ts$/,
    /^resolver\/config-file\.ts$/,
    /^resolver\/process\.ts$/,
    /^resolver\/redis-cache\.ts$/,
    /^redis\//,
  ],
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every lib file a CLI file imports (static, type-only, re-export or dynamic), relative to lib/. */
function cliImports(): [string, string][] {
  return [join(LIB, 'cli.ts'), ...sources(join(LIB, 'cli'))].flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return [...text.matchAll(/(?:from|import\(|import)\s*'(\.{1,2}\/[^']+)\.js'/g)].map((m): [string, string] => [
      relative(LIB, file),
      relative(LIB, resolve(dirname(file), `${m[1]}.ts`)),
    ]);
  });
}

describe('the CLI imports', () => {
  const imports = cliImports();

  it('reach only the public API, common, daemon, serve, demo and the CLI itself', () => {
    const outside = imports
      .filter(([, target]) => !ALLOWED.some((rule) => rule.test(target)))
      .filter(([file, target]) => !(EXCEPTIONS[file] ?? []).some((rule) => rule.test(target)))
      .map(([file, target]) => `${file} -> ${target}`);
    expect(outside).toEqual([]);
  });

  it('are read from the source (the scan finds the CLI files and their imports)', () => {
    expect(imports.some(([file, target]) => file === 'cli/scan-command.ts' && target === 'index.ts')).toBe(true);
    expect(imports.some(([file]) => file === 'cli.ts')).toBe(true);
  });

  it('keep no exception that is no longer used', () => {
    const unused = Object.entries(EXCEPTIONS).flatMap(([file, rules]) =>
      rules
        .filter((rule) => !imports.some(([from, target]) => from === file && rule.test(target)))
        .map((rule) => `${file}: ${rule.source}`),
    );
    // The two Redis spellings stand for one module before and after its move to lib/redis/.
    expect(unused.filter((u) => !/redis/.test(u))).toEqual([]);
  });
});
