//! Actors: helper processes that hold sockets and run steps.
//!
//! The harness re-executes its own binary (or the program set with
//! [`set_agent_program`]) with `SOCKSPEC_AGENT` in the environment; that
//! process calls [`serve_if_agent`] first thing in `main`, becomes another
//! user if asked (before it creates any socket), and then answers requests
//! read from stdin, one JSON line each, on stdout. Sockets travel between
//! processes over a second channel: SCM_RIGHTS on a socketpair on Unix, a
//! WSADuplicateSocket blob inside the JSON on Windows.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitCode};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::local::{Addrs, Done, Local, LocalSock};
use crate::model::{Action, Family, Proto};
use crate::sys;

/// The environment variable that makes a sockspec binary an agent.
pub const AGENT_ENV: &str = "SOCKSPEC_AGENT";
const USER_ENV: &str = "SOCKSPEC_AGENT_USER";

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// The program to start as an agent (default: the running executable). Test
/// binaries whose `main` is libtest's set the `sockspec` binary here.
pub fn set_agent_program(path: PathBuf) {
    let _ = PROGRAM.set(path);
}

fn program() -> Result<PathBuf, String> {
    match PROGRAM.get() {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}")),
    }
}

/// Requests from the harness.
#[derive(Serialize, Deserialize, Debug)]
enum ToAgent {
    Exec {
        action: Action,
        /// Milliseconds left before the test's deadline.
        left_ms: u64,
    },
    /// Give up a socket: send it over the descriptor channel (Unix) or
    /// duplicate it for process `to_pid` (Windows).
    Export { sock: String, to_pid: u32 },
    /// Take a socket that follows on the descriptor channel, or from `blob`.
    Adopt {
        sock: String,
        proto: Proto,
        family: Family,
        nonblocking: bool,
        blob: Option<String>,
    },
    /// Exit at once without closing any socket: the kernel closes them.
    Exit,
}

/// Answers from the agent.
#[derive(Serialize, Deserialize, Debug)]
enum FromAgent {
    Hello {
        pid: u32,
        identity: Option<String>,
    },
    Done {
        done: Done,
        addrs: Vec<(String, Addrs)>,
    },
    Exported {
        blob: Option<String>,
        nonblocking: bool,
    },
    Adopted,
    Failed(String),
}

/// The PIDs of the helper processes of an attempt, so that a hung attempt's
/// helpers can be killed from outside.
pub type Pids = Arc<Mutex<Vec<u32>>>;

/// A running helper process.
pub struct Actor {
    pub name: String,
    pub pid: u32,
    child: Child,
    stdin: ChildStdin,
    rx: mpsc::Receiver<Result<FromAgent, String>>,
    chan: sys::DescriptorChannel,
    ended: bool,
}

impl Actor {
    /// Starts an agent, as `user` if given; returns it with the identity
    /// proof the agent sends back.
    pub fn spawn(
        name: &str,
        user: Option<u32>,
        deadline: Instant,
        pids: &Pids,
    ) -> Result<(Actor, Option<String>), String> {
        let program = program()?;
        let mut env = vec![(AGENT_ENV.to_string(), std::process::id().to_string())];
        if let Some(u) = user {
            env.push((USER_ENV.to_string(), u.to_string()));
        }
        let (mut child, chan) = sys::spawn_agent(&program, &env)
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let pid = child.id();
        pids.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
        let stdin = child.stdin.take().ok_or("the agent has no stdin")?;
        let stdout = child.stdout.take().ok_or("the agent has no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("sockspec-actor-{name}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let msg = match line {
                        Ok(l) => serde_json::from_str(&l)
                            .map_err(|e| format!("bad answer from the agent: {e}: {l}")),
                        Err(e) => Err(format!("reading the agent: {e}")),
                    };
                    if tx.send(msg).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let mut actor = Actor {
            name: name.to_string(),
            pid,
            child,
            stdin,
            rx,
            chan,
            ended: false,
        };
        match actor.wait_answer(deadline)? {
            FromAgent::Hello { identity, .. } => Ok((actor, identity)),
            FromAgent::Failed(e) => Err(e),
            other => Err(format!("unexpected first answer from the agent: {other:?}")),
        }
    }

    fn send(&mut self, msg: &ToAgent) -> Result<(), String> {
        let line = serde_json::to_string(msg).map_err(|e| e.to_string())?;
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("actor `{}` is gone: {e}", self.name))
    }

