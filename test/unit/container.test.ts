// The Dockerfile and contrib/compose.yaml, read as files (issue 22). No image is built here: the
// base images come from a registry this test cannot count on (this machine reaches none), and
// hadolint is not packaged by Debian. What a build would catch first is checked instead: the
// stages, the user, the health check's route, every file COPY names, the npm scripts RUN calls,
// and the flags compose passes to watch and serve.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { parseFlags } from '../../lib/cli/flags.js';
import { SERVE_FLAGS, parseServeFlags } from '../../lib/cli/serve-command.js';
import { WATCH_FLAGS, parseWatchFlags } from '../../lib/cli/watch-command.js';
import { DEFAULT_LISTEN } from '../../lib/common/options.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions: continuation lines joined, comments and blank lines dropped. */
function instructions(text: string): Instruction[] {
  const found: Instruction[] = [];
  let pending: Instruction | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && !pending)) return;
    const continued = line.endsWith('\\');
    const body = continued ? line.slice(0, -1).trim() : line;
    if (pending) pending.args += ` ${body}`;
    else {
      const [keyword = '', ...rest] = body.split(/\s+/);
      pending = { line: index + 1, keyword: keyword.toUpperCase(), args: rest.join(' ') };
    }
    if (!continued) {
      found.push(pending);
      pending = undefined;
    }
  });
  return found;
}

/** Instructions grouped by stage, each stage under its `AS` name. */
function stages(all: Instruction[]): { name: string; from: string; body: Instruction[] }[] {
  const result: { name: string; from: string; body: Instruction[] }[] = [];
  for (const instruction of all) {
    if (instruction.keyword === 'FROM') {
      const [from = '', as, name] = instruction.args.split(/\s+/);
      result.push({ name: as?.toUpperCase() === 'AS' && name ? name : String(result.length), from, body: [] });
    } else result.at(-1)?.body.push(instruction);
  }
  return result;
}

/** A COPY's flags and its sources (everything but the last word). */
function copyParts(args: string): { from?: string; sources: string[] } {
  const words = args.split(/\s+/);
  const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
  const paths = words.filter((w) => !w.startsWith('--'));
  return { ...(from === undefined ? {} : { from }), sources: paths.slice(0, -1) };
}

