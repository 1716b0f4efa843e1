//! The helper protocol (docs/agent-protocol.md): every request the harness
//! can send and every answer the built-in agent gives validate against
//! docs/agent-protocol.schema.json, by the validator of tests/common
//! (which knows the part of JSON Schema the document uses); outcomes are
//! also parsed with sockspec's own parser.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sockspec::Suite;
use sockspec::exec::actors::{FromAgent, Implementation, ToAgent};
use sockspec::exec::local::{Addrs, Done};
use sockspec::model::{Family, Proto};
use sockspec::outcome::Outcome;
use sockspec::steps::KINDS;

use common::json_schema;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(root().join("docs/agent-protocol.schema.json"))
        .expect("docs/agent-protocol.schema.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validate(schema: &Value, def: &str, v: &Value) {
    let errs = json_schema::errors(schema, &schema["$defs"][def], v, def);
    assert!(errs.is_empty(), "{v}\n  {}", errs.join("\n  "));
    // The one place the schema says `pattern`: an outcome also parses as one.
    if let Some(o) = v.pointer("/Done/done/outcome").and_then(Value::as_str) {
        o.parse::<Outcome>()
            .unwrap_or_else(|e| panic!("outcome {o}: {e}"));
    }
}

fn rejects(schema: &Value, def: &str, v: &Value) {
    let errs = json_schema::errors(schema, &schema["$defs"][def], v, def);
    assert!(!errs.is_empty(), "the schema accepts {v}");
}

/// Every port reference as the number the engine would have made of it.
fn resolve_ports(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.len() == 1 && (o.contains_key("Lease") || o.contains_key("Of")) {
                *v = json!({ "Number": 4242 });
                return;
            }
            o.values_mut().for_each(resolve_ports);
        }
        Value::Array(a) => a.iter_mut().for_each(resolve_ports),
        _ => {}
    }
}

/// Steps the engine runs itself: never sent to a helper.
const ENGINE_STEPS: &[&str] = &[
    "tcp_state",
    "same_port",
    "sleep",
    "sysctl",
    "spawn",
    "pass",
    "kill",
    "exit",
];

#[test]
fn every_request_validates() {
    let schema = schema();
    let mut seen = std::collections::BTreeSet::new();
    for tree in ["cases", "harness/tests/protocol-cases"] {
        let suite = Suite::load(&root().join(tree)).unwrap_or_else(|e| panic!("{e}"));
        for t in &suite.tests {
            for s in &t.steps {
                if ENGINE_STEPS.contains(&s.action.kind()) {
                    continue;
                }
                seen.insert(s.action.kind());
                let mut v = serde_json::to_value(ToAgent::Exec {
                    action: s.action.clone(),
                    left_ms: 5000,
                })
                .unwrap();
                resolve_ports(&mut v);
                validate(&schema, "request", &v);
                // What a helper reads back is the action the engine sent.
                let back: ToAgent = serde_json::from_value(v).unwrap();
                assert!(matches!(back, ToAgent::Exec { .. }));
            }
        }
    }
    for k in KINDS {
        if !ENGINE_STEPS.contains(&k.name) {
            assert!(
                seen.contains(k.name),
                "no case uses step `{}`: the schema test cannot see it",
                k.name
            );
        }
    }
    for r in [
        ToAgent::Export {
            sock: "s".into(),
            to_pid: 7,
        },
        ToAgent::Adopt {
            sock: "s".into(),
            proto: Proto::Udp,
            family: Family::V6,
            nonblocking: false,
            blob: None,
        },
        ToAgent::Exit,
        ToAgent::Clear,
    ] {
        validate(&schema, "request", &serde_json::to_value(r).unwrap());
    }
    rejects(
        &schema,
        "request",
        &json!({"Exec": {"action": {"Nope": {}}, "left_ms": 1}}),
    );
    rejects(
        &schema,
        "request",
        &json!({"Exec": {"action": {"Bind": {"sock": "a", "addr": "127.0.0.1", "port": {"Lease": "p"}}}, "left_ms": 1}}),
    );
}

#[test]
fn every_answer_kind_validates() {
    let schema = schema();
    let mut done = Done::ok();
    done.outcome = Outcome::Error(sockspec::outcome::ErrName::EADDRINUSE);
    done.raw = Some(98);
    let answers = [
        FromAgent::Hello {
            protocol: 1,
            pid: 1,
            identity: None,
            implementation: Implementation {
                runtime: "rust".into(),
                version: "x".into(),
            },
            capabilities: vec!["pass".into()],
        },
        FromAgent::Done {
            done,
            addrs: vec![(
                "a".into(),
                Addrs {
                    local: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 80))),
                    peer: Some("[::1]:9".parse().unwrap()),
                },
            )],
        },
        FromAgent::Exported {
            blob: None,
            nonblocking: true,
        },
        FromAgent::Adopted,
        FromAgent::Cleared { sockets: Some(0) },
        FromAgent::Cleared { sockets: None },
        FromAgent::Unsupported {
            what: "step `fill`".into(),
            reason: "r".into(),
        },
        FromAgent::Failed("f".into()),
    ];
    for a in answers {
        validate(&schema, "answer", &serde_json::to_value(a).unwrap());
    }
    rejects(
        &schema,
        "answer",
        &json!({"Hello": {"protocol": 2, "pid": 1, "identity": null, "implementation": {"runtime": "r", "version": "v"}, "capabilities": []}}),
    );
}