    fn wait_answer(&mut self, deadline: Instant) -> Result<FromAgent, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(Ok(FromAgent::Failed(e))) => Err(format!("actor `{}`: {e}", self.name)),
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "actor `{}` did not answer by the deadline",
                self.name
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(format!("actor `{}` ended unexpectedly", self.name))
            }
        }
    }

    /// Runs a resolved action in the actor.
    pub fn exec(
        &mut self,
        action: &Action,
        deadline: Instant,
    ) -> Result<(Done, Vec<(String, Addrs)>), String> {
        let left_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        self.send(&ToAgent::Exec {
            action: action.clone(),
            left_ms,
        })?;
        // The agent enforces the deadline itself; allow a moment for the answer.
        match self.wait_answer(deadline + Duration::from_millis(500))? {
            FromAgent::Done { done, addrs } => Ok((done, addrs)),
            other => Err(format!("unexpected answer: {other:?}")),
        }
    }

    /// Takes a socket out of the actor, into this process.
    pub fn export(
        &mut self,
        sock: &str,
        deadline: Instant,
        proto: Proto,
        family: Family,
    ) -> Result<LocalSock, String> {
        self.send(&ToAgent::Export {
            sock: sock.to_string(),
            to_pid: std::process::id(),
        })?;
        match self.wait_answer(deadline)? {
            FromAgent::Exported { blob, nonblocking } => {
                let s = sys::receive_socket(&self.chan, blob.as_deref())
                    .map_err(|e| format!("receiving `{sock}`: {e}"))?;
                Ok(LocalSock {
                    sock: s,
                    proto,
                    family,
                    nonblocking,
                })
            }
            other => Err(format!("unexpected answer: {other:?}")),
        }
    }

    /// Gives a socket of this process to the actor; this process's copy is
    /// closed once the actor holds its own.
    pub fn adopt(&mut self, sock: &str, ls: LocalSock, deadline: Instant) -> Result<(), String> {
        let blob = sys::send_socket(&self.chan, &ls.sock, self.pid)
            .map_err(|e| format!("sending `{sock}`: {e}"))?;
        self.send(&ToAgent::Adopt {
            sock: sock.to_string(),
            proto: ls.proto,
            family: ls.family,
            nonblocking: ls.nonblocking,
            blob,
        })?;
        match self.wait_answer(deadline)? {
            FromAgent::Adopted => Ok(()),
            other => Err(format!("unexpected answer: {other:?}")),
        }
    }

    /// SIGKILL / TerminateProcess, and reap it.
    pub fn kill(&mut self) -> Result<(), String> {
        self.ended = true;
        self.child.kill().map_err(|e| e.to_string())?;
        self.child.wait().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Lets the actor exit on its own without closing its sockets, and reaps it.
    pub fn exit(&mut self, deadline: Instant) -> Result<(), String> {
        self.send(&ToAgent::Exit)?;
        self.ended = true;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(e.to_string()),
            }
        }
        self.kill()?;
        Err(format!(
            "actor `{}` did not exit by the deadline; killed",
            self.name
        ))
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// If this process was started as an agent, serve and return its exit code.
pub fn serve_if_agent() -> Option<ExitCode> {
    let parent: u32 = std::env::var(AGENT_ENV).ok()?.parse().ok()?;
    Some(match serve(parent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sockspec agent: {e}");
            ExitCode::from(3)
        }
    })
}

fn serve(parent: u32) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let mut reply = |msg: &FromAgent| -> Result<(), String> {
        let line = serde_json::to_string(msg).map_err(|e| e.to_string())?;
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    };
    // Another user first, before any socket exists in this process.
    let identity = match std::env::var(USER_ENV).ok().map(|u| u.parse::<u32>()) {
        Some(Ok(uid)) => match sys::become_user(uid) {
            Ok(proof) => Some(proof),
            Err(e) => {
                reply(&FromAgent::Failed(format!(
                    "could not become uid {uid}: {e}"
                )))?;
                return Err(e);
            }
        },
        Some(Err(_)) => return Err("bad SOCKSPEC_AGENT_USER".into()),
        None => None,
    };
    // Die with the harness, even if it is killed.
    sys::die_with_parent(parent);
    let chan = sys::agent_channel();
    reply(&FromAgent::Hello {
        pid: std::process::id(),
        identity,
    })?;
    let mut local = Local::default();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let msg: ToAgent = serde_json::from_str(&line).map_err(|e| format!("bad request: {e}"))?;
        match msg {
            ToAgent::Exec { action, left_ms } => {
                let done = local.exec(&action, Instant::now() + Duration::from_millis(left_ms));
                reply(&FromAgent::Done {
                    done,
                    addrs: local.addrs(),
                })?;
            }
            ToAgent::Export { sock, to_pid } => match local.take(&sock) {
                Some(ls) => match sys::send_socket(&chan, &ls.sock, to_pid) {
                    // Our copy closes here, once the harness can receive its own.
                    Ok(blob) => reply(&FromAgent::Exported {
                        blob,
                        nonblocking: ls.nonblocking,
                    })?,
                    Err(e) => reply(&FromAgent::Failed(format!("sending `{sock}`: {e}")))?,
                },
                None => reply(&FromAgent::Failed(format!("no socket `{sock}` here")))?,
            },
            ToAgent::Adopt {
                sock,
                proto,
                family,
                nonblocking,
                blob,
            } => match sys::receive_socket(&chan, blob.as_deref()) {
                Ok(s) => {
                    local.insert(
                        &sock,
                        LocalSock {
                            sock: s,
                            proto,
                            family,
                            nonblocking,
                        },
                    );
                    reply(&FromAgent::Adopted)?;
                }
                Err(e) => reply(&FromAgent::Failed(format!("receiving `{sock}`: {e}")))?,
            },
            // No destructors, no close(): the kernel closes what we hold.
            ToAgent::Exit => std::process::exit(0),
        }
    }
    Ok(())
}
