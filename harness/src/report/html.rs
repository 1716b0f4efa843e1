//! A self-contained HTML page: tests x runs, grouped by topic, each cell with
//! the outcomes, the expectation and its provenance; differing rows
//! highlighted; a filter box. No external assets: the data travels as JSON
//! with interned strings (10 runs x 1000 tests stay well under 2 MB) and a
//! little inline script draws the table.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::matrix::{cell_text, expectation_text, rows};
use crate::results::{Results, TestRecord, Verdict};

/// Interns strings so that repeated outcomes and expectations cost an index.
#[derive(Default)]
struct Strings {
    list: Vec<String>,
    index: HashMap<String, usize>,
}

impl Strings {
    fn id(&mut self, s: &str) -> usize {
        if let Some(i) = self.index.get(s) {
            return *i;
        }
        self.list.push(s.to_string());
        self.index.insert(s.to_string(), self.list.len() - 1);
        self.list.len() - 1
    }
}

fn verdict_code(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "p",
        Verdict::Fail => "f",
        Verdict::Error => "e",
        Verdict::Skip => "s",
        Verdict::Intermittent => "i",
    }
}

/// Where the cell's expectations come from: o(bserved), d(ocumented),
/// m(ixed), or - (none).
fn provenance_code(t: &TestRecord) -> &'static str {
    let mut obs = false;
    let mut doc = false;
    for s in &t.steps {
        match s.expectation.as_ref().map(|e| e.source.as_str()) {
            Some("observed") => obs = true,
            Some("documented") => doc = true,
            _ => {}
        }
    }
    match (obs, doc) {
        (true, false) => "o",
        (false, true) => "d",
        (true, true) => "m",
        (false, false) => "-",
    }
}