/// The built-in agent, started as the harness starts it, answers a session
/// of real steps with messages that validate.
#[test]
fn the_builtin_agent_conforms() {
    conforms(&[env!("CARGO_BIN_EXE_sockspec")]);
}

/// So do the shipped helpers, where their runtime is installed.
#[test]
fn the_python_helper_conforms() {
    let helper = root().join("helpers/python/agent.py");
    conforms(&["python3", helper.to_str().unwrap()]);
}

#[test]
fn the_node_helper_conforms() {
    let helper = root().join("helpers/node/agent.js");
    conforms(&["node", helper.to_str().unwrap()]);
}

fn conforms(argv: &[&str]) {
    let schema = schema();
    let started = Command::new(argv[0])
        .args(&argv[1..])
        .env("SOCKSPEC_AGENT", std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match started {
        Ok(c) => c,
        Err(e) if argv[0] != env!("CARGO_BIN_EXE_sockspec") => {
            eprintln!("skipped: cannot start {}: {e}", argv[0]);
            return;
        }
        Err(e) => panic!("cannot start the agent: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut answer = || -> Value {
        let l = lines.next().expect("an answer").expect("a line");
        let v: Value = serde_json::from_str(&l).expect("JSON");
        validate(&schema, "answer", &v);
        v
    };
    let hello = answer();
    assert_eq!(hello["Hello"]["protocol"], 1, "{hello}");
    // A port nobody holds any more, for a refused connect.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut session = |req: Value| -> Value {
        validate(&schema, "request", &req);
        writeln!(stdin, "{req}").unwrap();
        stdin.flush().unwrap();
        answer()
    };
    let exec = |a: Value| json!({"Exec": {"action": a, "left_ms": 3000}});
    let s = session(exec(
        json!({"Server": {"name": "s", "proto": "Tcp", "addr": "127.0.0.1", "port": {"Number": 0}, "api": "default"}}),
    ));
    let local = s["Done"]["addrs"][0][1]["local"]
        .as_str()
        .unwrap()
        .to_string();
    let port: u16 = local.rsplit(':').next().unwrap().parse().unwrap();
    for (a, want) in [
        (
            json!({"Socket": {"name": "c", "proto": "Tcp", "family": "V4", "opts": []}}),
            "ok",
        ),
        (
            json!({"Connect": {"sock": "c", "addr": "127.0.0.1", "port": {"Number": port}}}),
            "ok",
        ),
        (json!({"Accept": {"sock": "s", "name": "a"}}), "ok"),
        (
            json!({"Send": {"sock": "c", "bytes": 10, "to": null}}),
            "ok",
        ),
        (
            json!({"Recv": {"sock": "a", "wait": {"secs": 1, "nanos": 0}}}),
            "data",
        ),
        (
            json!({"Server": {"name": "t", "proto": "Tcp", "addr": "127.0.0.1", "port": {"Number": port}, "api": "default"}}),
            "EADDRINUSE",
        ),
        (
            json!({"Socket": {"name": "d", "proto": "Tcp", "family": "V4", "opts": []}}),
            "ok",
        ),
        (
            json!({"Connect": {"sock": "d", "addr": "127.0.0.1", "port": {"Number": closed}}}),
            "ECONNREFUSED",
        ),
        (json!({"Close": {"sock": "c", "bands": []}}), "ok"),
        (
            json!({"Drain": {"sock": "a", "wait": {"secs": 1, "nanos": 0}}}),
            "eof",
        ),
    ] {
        let r = session(exec(a.clone()));
        assert_eq!(r["Done"]["done"]["outcome"], want, "{a} gave {r}");
    }
    // Reading an option back: an outcome, or Unsupported where the runtime
    // has no API for it (Node); both are messages of the protocol.
    let r = session(exec(json!({"GetOpt": {"sock": "s", "opt": "ReuseAddr"}})));
    assert!(
        r["Done"]["done"]["outcome"].is_string() || r.get("Unsupported").is_some(),
        "{r}"
    );
    clears(&mut session);
    // A request outside the schema (a step kind from a later version): an
    // answer, not silence or an exit.
    writeln!(stdin, "{}", exec(json!({"Frobnicate": {"sock": "s"}}))).unwrap();
    stdin.flush().unwrap();
    let r = answer();
    assert!(
        r.get("Unsupported").is_some() || r.get("Failed").is_some(),
        "{r}"
    );
    writeln!(stdin, "\"Exit\"").unwrap();
    stdin.flush().unwrap();
    assert!(child.wait().unwrap().success());
}

/// The protocol cases pass with every socket step in each helper that this
/// machine can start (`--agent`), the run's own helper included: a `pass`
/// to `main` starts it, never behind the child gate (it once waited there
/// for its own close until the deadline).
#[test]
fn the_protocol_cases_pass_in_every_helper_here() {
    for (agent, probe) in [
        ("rust", None),
        ("python", Some("python3")),
        ("node", Some("node")),
    ] {
        if let Some(p) = probe
            && std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_err()
        {
            eprintln!("{agent}: {p} is not installed here");
            continue;
        }
        let out = run_protocol_cases(agent, &[]);
        // On Linux as root (where no case needs more) the Python helper
        // expresses every step the cases take: a step it stopped expressing
        // would otherwise pass here, as a skip.
        if agent == "python" && cfg!(target_os = "linux") && sockspec::sys::is_privileged() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(", 0 skipped"),
                "--agent python skipped a test:\n{text}"
            );
        }
    }
}

