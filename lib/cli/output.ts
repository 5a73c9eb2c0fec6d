// How scan results are printed: an aligned table for people, JSON and NDJSON for programs.
import { terminalSafe } from '../common/peer-text.js';
import type { ScanReport, ScanResult } from '../scan/job.js';

export type OutputFormat = 'table' | 'json' | 'ndjson';

/** Rows beyond which the table folds closed and filtered ports into one line, as nmap does. */
const TABLE_FOLD_ROWS = 20;

export function formatRtt(rttMs: number): string {
  return rttMs >= 100 ? `${Math.round(rttMs)} ms` : `${rttMs.toFixed(rttMs >= 10 ? 1 : 2)} ms`;
}

/** The probe's short summary of a result: protocol version, product version or gRPC status. */
function detail(r: ScanResult): string {
  if (r.rpc) {
    const memory = r.rpc.devices.map(
      (d) => `${(d.freeBytes / 2 ** 30).toFixed(1)}/${(d.totalBytes / 2 ** 30).toFixed(1)} GiB`,
    );
    const fit = r.rpc.compatible === false ? ` (client ${r.rpc.client})` : '';
    return `protocol ${r.rpc.protocol}${fit}, ${r.rpc.devices.length} dev${memory.length ? ` ${memory.join(' ')}` : ''}`;
  }
  if (r.grpc) return `${r.grpc.status}${r.grpc.service ? ` (${r.grpc.service})` : ''}`;
  if (r.http) return `${r.http.product}${r.http.version ? ` ${r.http.version}` : ''}`;
  return r.reason ?? '';
}

export function renderTable(results: readonly ScanResult[], fold = true): string {
  const folded = fold && results.length > TABLE_FOLD_ROWS;
  const probed = results.some((r) => r.service !== undefined);
  const hidden = new Map<string, number>();
  const rows: string[][] = [];
  for (const r of results) {
    if (folded && (r.state === 'closed' || r.state === 'filtered' || r.state === 'unreachable')) {
      hidden.set(r.state, (hidden.get(r.state) ?? 0) + 1);
      continue;
    }
    const state = r.error ? `${r.state} (${r.error})` : r.state;
    rows.push(
      probed
        ? [r.host, String(r.port), state, guessed(r.service, r), guessed(r.health, r), formatRtt(r.rttMs), detail(r)]
        : [r.host, String(r.port), state, formatRtt(r.rttMs)],
    );
  }
  // Nothing to list (--open with nothing open): no bare header.
  if (rows.length === 0 && hidden.size === 0) return '';
  const header = probed
    ? ['HOST', 'PORT', 'STATE', 'SERVICE', 'HEALTH', 'RTT', 'DETAIL']
    : ['HOST', 'PORT', 'STATE', 'RTT'];
  return alignTable(
    header,
    rows,
    hidden.size > 0 ? [`Not shown: ${[...hidden].map(([state, n]) => `${n} ${state}`).join(', ')}`] : [],
  );
}

/** A guess is shown as one: "busy?". */
function guessed(text: string | undefined, r: ScanResult): string {
  return text === undefined ? '' : r.guess ? `${text}?` : text;
}

/** Aligned columns, the last one ragged; every cell made safe for a terminal. */
export function alignTable(header: string[], body: string[][], footer: string[] = []): string {
  const rows = body.map((row) => row.map(terminalSafe));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line), ...footer].join('\n')}\n`;
}

/** "1 host:port pair", "254 host:port pairs". */
export function pairs(n: number): string {
  return `${n} host:port pair${n === 1 ? '' : 's'}`;
}

/** The scan in one line: what was scanned of the `targets` (an interrupted scan did not finish). */
export function summarize(report: ScanReport, targets: number): string {
  const open = report.results.filter((r) => r.state === 'open').length;
  const scanned = report.results.length;
  const what = scanned < targets ? `${scanned} of ${pairs(targets)}` : pairs(targets);
  const pending = scanned < targets ? `; ${targets - scanned} still pending` : '';
  return `${what} scanned in ${(report.elapsedMs / 1000).toFixed(2)} s (${report.engine} engine): ${open} open${pending}`;
}

export function renderJson(report: ScanReport): string {
  return `${JSON.stringify(report)}\n`;
}

export function renderNdjsonLine(result: ScanResult): string {
  return `${JSON.stringify(result)}\n`;
}
