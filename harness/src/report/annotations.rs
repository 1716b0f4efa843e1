//! GitHub workflow annotations (`::error file=...,line=...::message`) that
//! point at the case file of every test that did not pass.

use crate::results::{Results, Verdict};

/// Escapes per the workflow-command rules: %, CR, LF in the message; also
/// `,` and `:` in properties.
fn esc(s: &str, property: bool) -> String {
    let mut out = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

pub fn lines(results: &Results) -> Vec<String> {
    results
        .tests
        .iter()
        .filter(|t| {
            matches!(
                t.verdict,
                Verdict::Fail | Verdict::Error | Verdict::Intermittent
            )
        })
        .map(|t| {
            let file = t.file.replace('\\', "/");
            format!(
                "::error file={},line={},title={}::{}",
                esc(&file, true),
                t.line,
                esc(
                    &format!(
                        "sockspec {} on {}: {}",
                        t.verdict.as_str(),
                        results.run.title(),
                        t.name
                    ),
                    true
                ),
                esc(t.reason.as_deref().unwrap_or(t.verdict.as_str()), false)
            )
        })
        .collect()
}