/// The HTML report (`sockspec report --html`): one self-contained page of tests by runs,
/// grouped by topic, with a filter box.
pub fn page(runs: &[Results]) -> String {
    page_with_claims(runs, &[])
}

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The claims a case predicts, judged by each run (a table above the matrix).
fn claims_table(claims: &[crate::claims::RunVerdicts], runs: &[Results]) -> String {
    if claims.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<details id=\"claims\"><summary>Claims, judged by what the runs observed</summary>\
         <table class=\"claims\"><thead><tr><th>claim</th><th>says</th>",
    );
    for r in runs {
        s.push_str(&format!("<th>{}</th>", esc(&r.run.title())));
    }
    s.push_str("</tr></thead><tbody>");
    for c in claims {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>",
            esc(&c.id),
            esc(&c.says)
        ));
        for v in &c.per_run {
            match v {
                None => s.push_str("<td>—</td>"),
                Some(v) if v.total() == 0 => s.push_str("<td>—</td>"),
                Some(v) => s.push_str(&format!(
                    "<td class=\"cv-{}\">{}</td>",
                    v.verdict().as_str(),
                    esc(&v.cell())
                )),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></details>");
    s
}

/// [`page`], with the claims' verdicts per run above the matrix.
pub fn page_with_claims(runs: &[Results], claims: &[crate::claims::RunVerdicts]) -> String {
    let mut strings = Strings::default();
    let run_data: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "title": r.run.title(),
                "os": r.run.os,
                "kernel": r.run.kernel,
                "arch": r.run.arch,
                "date": r.run.started,
                "isolation": r.run.isolation,
                // What ran the steps: runs of one kernel in several runtimes
                // (`--agent`) stand side by side, each column naming its own.
                "implementation": r.run.implementation,
                "summary": [r.summary.pass, r.summary.fail, r.summary.error, r.summary.intermittent, r.summary.skip],
            })
        })
        .collect();
    let all = rows(runs);
    let mut topics: Vec<(String, Vec<Value>)> = Vec::new();
    for row in &all {
        let differing = row.differing_labels();
        let cells: Vec<Value> = row
            .cells
            .iter()
            .zip(runs)
            .map(|(c, run)| match c {
                None => Value::from(0),
                Some(t) => {
                    let text = cell_text(t);
                    // Which of the text's space-separated parts (label=outcome)
                    // differ: the page marks them.
                    let marks: Vec<usize> = text
                        .split(' ')
                        .enumerate()
                        .filter(|(_, p)| {
                            p.split_once('=')
                                .is_some_and(|(l, _)| differing.contains(&l))
                        })
                        .map(|(i, _)| i)
                        .collect();
                    json!([
                        verdict_code(t.verdict),
                        strings.id(&text),
                        strings.id(&expectation_text(run, t)),
                        provenance_code(t),
                        marks,
                    ])
                }
            })
            .collect();
        let r = json!([
            strings.id(row.name),
            strings.id(row.title),
            row.differs() as u8,
            cells
        ]);
        match topics.last_mut() {
            Some((t, rs)) if t == row.topic => rs.push(r),
            _ => topics.push((row.topic.to_string(), vec![r])),
        }
    }
    let data = json!({
        "strings": strings.list,
        "runs": run_data,
        "topics": topics.into_iter().map(|(t, rs)| json!([t, rs])).collect::<Vec<_>>(),
        "generated": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    // `</` would end the script element early.
    let payload = data.to_string().replace("</", "<\\/");
    // Runs of one OS on several releases open on how outcomes changed.
    let history = super::history::History::of(runs)
        .map(|h| super::history::html(&h))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>sockspec: {} run(s), {} tests</title><style>{CSS}</style></head>\n<body>\
         <h1>sockspec: {} run(s), {} tests</h1>{history}\
         <p class=\"legend\">Each cell: the checked outcomes of the test on that run; below, \
         where its expectations come from (<b>obs</b>erved, <b>doc</b>umented, <b>mixed</b>, or none). \
         Hover for the expectations, their provenance and why a test failed. \
         <span class=\"v-f\">fail</span> <span class=\"v-e\">error</span> \
         <span class=\"v-i\">intermittent</span> <span class=\"v-s\">skip</span>; rows that differ \
         between runs or from their expectations are marked, and the page opens on them \
         (<a href=\"#all\">#all</a> opens on every row); in a cell, <mark>the step that differs</mark>.</p>\
         <p><input id=\"filter\" type=\"search\" placeholder=\"filter tests by name\" size=\"50\"> \
         <label><input id=\"only\" type=\"checkbox\"> only rows that differ</label> \
         <span id=\"shown\"></span></p>{}\
         <table id=\"matrix\"><thead id=\"head\"></thead><tbody id=\"body\"></tbody></table>\
         <script id=\"data\" type=\"application/json\">{payload}</script>\
         <script>{JS}</script></body></html>\n",
        runs.len(),
        all.len(),
        runs.len(),
        all.len(),
        claims_table(claims, runs),
    )
}

const CSS: &str = "body{font:13px/1.35 system-ui,sans-serif;margin:1em;color:#222}\
h1{font-size:18px}.legend{color:#555;max-width:70em}\
table{border-collapse:separate;border-spacing:0}th,td{border:1px solid #ddd;padding:2px 5px;vertical-align:top}\
thead th{position:sticky;top:0;z-index:2;background:#f4f4f4;text-align:left;font-weight:normal;\
max-width:17em;overflow-wrap:anywhere}thead th:first-child{left:0;z-index:3}\
thead th b{display:block}tr.topic th{background:#eaeef5;text-align:left;position:sticky;left:0}\
td.name{font-family:ui-monospace,monospace;font-size:12px;max-width:22em;overflow-wrap:anywhere;\
position:sticky;left:0;z-index:1;background:#fff}\
tr.differs td.name{background:#fff3cd}tr.differs td.name::before{content:'\\25B6  ';color:#b58105}\
td.cell{font-family:ui-monospace,monospace;font-size:12px;max-width:17em;overflow-wrap:anywhere}\
td.cell mark{background:#ffd54f;font-weight:bold}\
td.cell small{display:block;color:#777;font-family:system-ui,sans-serif}\
.v-p{background:#eef8ee}.v-f{background:#fbe3e3}.v-e{background:#f3d9f7}\
table.claims{margin:.5em 0 1em}table.claims td{max-width:40em}\
.cv-holds{background:#eef8ee}.cv-contradicted{background:#fbe3e3}.cv-mixed{background:#fdebd3}\
table.history{margin:.5em 0 1em}h2{font-size:15px}\
.v-i{background:#fdebd3}.v-s{background:#f2f2f2;color:#888}.v-none{background:#fff;color:#bbb}";

