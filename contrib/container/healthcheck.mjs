#!/usr/bin/env node
// The image's HEALTHCHECK: exit 0 when serve's GET /healthz answers 200 (the watcher's loop is
// not stuck), else 1 with the reason on stderr. The slim image has no curl; node is there.
// HEALTHCHECK_URL: default http://127.0.0.1:8765/healthz (serve's default --listen). A serve
// that asks for a token asks it on /healthz too: $SCAN_BACKENDS_TOKEN, else the compose secret.
import { readFileSync } from 'node:fs';

const url = process.env.HEALTHCHECK_URL || 'http://127.0.0.1:8765/healthz';
const SECRET = '/run/secrets/scan-backends-token';

function token() {
  if (process.env.SCAN_BACKENDS_TOKEN) return process.env.SCAN_BACKENDS_TOKEN;
  try {
    return readFileSync(SECRET, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const bearer = token();
try {
  const answer = await fetch(url, {
    headers: bearer ? { Authorization: `Bearer ${bearer}` } : {},
    signal: AbortSignal.timeout(4000),
  });
  // Only the status counts; the body is not read.
  await answer.body?.cancel();
  if (answer.status !== 200) {
    process.stderr.write(`healthcheck: ${url} answered ${answer.status}\n`);
    process.exit(1);
  }
} catch (error) {
  process.stderr.write(`healthcheck: ${url}: ${error.cause?.code ?? error.name}\n`);
  process.exit(1);
}