/// The shipped Node helper starts without the NODE_* variables, as the
/// Python one starts with -I: here NODE_OPTIONS preloads a script that
/// throws, which stops any other Node from starting.
#[test]
fn the_node_helper_ignores_node_variables() {
    let dir = tempfile::tempdir().unwrap();
    let preload = dir.path().join("throws.js");
    std::fs::write(&preload, "throw new Error('preloaded');\n").unwrap();
    let options = format!("--require={}", preload.display());
    match Command::new("node")
        .args(["-e", "0"])
        .env("NODE_OPTIONS", &options)
        .output()
    {
        Err(e) => {
            eprintln!("skipped: cannot start node: {e}");
            return;
        }
        // It failed because of the preload (a path the option could not
        // carry would fail too, and prove nothing).
        Ok(o) => assert!(
            !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("preloaded"),
            "this node did not run the preload that throws, so the test below proves nothing"
        ),
    }
    run_protocol_cases("node", &[("NODE_OPTIONS", &options)]);
}

/// Runs the protocol cases alone in helper `agent`, with `env` added, and
/// asserts the run passed; its output.
fn run_protocol_cases(agent: &str, env: &[(&str, &str)]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(["run", "-q", "--only-cases", "--cases"])
        .arg(root().join("harness/tests/protocol-cases"))
        .args(["--agent", agent])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "--agent {agent}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A helper that a wrapper runs without exec'ing it is the wrapper's child,
/// and holds the pipes the harness reads. Ending the helper ends its whole
/// process group: here the wrapper leaves a `sleep` behind as well, and
/// none of them is left once the run is over (before, each ended helper
/// cost a second's wait for its pipe, and every `sleep` ran on for an hour).
/// The `sleep` holds no pipe of the run's, so that it cannot hold up this
/// test's wait for the run's output.
#[cfg(target_os = "linux")]
#[test]
fn a_wrapped_helper_ends_with_everything_its_wrapper_started() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 is not installed here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("3599.{}", std::process::id() % 10_000);
    let wrapper = dir.path().join("wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nsleep {marker} </dev/null >/dev/null 2>&1 &\npython3 -I -S {}\n",
            root().join("helpers/python/agent.py").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sleeps = || -> Vec<String> {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if cmdline == format!("sleep\0{marker}\0").as_bytes() {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        found
    };
    let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(["run", "-q", "--only-cases", "--cases"])
        .arg(root().join("harness/tests/protocol-cases"))
        .arg("--agent")
        .arg(&wrapper)
        .output()
        .unwrap();
    // A killed process leaves /proc once it has died: soon, not at once.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut left = sleeps();
    while !left.is_empty() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
        left = sleeps();
    }
    for pid in &left {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        left.is_empty(),
        "processes a wrapper started, left running: {left:?}"
    );
}

/// Clear: every socket closed and none left, as the OS counts; the port of a
/// UDP server the helper held is free again, for a new one in the same
/// helper (UDP leaves nothing behind, as TCP's TIME_WAIT would).
fn clears(session: &mut dyn FnMut(Value) -> Value) {
    let exec = |a: Value| json!({"Exec": {"action": a, "left_ms": 3000}});
    let u = session(exec(
        json!({"Server": {"name": "u", "proto": "Udp", "addr": "127.0.0.1", "port": {"Number": 0}, "api": "default"}}),
    ));
    let udp = u["Done"]["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a[0] == "u")
        .and_then(|a| a[1]["local"].as_str())
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port for `u` in {u}"));
    let r = session(json!("Clear"));
    let left = &r["Cleared"]["sockets"];
    assert!(
        left == 0 || (cfg!(windows) && left.is_null()),
        "sockets left after Clear: {r}"
    );
    let again = session(exec(
        json!({"Server": {"name": "u", "proto": "Udp", "addr": "127.0.0.1", "port": {"Number": udp}, "api": "default"}}),
    ));
    assert_eq!(again["Done"]["done"]["outcome"], "ok", "{again}");
    assert_eq!(
        again["Done"]["addrs"].as_array().map(Vec::len),
        Some(1),
        "names from before Clear: {again}"
    );
}