/** Whether .dockerignore leaves `path` out of the build context (its plain names and globs). */
function ignored(path: string, patterns: string[]): boolean {
  return patterns.some((pattern) => {
    const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`);
    return regex.test(path);
  });
}

describe('the Dockerfile', () => {
  const all = instructions(read('Dockerfile'));
  const byStage = stages(all);
  const runtime = byStage.at(-1);
  const dockerignore = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  it('builds in one stage and runs from another without the compiler', () => {
    expect(byStage.map((s) => s.name)).toEqual(['build', 'runtime']);
    const installs = (stage: (typeof byStage)[number]) =>
      stage.body.filter((i) => i.keyword === 'RUN' && /apt-get install/.test(i.args)).map((i) => i.args);
    expect(installs(byStage[0] as (typeof byStage)[number]).join(' ')).toMatch(/\bg\+\+ make python3\b/);
    expect(installs(runtime as (typeof byStage)[number])).toEqual([]);
    // The runtime takes the addon as a prebuild: never build/, which only a source build makes.
    const fromBuild = runtime?.body.filter((i) => i.keyword === 'COPY' && copyParts(i.args).from === 'build');
    expect(fromBuild?.flatMap((i) => copyParts(i.args).sources)).toEqual([
      '/src/package.json',
      '/src/node_modules',
      '/src/dist',
      '/src/prebuilds',
    ]);
    expect(byStage[0]?.body.some((i) => i.keyword === 'RUN' && /npm prune --omit=dev/.test(i.args))).toBe(true);
  });

  it('runs as a user that is not root', () => {
    const users = runtime?.body.filter((i) => i.keyword === 'USER').map((i) => i.args) ?? [];
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
  });

  it('checks its health on a route serve answers, with a script the image holds', () => {
    const check = runtime?.body.find((i) => i.keyword === 'HEALTHCHECK');
    expect(check?.args).toMatch(/CMD \["node", "\/app\/contrib\/container\/healthcheck\.mjs"\]/);
    const script = read('contrib/container/healthcheck.mjs');
    const url = new URL(/HEALTHCHECK_URL \|\| '([^']+)'/.exec(script)?.[1] ?? '');
    expect(url.pathname).toBe('/healthz');
    expect(read('lib/serve/server.ts')).toContain(`case '${url.pathname}':`);
    // Where the image's default command (a bare `serve`) listens.
    expect(url.host).toBe(DEFAULT_LISTEN);
    const copied = runtime?.body.filter((i) => i.keyword === 'COPY' && !copyParts(i.args).from);
    expect(copied?.map((i) => i.args)).toContain('contrib/container/healthcheck.mjs ./contrib/container/');
  });

  it('copies only files that exist and that .dockerignore lets into the context', () => {
    const sources = all
      .filter((i) => i.keyword === 'COPY' && !copyParts(i.args).from)
      .flatMap((i) => copyParts(i.args).sources);
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(ignored(source, dockerignore), `${source} is in .dockerignore`).toBe(false);
    }
    // The COPY --from names stages defined before it.
    for (const [index, stage] of byStage.entries()) {
      for (const i of stage.body.filter((x) => x.keyword === 'COPY' && copyParts(x.args).from)) {
        expect(
          byStage.slice(0, index).map((s) => s.name),
          `line ${i.line}`,
        ).toContain(copyParts(i.args).from);
      }
    }
  });

  it('leaves local builds out of the context', () => {
    for (const local of ['node_modules', 'build', 'dist', 'prebuilds', '.git']) {
      expect(ignored(local, dockerignore), local).toBe(true);
    }
  });

  it('calls npm scripts that package.json has', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    const called = all
      .filter((i) => i.keyword === 'RUN')
      .flatMap((i) => [...i.args.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1] as string));
    expect(called).toContain('prebuild');
    for (const name of called) expect(scripts[name], name).toBeDefined();
    expect(scripts.prebuild).toMatch(/^prebuildify --napi --strip --tag-libc\b/);
    // The entry point is the package's bin, linked onto PATH.
    expect((JSON.parse(read('package.json')) as { bin: Record<string, string> }).bin['scan-backends']).toBe(
      './dist/cli.js',
    );
    expect(runtime?.body.find((i) => i.keyword === 'ENTRYPOINT')?.args).toBe('["scan-backends"]');
  });
});

/** compose.yaml's `command:` of each service, as written: a flow sequence, one or more lines. */
function composeCommands(text: string): Map<string, string[]> {
  const commands = new Map<string, string[]>();
  let service = '';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i] as string;
    const named = /^ {2}([a-z][\w-]*):\s*$/.exec(line);
    if (named) service = named[1] as string;
    if (!/^ {4}command:/.test(line)) continue;
    let flow = line.slice(line.indexOf(':') + 1);
    while (!flow.includes(']') && i + 1 < lines.length) flow += lines[(i += 1)];
    const inner = /\[(.*)\]/s.exec(flow)?.[1] ?? '';
    commands.set(
      service,
      inner
        .split(',')
        .map((w) => w.trim().replace(/^'(.*)'$/, '$1'))
        .filter((w) => w !== ''),
    );
  }
  return commands;
}

describe('contrib/compose.yaml', () => {
  const text = read('contrib/compose.yaml');
  const commands = composeCommands(text);

  it('runs Redis, a serve and a watch', () => {
    expect([...commands.keys()]).toEqual(['redis', 'serve', 'watch']);
    expect(commands.get('serve')?.[0]).toBe('serve');
    expect(commands.get('watch')?.[0]).toBe('watch');
  });

  it('gives watch and serve flags they take, and values they accept', () => {
    const serve = commands.get('serve') ?? [];
    const serveValues = parseFlags({
      args: serve.slice(1),
      allowPositionals: false,
      options: { ...SERVE_FLAGS },
    }).values;
    expect(parseServeFlags(serveValues)).toMatchObject({ host: '127.0.0.1', port: 8765 });
    const watch = commands.get('watch') ?? [];
    const watchValues = parseFlags({
      args: watch.slice(1),
      allowPositionals: false,
      options: { ...WATCH_FLAGS },
    }).values;
    expect(parseWatchFlags(watchValues)).toBeDefined();
  });

  it('points both watchers at the Redis it starts, on the address and port that Redis binds', () => {
    const redis = commands.get('redis') ?? [];
    const bind = redis[redis.indexOf('--bind') + 1];
    const port = redis[redis.indexOf('--port') + 1];
    expect(bind).toBe('127.0.0.1');
    for (const service of ['serve', 'watch']) {
      const args = commands.get(service) ?? [];
      expect(args[args.indexOf('--redis') + 1], service).toBe(`redis://${bind}:${port}`);
    }
  });

  it('puts every service on the host network, and builds the image from the Dockerfile', () => {
    // The anchor the watchers share, and Redis's own line.
    expect(text.match(/^\s+network_mode: host$/gm)).toHaveLength(2);
    expect(text).toMatch(/^ {4}<<: \*watcher$/m);
    expect(text).toMatch(/build:\n\s+context: \.\.\n/);
    expect(existsSync(join(ROOT, 'contrib', '..', 'Dockerfile'))).toBe(true);
  });
});
