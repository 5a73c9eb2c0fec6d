// GET /: the dashboard, one self-contained page (no CDN, no font, nothing fetched but this
// server's own API). The server renders the tables, so the page is whole without JavaScript;
// the page's one script re-fetches the rendered fragments when an event arrives over SSE,
// and polls every 3 s when the stream is down. One renderer for both: the fragments below.
// Everything a peer said is HTML-escaped here. The script and the style are allowed by their
// hashes in the Content-Security-Policy; nothing else runs.
import { createHash } from 'node:crypto';

import { formatHostPort } from '../common/host-port.js';
import type { ScannerInfo } from '../redis/fleet.js';
import type { CoordinatorStatus, WatchedBackend, WatchEvent, WatchSnapshot } from '../watch/types.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

const GiB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(bytes >= 100 * GiB ? 0 : 1)} GiB`;

/** As the page and the API show it: up and usable, busy, down, or up but left out for its protocol (never a colour alone). */
export function displayState(b: WatchedBackend): 'up' | 'busy' | 'down' | 'left-out' {
  if (b.state === 'down') return 'down';
  if (b.leftOut !== undefined) return 'left-out';
  return b.health === 'busy' ? 'busy' : 'up';
}

function ago(iso: string | undefined, now: number): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function row(b: WatchedBackend, lastEvent: WatchEvent | undefined, now: number): string {
  const state = displayState(b);
  const devices = (b.rpc?.devices ?? [])
    .map((d) => {
      const used = d.totalBytes - d.freeBytes;
      return `<div class="device"><meter min="0" max="${d.totalBytes}" value="${used}" title="device ${d.index}: ${escapeHtml(gib(used))} used"></meter> <span>dev ${d.index}: ${escapeHtml(gib(d.freeBytes))} free of ${escapeHtml(gib(d.totalBytes))}</span></div>`;
    })
    .join('');
  const sources = b.sources
    .map((s) => `${escapeHtml(s)}${b.namedAt?.[s] ? ` <small>(${escapeHtml(ago(b.namedAt[s], now))})</small>` : ''}`)
    .join(', ');
  const reported = b.reportedBy?.length ? `<br><small>reported by ${escapeHtml(b.reportedBy.join(', '))}</small>` : '';
  const change = lastEvent
    ? `${escapeHtml(lastEvent.type)} ${escapeHtml(ago(lastEvent.time, now))}<br><small>${escapeHtml(lastEvent.cause.saw)}</small>`
    : '';
  return `<tr data-state="${state}">
<th scope="row">${escapeHtml(formatHostPort(b))}</th>
<td class="state"><span class="badge ${state}">${state.replace('-', ' ').toUpperCase()}</span><br><small>${escapeHtml(b.leftOut ?? b.lastCheck?.saw ?? '')}</small></td>
<td>${escapeHtml(b.rpc?.protocol ?? '')}</td>
<td>${devices || '<small>unknown</small>'}</td>
<td>${sources}${reported}</td>
<td>${b.rttMs === undefined ? '' : `${escapeHtml(b.rttMs.toFixed(1))} ms`}</td>
<td>${b.flaps}</td>
<td>${change}</td>
</tr>`;
}

/** The table body: one row per backend, or a row saying there is none yet. */
export function backendsFragment(snapshot: WatchSnapshot, lastEvents: Map<number, WatchEvent>): string {
  const now = Date.now();
  if (snapshot.backends.length === 0) {
    return `<tr><td colspan="8">${snapshot.watcher.ready ? 'No live backend found.' : 'Looking for backends…'}</td></tr>`;
  }
  return snapshot.backends
    .map((b) => row(b, b.lastEventId === undefined ? undefined : lastEvents.get(b.lastEventId), now))
    .join('\n');
}

export function summaryFragment(snapshot: WatchSnapshot): string {
  const counts = { up: 0, busy: 0, down: 0, 'left-out': 0 };
  for (const b of snapshot.backends) counts[displayState(b)] += 1;
  const leftOut = counts['left-out'] > 0 ? `, ${counts['left-out']} left out for their protocol` : '';
  return `${counts.up} up, ${counts.busy} busy, ${counts.down} down${leftOut} · usable: <code>${escapeHtml(snapshot.rpc || 'none')}</code>`;
}

export function eventsFragment(events: readonly WatchEvent[]): string {
  if (events.length === 0) return '<li>No events yet.</li>';
  return [...events]
    .reverse()
    .map(
      (e) =>
        `<li><time datetime="${escapeHtml(e.time)}">${escapeHtml(e.time.slice(11, 19))}</time> <span class="badge ${escapeHtml(e.type === 'down' || e.type === 'removed' ? 'down' : 'up')}">${escapeHtml(e.type)}</span> ${escapeHtml(formatHostPort(e.backend))}: ${escapeHtml(e.cause.saw)}</li>`,
    )
    .join('\n');
}

export function scannersFragment(scanners: readonly ScannerInfo[]): string {
  if (scanners.length === 0) return '<li>This watcher alone (no shared Redis).</li>';
  return scanners
    .map(
      (s) =>
        `<li><code>${escapeHtml(s.id)}</code>, version ${escapeHtml(s.version)}, scanning ${escapeHtml(s.scanning.join(', ') || 'nothing')}; heartbeat ${escapeHtml(s.heartbeatAt)}</li>`,
    )
    .join('\n');
}

/** A coordinator state's badge colour: the backends' (the text says the state). */
const COORDINATOR_BADGE: Record<CoordinatorStatus['state'], string> = {
  ready: 'up',
  starting: 'busy',
  restarting: 'busy',
  waiting: 'busy',
  'crash-loop': 'down',
  stopped: 'left-out',
};

/** `run`'s coordinator: its state, pid, --rpc list, time to ready, restarts, last reason. */
export function coordinatorFragment(status: CoordinatorStatus | undefined): string {
  if (!status) return '<p>No coordinator is supervised here.</p>';
  const now = Date.now();
  const item = (term: string, value: string) => `<dt>${term}</dt><dd>${value}</dd>`;
  return `<dl>
