/**
 * The status page's stylesheet (status-page.ts). A plain string, no interpolation: the page's
 * CSP allows exactly this text by its hash.
 */
export const STATUS_PAGE_STYLE = `
:root {
  --bg: #eef1f5; --card: #fff; --ink: #1c2430; --muted: #667085; --line: #dde2ea;
  --good: #157f3b; --good-bg: #e3f5e9; --bad: #b42318; --bad-bg: #fde8e7;
  --warn: #9a5b00; --warn-bg: #fff1d6; --info: #1f5fbf; --info-bg: #e4eefc;
  --idle: #4b5565; --idle-bg: #eceff3;
  --mono: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { margin: 0; }
body { background: var(--bg); color: var(--ink); font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif; }
.mono { font-family: var(--mono); font-size: 12px; }
.muted { color: var(--muted); }
.top { display: flex; align-items: center; gap: 18px; padding: 10px 18px; background: #141b26; color: #e8edf4; flex-wrap: wrap; }
.brand { font-weight: 650; font-size: 15px; letter-spacing: .2px; white-space: nowrap; }
.brand .muted { color: #93a0b4; font-weight: 400; }
.brand .instance { font-weight: 500; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; padding: 1px 6px; border-radius: 4px; background: rgba(147, 160, 180, .18); }
.brand .instance:empty { display: none; }
.summary { display: flex; gap: 8px; flex-wrap: wrap; flex: 1; }
.stat { background: #222c3b; border-radius: 6px; padding: 3px 10px; white-space: nowrap; }
.stat b { font-variant-numeric: tabular-nums; }
.stat.bad { background: #6b1f1a; }
.stat.warn { background: #6a4700; }
.live { display: flex; align-items: center; gap: 7px; color: #b7c2d3; white-space: nowrap; font-variant-numeric: tabular-nums; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: #7b8799; }
.dot.ok { background: #35c46a; box-shadow: 0 0 0 3px rgba(53,196,106,.25); }
.dot.down { background: #f04438; box-shadow: 0 0 0 3px rgba(240,68,56,.3); }
.banner { margin: 12px 18px 0; padding: 10px 14px; border-radius: 8px; font-weight: 600; border: 1px solid; overflow-wrap: anywhere; }
.banner.down { background: var(--bad-bg); color: var(--bad); border-color: #f5b5b0; }
.banner.warn { background: var(--warn-bg); color: var(--warn); border-color: #f0cf8c; }
.banner ul { margin: 4px 0 0; padding-left: 20px; font-weight: 400; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 360px; gap: 14px; padding: 12px 18px 18px; align-items: start; }
@media (max-width: 1100px) { .layout { grid-template-columns: minmax(0, 1fr); } }
body.stale .apps, body.stale .feed { opacity: .55; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; margin-bottom: 14px; overflow: hidden; }
.card-head { display: flex; align-items: center; gap: 10px; padding: 9px 14px; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
.card-head h2 { margin: 0; font-size: 15px; font-family: var(--mono); overflow-wrap: anywhere; }
.empty { padding: 14px; color: var(--muted); }
.card-head[role=button] { cursor: pointer; user-select: none; }
.card-head[role=button]:hover { background: #f7f9fb; }
.card-head[role=button]:focus-visible { outline: 2px solid var(--info); outline-offset: -2px; }
.app.collapsed .card-head { border-bottom: 0; }
.caret { color: var(--muted); width: 10px; }
.filter { background: #222c3b; color: #e8edf4; border: 1px solid #3a4658; border-radius: 6px; padding: 4px 9px; font: inherit; width: 220px; }
.filter::placeholder { color: #93a0b4; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11.5px; font-weight: 650; white-space: nowrap; background: var(--idle-bg); color: var(--idle); }
.pill.solid { text-transform: uppercase; font-size: 11px; letter-spacing: .3px; }
.pill.good { background: var(--good-bg); color: var(--good); }
.pill.bad { background: var(--bad-bg); color: var(--bad); }
.pill.warn { background: var(--warn-bg); color: var(--warn); }
.pill.info { background: var(--info-bg); color: var(--info); }
.pill.solid.good { background: var(--good); color: #fff; }
.pill.solid.bad { background: var(--bad); color: #fff; }
.pill.solid.warn { background: #c27a00; color: #fff; }
.count { font-weight: 650; font-variant-numeric: tabular-nums; }
.count.good { color: var(--good); } .count.warn { color: var(--warn); } .count.bad { color: var(--bad); }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
th { text-align: left; font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .4px; color: var(--muted); padding: 6px 8px; background: #f7f9fb; border-bottom: 1px solid var(--line); }
td { padding: 7px 8px; border-bottom: 1px solid #edf0f4; vertical-align: top; overflow-wrap: anywhere; }
tr:last-child td { border-bottom: 0; }
td:first-child, th:first-child { border-left: 4px solid transparent; }
tr.routed td:first-child { border-left-color: #35c46a; }
tr.ejected td:first-child { border-left-color: var(--bad); }
tr.draining td:first-child, tr.panic td:first-child { border-left-color: #e59a0b; }
tr.ejected { background: #fff7f6; }
tr.changed td { animation: flash 2.5s ease-out; }
@keyframes flash { from { background: #fff3b0; } to { background: transparent; } }
.col-backend { width: 21%; } .col-routing { width: 12%; } .col-health { width: 11%; } .col-breaker { width: 11%; } .col-probe { width: 17%; }
.with-container .col-backend { width: 18%; } .with-container .col-routing { width: 11%; } .with-container .col-health { width: 10%; }
.with-container .col-breaker { width: 10%; } .with-container .col-probe { width: 14%; } .with-container .col-container { width: 16%; }
.addr { font-family: var(--mono); font-size: 12.5px; font-weight: 600; }
.sub { color: var(--muted); font-size: 11.5px; margin-top: 2px; }
.ok-mark { color: var(--good); font-weight: 700; } .bad-mark { color: var(--bad); font-weight: 700; }
/* Long texts (probe errors, failure messages) stop after a few lines; the full text is the tooltip. */
.clamp { display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 3; overflow: hidden; }
.ftype { font-weight: 650; } .ftype.bad { color: var(--bad); } .ftype.warn { color: var(--warn); }
.errors { margin: 0; padding: 8px 14px 10px 30px; }
.errors li { color: var(--bad); overflow-wrap: anywhere; margin: 2px 0; }
.rejected-item { padding: 8px 14px 0; border-top: 1px solid #edf0f4; }
.rejected-item:first-of-type { border-top: 0; }
.feed { background: var(--card); border: 1px solid var(--line); border-radius: 10px; position: sticky; top: 12px; max-height: calc(100vh - 24px); display: flex; flex-direction: column; min-width: 0; }
.feed h2 { margin: 0; font-size: 14px; padding: 9px 14px; border-bottom: 1px solid var(--line); }
.events { list-style: none; margin: 0; padding: 0; overflow-y: auto; }
.events li { padding: 6px 12px 7px; border-bottom: 1px solid #edf0f4; border-left: 4px solid var(--line); overflow-wrap: anywhere; }
.events li.good { border-left-color: #35c46a; } .events li.bad { border-left-color: var(--bad); }
.events li.warn { border-left-color: #e59a0b; } .events li.info { border-left-color: #5b8def; }
.events li.fresh { animation: flash 2.5s ease-out; }
.ev-head { display: flex; gap: 6px; align-items: baseline; flex-wrap: wrap; }
.ev-time { font-family: var(--mono); font-size: 11.5px; color: var(--muted); }
.ev-who { font-family: var(--mono); font-size: 11.5px; }
.ev-msg { margin-top: 1px; }
.ev-note { color: var(--muted); font-size: 11.5px; }
`;
