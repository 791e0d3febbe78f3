/**
 * The status page the admin server serves at `/` and `/status`: one self-contained HTML document
 * (inline CSS and JS, no fonts, scripts or images from anywhere) so it works offline and needs no
 * build step. It polls the read-only JSON API (`api/v1/apps`, `readyz`, `api/v1/events`) and
 * never writes. Every value from the API may come from container labels, so the script builds
 * the DOM with `textContent` only; the CSP below would not run an injected script anyway.
 *
 * The script and style (status-page-script.ts, status-page-style.ts) are kept as plain strings
 * (no template interpolation) so the CSP can allow exactly them by hash.
 */
import { createHash } from 'node:crypto';
import { STATUS_PAGE_SCRIPT as SCRIPT } from './status-page-script.js';
import { STATUS_PAGE_STYLE as STYLE } from './status-page-style.js';

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page itself. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>orchestry-sidecar status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body class="stale">
<header class="top">
  <div class="brand">orchestry-sidecar <span class="muted">status</span> <span id="instance" class="instance" title="this sidecar (instance)"></span></div>
  <div id="summary" class="summary"></div>
  <input id="filter" class="filter" type="search" placeholder="Filter apps and backends" aria-label="Filter apps and backends" autocomplete="off" spellcheck="false">
  <div class="live"><span id="dot" class="dot"></span><span id="updated">connecting\u2026</span></div>
</header>
<div id="banner" class="banner down" role="alert" hidden></div>
<div id="notready" class="banner warn" hidden></div>
<noscript><div class="banner warn">This page needs JavaScript. The same data is at <a href="api/v1/apps">api/v1/apps</a>.</div></noscript>
<main class="layout">
  <div id="apps" class="apps"></div>
  <aside class="feed"><h2>Recent events</h2><ol id="events" class="events"></ol></aside>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

/**
 * Headers for the page: only the inline script and style above may run, it may fetch only from
 * its own origin, and no other site may frame it.
 */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': [
    "default-src 'none'",
    `script-src ${sha256(SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};
