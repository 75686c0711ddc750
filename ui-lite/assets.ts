/**
 * The console's one stylesheet, served from memory at `/assets/style.css`: no build step copies
 * files, and nothing comes from outside the site.
 */
export const STYLESHEET = `
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #fff; --panel: #f6f8fa;
  --accent: #0a58ca; --ok: #1a7f37; --warn: #8a5a00; --bad: #b42318; --focus: #ffbf47; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; box-shadow: 0 0 0 5px var(--fg); }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; z-index: 1; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .75rem 1.5rem;
  border-bottom: 1px solid var(--line); background: var(--panel); }
header .brand { font-weight: 700; margin: 0; font-size: 1.1rem; }
nav ul { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; color: var(--fg); }
.account { margin-left: auto; display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
main { padding: 1rem 1.5rem 3rem; max-width: 80rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 0 0 .5rem; }
.tiles { display: grid; gap: 1rem; margin-top: 1rem; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: 1rem; background: var(--bg); }
.tile.unavailable { background: var(--panel); color: var(--muted); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: var(--muted); padding-bottom: .25rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); }
code { font-size: .9em; overflow-wrap: anywhere; }
.status-ok, .status-verified { color: var(--ok); font-weight: 600; }
.status-expiring, .status-unchecked, .status-refused, .status-skipped { color: var(--warn); font-weight: 600; }
.status-expired, .status-failed, .status-foreign-ca, .status-not-yet-valid, .status-unsigned { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
form.stack { display: grid; gap: .75rem; max-width: 24rem; }
form.filters { display: flex; flex-wrap: wrap; gap: .75rem; align-items: end; margin-bottom: 1rem; }
label { display: grid; gap: .2rem; font-weight: 600; }
input, select, button { font: inherit; padding: .4rem .6rem; border: 1px solid var(--muted); border-radius: 4px; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
button.link { background: none; color: var(--accent); border: none; padding: 0; text-decoration: underline; }
.error { border-left: 4px solid var(--bad); padding: .5rem 1rem; background: #fdecea; }
.notice { border-left: 4px solid var(--accent); padding: .5rem 1rem; background: #e8f0fe; }
.pager { display: flex; gap: 1rem; margin-top: 1rem; }
.upload { margin-top: 2rem; display: grid; grid-template-columns: minmax(0, 1fr); gap: .5rem; max-width: 40rem; }
.upload input[type="file"] { max-width: 100%; }
.drop { border: 2px dashed var(--muted); border-radius: 6px; padding: 1rem; margin-bottom: .75rem; }
.drop.over { border-color: var(--accent); background: #e8f0fe; }
progress { width: 100%; height: 1.25rem; }
.login { max-width: 26rem; margin: 4rem auto; padding: 0 1rem; }
form.stack.wide { max-width: 40rem; }
textarea { font: inherit; padding: .4rem .6rem; border: 1px solid var(--muted); border-radius: 4px; width: 100%; }
fieldset { border: 1px solid var(--line); border-radius: 4px; padding: .5rem .75rem; }
label.inline { display: flex; gap: .5rem; align-items: center; font-weight: 400; }
[aria-invalid="true"] { border-color: var(--bad); border-width: 2px; }
.field-error { color: var(--bad); margin: 0; }
.field-error mark { background: #fdecea; color: var(--bad); outline: 1px solid var(--bad); font-weight: 700; }
button.secondary { background: var(--bg); color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin-top: 1rem; }
main > section { margin-bottom: 1.5rem; }
section.object { border-top: 1px solid var(--line); padding-top: .5rem; }
h3 { font-size: 1rem; margin: .5rem 0; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .25rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
code.value { white-space: pre-wrap; }
.change-added, .plan-done, .run-done { color: var(--ok); font-weight: 600; }
.change-removed, .plan-stale, .plan-rolled-back, .run-rolled-back, .run-failed, .run-interrupted { color: var(--bad); font-weight: 600; }
.change-changed, .plan-scheduled, .plan-running, .run-running, .override { color: var(--warn); font-weight: 600; }
.timeline-wrap { overflow-x: auto; }
svg.timeline { max-width: 100%; height: auto; }
@media (max-width: 600px) {
  header, main { padding-left: .75rem; padding-right: .75rem; }
  .account { margin-left: 0; }
  table.records, table.records caption, table.records tbody, table.records tr, table.records td { display: block; }
  table.records thead { position: absolute; left: -9999px; }
  table.records tr { border: 1px solid var(--line); border-radius: 6px; margin-bottom: .75rem; padding: .25rem 0; }
  table.records td { border: none; padding: .2rem .6rem; }
  table.records td::before { content: attr(data-label); display: block; font-size: .85em; color: var(--muted); }
}
`;
