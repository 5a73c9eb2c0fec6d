// How scan results are printed: an aligned table for people, JSON and NDJSON for programs.
import type { ScanReport, ScanResult } from '../scan.js';

export type OutputFormat = 'table' | 'json' | 'ndjson';

/** Rows beyond which the table folds closed and filtered ports into one line, as nmap does. */
const TABLE_FOLD_ROWS = 20;

export function formatRtt(rttMs: number): string {
  return rttMs >= 100 ? `${Math.round(rttMs)} ms` : `${rttMs.toFixed(rttMs >= 10 ? 1 : 2)} ms`;
}

export function renderTable(results: readonly ScanResult[]): string {
  const folded = results.length > TABLE_FOLD_ROWS;
  const hidden = new Map<string, number>();
  const rows: string[][] = [];
  for (const r of results) {
    if (folded && (r.state === 'closed' || r.state === 'filtered')) {
      hidden.set(r.state, (hidden.get(r.state) ?? 0) + 1);
      continue;
    }
    rows.push([r.host, String(r.port), r.error ? `${r.state} (${r.error})` : r.state, formatRtt(r.rttMs)]);
  }
  const header = ['HOST', 'PORT', 'STATE', 'RTT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const lines = [line(header), ...rows.map(line)];
  if (hidden.size > 0) {
    lines.push(`Not shown: ${[...hidden].map(([state, n]) => `${n} ${state}`).join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}

export function summarize(report: ScanReport, targets: number): string {
  const counts = new Map<string, number>();
  for (const r of report.results) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  const open = counts.get('open') ?? 0;
  return `${targets} host:port pairs scanned in ${(report.elapsedMs / 1000).toFixed(2)} s (${report.engine} engine): ${open} open`;
}

export function renderJson(report: ScanReport): string {
  return `${JSON.stringify(report)}\n`;
}

export function renderNdjsonLine(result: ScanResult): string {
  return `${JSON.stringify(result)}\n`;
}