${item('State', `<span class="badge ${COORDINATOR_BADGE[status.state]}">${escapeHtml(status.state.replace('-', ' ').toUpperCase())}</span> <small>since ${escapeHtml(ago(status.since, now))}</small>`)}
${item('PID', status.pid === undefined ? '<small>none running</small>' : escapeHtml(status.pid))}
${item('Servers', status.servers?.length ? `<code>${escapeHtml(status.servers.join(','))}</code>` : '<small>none yet</small>')}
${item('Time to ready', status.lastMsToReady === undefined ? '<small>not ready yet</small>' : `${escapeHtml((status.lastMsToReady / 1000).toFixed(1))} s`)}
${item('Restarts', escapeHtml(status.restarts))}
${item('Reason', status.reason === undefined ? '' : escapeHtml(status.reason))}
</dl>`;
}

const STYLE = `
:root { color-scheme: light dark; --up: #1a7f37; --busy: #9a6700; --down: #cf222e; --left-out: #6e7781; font-family: system-ui, sans-serif; }
body { margin: 0 auto; padding: 1rem; max-width: 110rem; font-size: clamp(0.9rem, 0.8rem + 0.4vw, 1.3rem); }
h1 { font-size: 1.4em; margin: 0 0 0.3em; } h2 { font-size: 1.1em; margin: 1.2em 0 0.4em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 0.4em 0.6em; border-bottom: 1px solid color-mix(in srgb, currentColor 20%, transparent); }
caption { text-align: left; font-weight: 600; padding-bottom: 0.4em; }
.badge { display: inline-block; padding: 0.05em 0.5em; border-radius: 0.3em; color: #fff; font-weight: 600; font-size: 0.85em; }
.badge.up { background: var(--up); } .badge.busy { background: var(--busy); } .badge.down { background: var(--down); } .badge.left-out { background: var(--left-out); }
tr[data-state="down"] th { text-decoration: line-through; }
meter { width: 8em; } small { opacity: 0.75; }
ol { padding-left: 1.2em; max-height: 30em; overflow-y: auto; }
#live { font-size: 0.85em; opacity: 0.75; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.3em 1em; } dt { font-weight: 600; } dd { margin: 0; }
`;

const SCRIPT = `
(() => {
  const get = (path, id) => fetch(path, { credentials: 'same-origin', cache: 'no-store' })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
    .then((html) => { document.getElementById(id).innerHTML = html; });
  const refresh = () => Promise.all([
    get('/fragments/backends', 'backends'), get('/fragments/summary', 'summary'), get('/fragments/events', 'events'),
    document.getElementById('coordinator') && get('/fragments/coordinator', 'coordinator'),
  ]).catch(() => {});
  const live = document.getElementById('live');
  let poll;
  const startPolling = () => { if (!poll) { poll = setInterval(refresh, 3000); live.textContent = 'polling every 3 s'; } };
  if ('EventSource' in window) {
    const source = new EventSource('/api/events');
    source.onopen = () => { if (poll) { clearInterval(poll); poll = undefined; } live.textContent = 'live'; refresh(); };
    source.onmessage = refresh;
    source.addEventListener('reset', refresh);
    source.onerror = startPolling;
  } else startPolling();
  setInterval(() => get('/fragments/scanners', 'scanners').catch(() => {}), 10000);
})();
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The policy every response carries: only this page's own script and style, only this server. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function renderPage(
  snapshot: WatchSnapshot,
  lastEvents: Map<number, WatchEvent>,
  recent: readonly WatchEvent[],
  scanners: readonly ScannerInfo[],
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>scan-backends: RPC backends</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>scan-backends</h1>
<p id="summary" aria-live="polite">${summaryFragment(snapshot)}</p>
<p id="live">${snapshot.watcher.ready ? 'as of the page load' : 'first resolve running'}</p>
</header>
<main>
${
  snapshot.coordinator
    ? `<h2>Coordinator</h2>
<div id="coordinator" aria-live="polite">
${coordinatorFragment(snapshot.coordinator)}
</div>
`
    : ''
}<div class="scroll">
<table>
<caption>RPC backends (watcher <code>${escapeHtml(snapshot.watcher.id)}</code>)</caption>
<thead><tr><th scope="col">Backend</th><th scope="col">State</th><th scope="col">Protocol</th><th scope="col">Device memory</th><th scope="col">Sources</th><th scope="col">RTT</th><th scope="col">Flaps</th><th scope="col">Last change</th></tr></thead>
<tbody id="backends">
${backendsFragment(snapshot, lastEvents)}
</tbody>
</table>
</div>
<h2>Events</h2>
<ol id="events" reversed aria-live="polite">
${eventsFragment(recent)}
</ol>
<h2>Scanners</h2>
<ul id="scanners">
${scannersFragment(scanners)}
</ul>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