const JS: &str = r#"
const D = JSON.parse(document.getElementById('data').textContent);
const S = D.strings;
const PROV = {o: 'obs', d: 'doc', m: 'mixed', '-': 'no expectation'};
const head = document.getElementById('head');
const body = document.getElementById('body');
function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
const hr = el('tr');
hr.appendChild(el('th', null, 'test'));
for (const r of D.runs) {
  const th = el('th', 'run');
  th.appendChild(el('b', null, r.title));
  th.appendChild(document.createTextNode(`${r.os} ${r.kernel} · ${r.arch} · ${r.isolation}${r.implementation ? ' · steps in ' + r.implementation : ''}`));
  th.appendChild(el('br'));
  th.appendChild(document.createTextNode(`${r.date} · ${r.summary[0]} pass, ${r.summary[1]} fail, ${r.summary[2]} error, ${r.summary[3]} intermittent, ${r.summary[4]} skip`));
  hr.appendChild(th);
}
head.appendChild(hr);
const groups = [];
for (const [topic, rows] of D.topics) {
  const tr = el('tr', 'topic');
  const th = el('th', null, topic);
  th.colSpan = D.runs.length + 1;
  tr.appendChild(th);
  body.appendChild(tr);
  const members = [];
  for (const [name, title, differs, cells] of rows) {
    const row = el('tr', differs ? 'test differs' : 'test');
    row.dataset.name = S[name];
    const n = el('td', 'name');
    // Break long names after each `::`.
    S[name].split('::').forEach((p, i, all) => {
      n.appendChild(document.createTextNode(p + (i < all.length - 1 ? '::' : '')));
      if (i < all.length - 1) n.appendChild(el('wbr'));
    });
    n.title = S[title];
    row.appendChild(n);
    for (const c of cells) {
      if (c === 0) { row.appendChild(el('td', 'cell v-none', '—')); continue; }
      const [v, text, exp, prov, marks] = c;
      const td = el('td', 'cell v-' + v);
      S[text].split(' ').forEach((p, i) => {
        if (i > 0) td.appendChild(document.createTextNode(' '));
        td.appendChild(marks && marks.includes(i) ? el('mark', null, p) : document.createTextNode(p));
      });
      td.appendChild(el('small', null, PROV[prov]));
      td.title = S[exp];
      row.appendChild(td);
    }
    body.appendChild(row);
    members.push(row);
  }
  groups.push([tr, members]);
}
const filter = document.getElementById('filter');
const only = document.getElementById('only');
function apply() {
  const f = filter.value.trim();
  let shown = 0;
  for (const [tr, members] of groups) {
    let any = false;
    for (const row of members) {
      const on = (!f || row.dataset.name.includes(f)) && (!only.checked || row.classList.contains('differs'));
      row.hidden = !on;
      if (on) { any = true; shown++; }
    }
    tr.hidden = !any;
  }
  document.getElementById('shown').textContent = `${shown} shown`;
}
filter.addEventListener('input', apply);
only.addEventListener('change', apply);
// The page opens on the rows that differ, if any. A link can carry a
// filter (report.html#filter=bind::pairs: every row it matches) or ask
// for every row (#all).
const anyDiffers = body.querySelector('tr.differs') !== null;
const m = location.hash.match(/^#filter=(.*)$/);
if (m) filter.value = decodeURIComponent(m[1]);
only.checked = anyDiffers && !m && location.hash !== '#all';
apply();
// The history's links (#filter=NAME) filter the matrix to that test.
window.addEventListener('hashchange', () => {
  const h = location.hash.match(/^#filter=(.*)$/);
  if (h) { filter.value = decodeURIComponent(h[1]); only.checked = false; apply(); }
});
// For ci/html-check.sh: the rendered table's width.
document.body.dataset.tableWidth = document.getElementById('matrix').offsetWidth;
"#;
