// Another watcher's supervisor, as a process of its own: argv is REDIS_URL CONFIG SERVER...; a
// watcher (built package) on that Redis claims the servers for a coordinator and keeps the
// claims renewed until it is killed. Prints "claimed <watcher id>" once they are held.
import { watchBackends } from '../../dist/index.js';

const [redisUrl, configPath, ...servers] = process.argv.slice(2);
const watcher = watchBackends({
  redisUrl,
  sources: ['config'],
  configPath,
  intervalMs: 60_000,
  healthIntervalMs: 1000,
});
const claims = await watcher.coordinatorClaims();
await claims.claimAll(servers);
process.stdout.write(`claimed ${watcher.id}\n`);
