//! A whole run leaves nothing behind: no open descriptor and no child
//! process (helper processes included) that was not there before.
//! Linux only: it reads both from /proc.
#![cfg(target_os = "linux")]

use std::collections::BTreeMap;

use sockspec::run::{Options, run};
use sockspec::{Platform, Suite};

/// Open descriptors of this process and what they point at.
fn descriptors() -> BTreeMap<String, String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        // The directory listing itself.
        .filter(|(_, t)| !t.starts_with("/proc/"))
        .collect()
}

/// Children of every thread of this process (unreaped ones included).
fn children() -> Vec<String> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(text.split_whitespace().map(str::to_string));
        }
    }
    out
}

#[test]
fn the_whole_suite_leaks_no_descriptor_and_no_process() {
    sockspec::exec::actors::set_agent_program(env!("CARGO_BIN_EXE_sockspec").into());
    let suite = Suite::load(&Suite::default_root()).unwrap_or_else(|e| panic!("{e}"));
    let platform = Platform::current();
    let (fds_before, kids_before) = (descriptors(), children());
    let opts = Options {
        jobs: 2,
        ..Options::default()
    };
    let results = run(&suite, &platform, &opts, |_| {});
    assert_eq!(results.tests.len(), suite.tests.len());
    let actors_ran = results
        .tests
        .iter()
        .filter(|t| t.topic == "actors" && t.verdict != sockspec::results::Verdict::Skip)
        .count();
    assert!(
        actors_ran > 0,
        "the run must have started helper processes to show anything"
    );
    let (fds_after, kids_after) = (descriptors(), children());
    let leaked: Vec<_> = fds_after
        .iter()
        .filter(|(fd, t)| fds_before.get(*fd) != Some(t))
        .collect();
    assert!(
        leaked.is_empty(),
        "descriptors left open by the run: {leaked:?}"
    );
    assert_eq!(kids_after, kids_before, "child processes left by the run");
}

/// Every child process starts behind the child gate (`sys::spawn_child`,
/// `sys::output`): one forked while a test closes a socket keeps a copy of
/// it, and the close neither lingers nor frees the port (a one-time Python
/// probe started outside the gate made `timing::linger_close` close "quick"
/// on a 6.1 guest). Outside the sys layer nothing starts a process itself.
#[test]
fn children_start_only_through_the_sys_layer() {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("sys") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    if [".spawn()", ".output()", ".status()"]
                        .iter()
                        .any(|c| code.contains(c))
                    {
                        out.push(format!("{}:{}: {}", p.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "children started outside sys::spawn_child / sys::output:\n{}",
        found.join("\n")
    );
}
