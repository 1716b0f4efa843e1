//! Actors: helper processes that hold sockets and run steps.
//!
//! The harness re-executes its own binary (or the program set with
//! [`set_agent_program`]) with `SOCKSPEC_AGENT` in the environment; that
//! process calls [`serve_if_agent`] first thing in `main`, becomes another
//! user if asked (before it creates any socket), and then answers requests
//! read from stdin, one JSON line each, on stdout. Sockets travel between
//! processes over a second channel: SCM_RIGHTS on a socketpair on Unix, a
//! WSADuplicateSocket blob inside the JSON on Windows.
//!
//! The messages are protocol version [`PROTOCOL`], specified in
//! `docs/agent-protocol.md` with a JSON Schema beside it: helpers in other
//! runtimes (`helpers/python`, `helpers/node`) speak it too. A run started
//! with `--agent` runs every socket step in such a helper
//! ([`set_run_agent`]); a `spawn` step may name a runtime for its actor.

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
static RUN_AGENT: OnceLock<AgentCmd> = OnceLock::new();

/// The version of the helper protocol this harness speaks.
pub const PROTOCOL: u32 = 1;

/// What a helper process is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentCmd {
    /// sockspec itself in agent mode (Rust std and socket2).
    Builtin,
    /// Another program and its arguments, speaking the protocol, started
    /// without the environment variables named in `unset`.
    External {
        /// The program and its arguments.
        argv: Vec<String>,
        /// Variables the helper does not inherit.
        unset: Vec<String>,
    },
}

impl AgentCmd {
    /// `argv` as it is, in the caller's environment.
    pub fn command(argv: Vec<String>) -> AgentCmd {
        AgentCmd::External {
            argv,
            unset: Vec::new(),
        }
    }

    /// A runtime name (`rust`, `python`, `node`) or a command line
    /// (`python3 helpers/python/agent.py`). The shipped helpers are found in
    /// `$SOCKSPEC_HELPERS`, else in the source tree's `helpers/`.
    pub fn parse(s: &str) -> Result<AgentCmd, String> {
        let helpers = || {
            std::env::var_os("SOCKSPEC_HELPERS")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../helpers"))
                })
        };
        let shipped = |interp: &[&str], file: &str, unset: Vec<String>| {
            let mut argv: Vec<String> = interp.iter().map(|s| s.to_string()).collect();
            argv.push(helpers().join(file).to_string_lossy().into_owned());
            AgentCmd::External { argv, unset }
        };
        Ok(match s.trim() {
            "" => return Err("an empty agent command".into()),
            "rust" | "builtin" => AgentCmd::Builtin,
            // -I -S: the standard library only, without site-packages (whose
            // .pth hooks cost 30 ms of start-up here) or PYTHON* variables.
            "python" => shipped(&[python3(), "-I", "-S"], "python/agent.py", Vec::new()),
            // Node has no -I: its helper starts without the NODE_* variables
            // instead. NODE_OPTIONS can preload code into it, and
            // NODE_EXTRA_CA_CERTS (set on many CI images) makes Node parse a
            // CA bundle before it starts, 40 of its 80 ms of CPU here.
            // https://nodejs.org/api/cli.html#environment-variables
            "node" => shipped(&["node"], "node/agent.js", env_names_starting_with("NODE_")),
            cmd => AgentCmd::command(cmd.split_whitespace().map(str::to_string).collect()),
        })
    }
}

/// The names of this process's environment variables that begin with
/// `prefix` (in any case: Windows' names are case-insensitive).
fn env_names_starting_with(prefix: &str) -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k.get(..prefix.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        })
        .collect()
}

/// The Python interpreter itself, asked once per process: `python3` is often
/// a shim (pyenv runs a dozen bash processes, ~100 ms, before Python
/// starts), and every Python helper of a run would pay for it again.
/// Started behind the child gate, as every child ([`sys::output`]): a child
/// forked while a socket closes would keep it open.
fn python3() -> &'static str {
    static EXE: OnceLock<String> = OnceLock::new();
    EXE.get_or_init(|| {
        let mut cmd = std::process::Command::new("python3");
        cmd.args([
            "-I",
            "-S",
            "-c",
            "import sys; sys.stdout.write(sys.executable)",
        ]);
        sys::output(&mut cmd)
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .filter(|exe| !exe.is_empty())
            .unwrap_or_else(|| "python3".to_string())
    })
}

/// Makes every socket step of this process's tests run in a helper started
/// with `cmd` (`sockspec run --agent`); `spawn` steps without a runtime start
/// the same helper.
pub fn set_run_agent(cmd: AgentCmd) {
    let _ = RUN_AGENT.set(cmd);
}

/// The helper every socket step runs in, when the run has one.
pub fn run_agent() -> Option<&'static AgentCmd> {
    RUN_AGENT.get().filter(|c| **c != AgentCmd::Builtin)
}

/// The implementation that runs the steps: `rust std (sockspec 0.1.0)`, or
/// what the run's helper says it is in its hello (`python 3.11.7`).
/// Asked once per process: a helper is started, greets, and is ended.
pub fn implementation() -> Result<String, String> {
    static ASKED: OnceLock<Result<String, String>> = OnceLock::new();
    ASKED
        .get_or_init(|| match run_agent() {
            None => Ok(builtin_implementation().to_string()),
            Some(cmd) => {
                let pids = Pids::default();
                let deadline = Instant::now() + Duration::from_secs(10);
                let (a, _) = Actor::spawn_cmd("probe", cmd, None, deadline, &pids)?;
                Ok(a.implementation.clone())
            }
        })
        .clone()
}

fn builtin_implementation() -> &'static str {
    concat!("rust std (sockspec ", env!("CARGO_PKG_VERSION"), ")")
}

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

/// Requests from the harness (docs/agent-protocol.md).
#[derive(Serialize, Deserialize, Debug)]
pub enum ToAgent {
    /// Perform one step and answer [`FromAgent::Done`] (or `Unsupported` / `Failed`).
    Exec {
        /// The step, fully resolved (ports are numbers by now).
        action: Action,
        /// Milliseconds left before the test's deadline.
        left_ms: u64,
    },
    /// Give up a socket: send it over the descriptor channel (Unix) or
    /// duplicate it for process `to_pid` (Windows).
    Export {
        /// Name of the socket to give up.
        sock: String,
        /// The process that will adopt it (Windows duplicates the socket for it).
        to_pid: u32,
    },
    /// Take a socket that follows on the descriptor channel, or from `blob`.
    Adopt {
        /// Name the socket goes by in the case's steps.
        sock: String,
        /// Its protocol, as the harness created it.
        proto: Proto,
        /// Its address family.
        family: Family,
        /// Whether the socket is in non-blocking mode, which the receiver keeps.
        nonblocking: bool,
        /// The Windows `WSADuplicateSocket` blob (base64); `None` on Unix, where the socket
        /// comes on the descriptor channel.
        blob: Option<String>,
    },
    /// Exit at once without closing any socket: the kernel closes them.
    Exit,
    /// Close every socket the helper holds and forget their names, so that
    /// it can serve another test ([`FromAgent::Cleared`]); only to a helper
    /// with the `clear` capability.
    Clear,
}

/// A helper's account of itself, in its hello.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Implementation {
    /// `rust`, `python`, `node`, ...
    pub runtime: String,
    /// The runtime's version.
    pub version: String,
}

/// Answers from the agent (docs/agent-protocol.md).
#[derive(Serialize, Deserialize, Debug)]
pub enum FromAgent {
    /// The first message: the protocol version the agent speaks, who it is.
    Hello {
        /// The protocol version the agent speaks; the harness refuses any but its own.
        protocol: u32,
        /// The agent's process id, so the harness can kill it (and, on Windows, duplicate
        /// sockets for it).
        pid: u32,
        /// Proof of the user the built-in agent became when asked to (`SOCKSPEC_AGENT_USER`);
        /// `None` otherwise.
        identity: Option<String>,
        /// The agent's runtime and version.
        implementation: Implementation,
        /// Optional parts of the protocol it implements: `pass` (Export and Adopt).
        capabilities: Vec<String>,
    },
    /// The step ran: its outcome, and the addresses of the sockets the agent holds.
    Done {
        /// The step's outcome, raw error code and detail.
        done: Done,
        /// Every socket the agent holds, by name, with its local and peer address as the kernel
        /// reports them now.
        addrs: Vec<(String, Addrs)>,
    },
    /// A socket was given up ([`ToAgent::Export`]), with what the receiver needs to take it.
    Exported {
        /// The duplicated socket's blob (Windows); `None` on Unix.
        blob: Option<String>,
        /// Whether the exported socket was non-blocking.
        nonblocking: bool,
    },
    /// The socket of an [`ToAgent::Adopt`] was taken under its name.
    Adopted,
    /// Every socket is closed ([`ToAgent::Clear`]).
    Cleared {
        /// The sockets the helper still has open, besides the descriptor
        /// channel, as its OS lists them; `None` if it cannot tell. Anything
        /// but 0 ends the helper.
        sockets: Option<u32>,
    },
    /// The runtime cannot express this request (a step kind, a field value,
    /// a socket hand-off): never an outcome.
    Unsupported {
        /// What could not be expressed (`a TCP bind`).
        what: String,
        /// Why the runtime cannot express it.
        reason: String,
    },
    /// The agent could not start or could not do its part; the test errors with this message.
    Failed(String),
}

/// Why an actor could not do what was asked.
#[derive(Debug)]
pub enum AgentError {
    /// The helper's runtime cannot express it.
    Unsupported(String),
    /// Anything else: the helper failed, vanished or did not answer.
    Failed(String),
}

impl From<String> for AgentError {
    fn from(s: String) -> Self {
        AgentError::Failed(s)
    }
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::Unsupported(m) | AgentError::Failed(m) => f.write_str(m),
        }
    }
}

/// The PIDs of the helper processes of an attempt, so that a hung attempt's
/// helpers can be killed from outside.
pub type Pids = Arc<Mutex<Vec<u32>>>;

/// A running helper process.
pub struct Actor {
    /// The actor's name in the case's steps (the `actor` of `spawn`).
    pub name: String,
    /// The helper's process id.
    pub pid: u32,
    /// `runtime version`, from the hello.
    pub implementation: String,
    /// How many tests this helper served before the current one (kept
    /// between tests: [`Actor::recycle`]).
    pub served: u32,
    external: bool,
    capabilities: Vec<String>,
    /// What was started, and as whom: a kept helper serves only a spawn
    /// that asks for the same ([`Actor::recycle`]).
    cmd: AgentCmd,
    user: Option<u32>,
    /// The identity proof of its hello.
    identity: Option<String>,
    /// The sockets it had open after its hello ([`sys::open_sockets`]).
    sockets_at_hello: Option<usize>,
    /// A request of this test went unanswered, failed, or was refused after
    /// it may have begun (a socket sent for an Adopt the helper refused
    /// waits on its channel, where no count sees it): never kept.
    suspect: bool,
    child: Child,
    /// Closed first when the actor is dropped ([`Drop for Actor`]).
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Result<FromAgent, String>>,
    chan: sys::DescriptorChannel,
    ended: bool,
    /// Reaped (its pid has left [`super::live`]'s registry).
    reaped: bool,
}

impl Actor {
    /// Starts an agent, as `user` if given; returns it with the identity
    /// proof the agent sends back.
    /// Starts the run's helper (`--agent`), else sockspec's own.
    pub fn spawn(
        name: &str,
        user: Option<u32>,
        deadline: Instant,
        pids: &Pids,
    ) -> Result<(Actor, Option<String>), String> {
        Self::spawn_cmd(
            name,
            run_agent().unwrap_or(&AgentCmd::Builtin),
            user,
            deadline,
            pids,
        )
    }

    /// Starts a helper with `cmd`.
    pub fn spawn_cmd(
        name: &str,
        cmd: &AgentCmd,
        user: Option<u32>,
        deadline: Instant,
        pids: &Pids,
    ) -> Result<(Actor, Option<String>), String> {
        if let Some(mut a) = Kept::take(cmd, user) {
            a.name = name.to_string();
            a.served += 1;
            pids.lock().unwrap_or_else(|e| e.into_inner()).push(a.pid);
            let identity = a.identity.clone();
            return Ok((a, identity));
        }
        let (program, args, unset) = match cmd {
            AgentCmd::Builtin => (program()?, Vec::new(), &[][..]),
            AgentCmd::External { argv, unset } => (
                PathBuf::from(argv.first().ok_or("an empty agent command")?),
                argv[1..].to_vec(),
                &unset[..],
            ),
        };
        let external = matches!(cmd, AgentCmd::External { .. });
        if external && user.is_some() {
            return Err("a helper in another runtime cannot become another user".into());
        }
        let mut env = vec![(AGENT_ENV.to_string(), std::process::id().to_string())];
        if let Some(u) = user {
            env.push((USER_ENV.to_string(), u.to_string()));
        }
        // Helpers in other runtimes find the channel where the protocol says
        // (descriptor 3, which costs a fork); sockspec's own agent is told.
        let (mut child, chan) =
            super::live::spawn(|| sys::spawn_agent(&program, &args, &env, unset, external))
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
            stdin: Some(stdin),
            rx,
            chan,
            ended: false,
            reaped: false,
            implementation: String::new(),
            served: 0,
            external,
            capabilities: Vec::new(),
            cmd: cmd.clone(),
            user,
            identity: None,
            sockets_at_hello: None,
            suspect: false,
        };
        match actor.wait_answer(deadline)? {
            FromAgent::Hello {
                protocol,
                identity,
                implementation,
                capabilities,
                ..
            } => {
                if protocol != PROTOCOL {
                    return Err(format!(
                        "the agent speaks protocol version {protocol}; this harness speaks {PROTOCOL}"
                    ));
                }
                actor.implementation =
                    format!("{} {}", implementation.runtime, implementation.version);
                actor.capabilities = capabilities;
                actor.identity = identity.clone();
                // Only a helper that can be kept is counted.
                if actor.capabilities.iter().any(|c| c == "clear") {
                    actor.sockets_at_hello = sys::open_sockets(pid);
                }
                Ok((actor, identity))
            }
            FromAgent::Failed(e) => Err(e),
            other => Err(format!("unexpected first answer from the agent: {other:?}")),
        }
    }

    fn send(&mut self, msg: &ToAgent) -> Result<(), String> {
        let line = serde_json::to_string(msg).map_err(|e| e.to_string())?;
        let sent = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{line}").and_then(|()| stdin.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
        .map_err(|e| format!("actor `{}` is gone: {e}", self.name));
        self.suspect |= sent.is_err();
        sent
    }

    fn wait_answer(&mut self, deadline: Instant) -> Result<FromAgent, String> {
        let answer = self.answer_by(deadline);
        self.suspect |= answer.is_err();
        answer
    }

    fn answer_by(&mut self, deadline: Instant) -> Result<FromAgent, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let ended = |a: &mut Actor| match a.try_reap() {
            Ok(Some(st)) => format!(" ({st})"),
            _ => String::new(),
        };
        match self.rx.recv_timeout(left) {
            Ok(Ok(FromAgent::Failed(e))) => Err(format!("actor `{}`: {e}", self.name)),
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "actor `{}` did not answer by the deadline",
                self.name
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(5));
                let status = ended(self);
                Err(format!("actor `{}` ended unexpectedly{status}", self.name))
            }
        }
    }

    /// Runs a resolved action in the actor.
    pub fn exec(
        &mut self,
        action: &Action,
        deadline: Instant,
    ) -> Result<(Done, Vec<(String, Addrs)>), AgentError> {
        let left_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        self.send(&ToAgent::Exec {
            action: action.clone(),
            left_ms,
        })?;
        // The agent enforces the deadline itself; allow a moment for the answer.
        match self.wait_answer(deadline + Duration::from_millis(500))? {
            FromAgent::Done { mut done, addrs } => {
                // The portable name comes from the OS's own code, whatever
                // name another runtime gives it (Python's EAGAIN is
                // sockspec's EWOULDBLOCK).
                if self.external
                    && let (crate::outcome::Outcome::Error(_), Some(raw)) =
                        (&done.outcome, done.raw)
                {
                    done.outcome = crate::outcome::Outcome::Error(sys::error_name(raw));
                }
                Ok((done, addrs))
            }
            FromAgent::Unsupported { what, reason } => Err(self.unsupported(&what, &reason)),
            other => {
                self.suspect = true;
                Err(format!("unexpected answer: {other:?}").into())
            }
        }
    }

    fn unsupported(&self, what: &str, reason: &str) -> AgentError {
        AgentError::Unsupported(format!(
            "{} cannot express {what}: {reason}",
            self.implementation
        ))
    }

    /// A hand-off the helper answered otherwise than it should: a socket
    /// may be left on the channel, where no count sees it, so the helper is
    /// not kept.
    fn refused(&mut self, answer: FromAgent) -> AgentError {
        self.suspect = true;
        match answer {
            FromAgent::Unsupported { what, reason } => self.unsupported(&what, &reason),
            other => format!("unexpected answer: {other:?}").into(),
        }
    }

    fn can_pass(&self) -> Result<(), AgentError> {
        if self.capabilities.iter().any(|c| c == "pass") {
            Ok(())
        } else {
            Err(self.unsupported("a socket hand-off", "its helper does not implement `pass`"))
        }
    }

    /// Takes a socket out of the actor, into this process.
    pub fn export(
        &mut self,
        sock: &str,
        deadline: Instant,
        proto: Proto,
        family: Family,
    ) -> Result<LocalSock, AgentError> {
        self.can_pass()?;
        self.send(&ToAgent::Export {
            sock: sock.to_string(),
            to_pid: std::process::id(),
        })?;
        match self.wait_answer(deadline)? {
            FromAgent::Exported { blob, nonblocking } => {
                // A socket left on the channel would reach the next test's
                // export: a helper this happened with is not kept.
                let s = sys::receive_socket(&self.chan, blob.as_deref()).map_err(|e| {
                    self.suspect = true;
                    format!("receiving `{sock}`: {e}")
                })?;
                Ok(LocalSock::new(s, proto, family, nonblocking))
            }
            other => Err(self.refused(other)),
        }
    }

    /// Gives a socket of this process to the actor; this process's copy is
    /// closed once the actor holds its own.
    pub fn adopt(
        &mut self,
        sock: &str,
        ls: LocalSock,
        deadline: Instant,
    ) -> Result<(), AgentError> {
        self.can_pass()?;
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
            other => Err(self.refused(other)),
        }
    }

    /// SIGKILL / TerminateProcess, and reap it.
    pub fn kill(&mut self) -> Result<(), String> {
        self.ended = true;
        self.reap(true).map_err(|e| e.to_string())
    }

    /// Kills the helper if `kill`, and reaps it (once).
    fn reap(&mut self, kill: bool) -> std::io::Result<()> {
        if !self.reaped {
            super::live::end(&mut self.child, kill)?;
            self.reaped = true;
        }
        Ok(())
    }

    /// Reaps the helper if it has exited.
    fn try_reap(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        if self.reaped {
            return self.child.try_wait();
        }
        let status = super::live::try_end(&mut self.child)?;
        self.reaped = status.is_some();
        Ok(status)
    }

    /// Lets the actor exit on its own without closing its sockets, and reaps it.
    pub fn exit(&mut self, deadline: Instant) -> Result<(), String> {
        self.send(&ToAgent::Exit)?;
        self.ended = true;
        while Instant::now() < deadline {
            match self.try_reap() {
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

impl Actor {
    /// Keeps the helpers for this thread's next tests that start the same
    /// ones, where they clear by `by`: each closes every socket it holds and
    /// says it has none left, and (Linux) its descriptor table agrees. Any
    /// other answer, or none by `by`, ends the helper as before, as does
    /// anything that went wrong with it in its test. All are asked at once
    /// and answer against the one deadline. Starting an interpreter is most
    /// of what a test in another runtime costs (Python 30-100 ms of CPU,
    /// Node 35 ms); a kept one starts no new process.
    pub fn recycle(actors: impl IntoIterator<Item = Actor>, by: Instant) {
        let asked: Vec<Actor> = actors
            .into_iter()
            .filter(|a| !a.ended && !a.suspect && a.capabilities.iter().any(|c| c == "clear"))
            .filter_map(|mut a| a.send(&ToAgent::Clear).is_ok().then_some(a))
            .collect();
        for mut a in asked {
            if let Ok(FromAgent::Cleared { sockets: Some(0) }) = a.wait_answer(by)
                && sys::open_sockets(a.pid) == a.sockets_at_hello
            {
                Kept::put(a);
            }
        }
    }
}

/// How long a helper may take to clear before it is ended instead.
pub const CLEAR_WAIT: Duration = Duration::from_secs(1);

/// The helpers this thread keeps between tests ([`Actor::recycle`]): at
/// most [`Kept::MAX`], the oldest ended first. They end with the thread. A
/// helper is kept by the thread that started it, so it stays in that
/// thread's network namespace (and, on Linux, dies with it: PDEATHSIG).
struct Kept;

thread_local! {
    static KEPT: std::cell::RefCell<Vec<Actor>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The pids of the helpers this thread keeps.
pub fn kept_pids() -> Vec<u32> {
    Kept::pids()
}

/// Ends the helpers this thread keeps (killed and reaped).
pub fn end_kept() {
    let kept = KEPT.with(|k| std::mem::take(&mut *k.borrow_mut()));
    drop(kept);
}

impl Kept {
    const MAX: usize = 4;

    /// A kept helper started as `cmd` asks, that is still running (one
    /// that died meanwhile is reaped and passed over).
    fn take(cmd: &AgentCmd, user: Option<u32>) -> Option<Actor> {
        loop {
            let mut a = KEPT.with(|k| {
                let mut k = k.borrow_mut();
                let i = k.iter().position(|a| a.cmd == *cmd && a.user == user)?;
                Some(k.remove(i))
            })?;
            if let Ok(None) = a.try_reap() {
                return Some(a);
            }
        }
    }

    /// The kept helpers' pids, so that a hung attempt's end kills them too.
    fn pids() -> Vec<u32> {
        KEPT.with(|k| k.borrow().iter().map(|a| a.pid).collect())
    }

    fn put(a: Actor) {
        let ended = KEPT.with(|k| {
            let mut k = k.borrow_mut();
            k.push(a);
            (k.len() > Self::MAX).then(|| k.remove(0))
        });
        // Dropped outside the borrow: ending a helper reaps it.
        drop(ended);
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        // End of file first: a helper that a kill does not reach (a
        // wrapper's child on Windows) ends its loop on it.
        drop(self.stdin.take());
        let _ = self.reap(!self.ended);
        // The reader thread holds the helper's stdout until it reads the
        // end, then drops its sender: waited for, so that the pipe is closed
        // when the helper is gone (a run returned with it still open under
        // load). Bounded: a child of the helper may hold the pipe too.
        let until = Instant::now() + READER_WAIT;
        while self
            .rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .is_ok()
        {}
    }
}

/// How long an ended helper's reader thread is waited for.
const READER_WAIT: Duration = Duration::from_secs(1);

/// If this process was started as an agent, serve and return its exit code.
pub fn serve_if_agent() -> Option<ExitCode> {
    let parent: u32 = std::env::var(AGENT_ENV).ok()?.parse().ok()?;
    Some(match serve(parent) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::stdio::eline(&format!("sockspec agent: {e}"));
            ExitCode::from(3)
        }
    })
}

/// The built-in agent's hello.
fn hello(identity: Option<String>) -> FromAgent {
    FromAgent::Hello {
        protocol: PROTOCOL,
        pid: std::process::id(),
        identity,
        implementation: Implementation {
            runtime: "rust".into(),
            version: builtin_implementation()
                .trim_start_matches("rust ")
                .to_string(),
        },
        capabilities: vec!["pass".into(), "clear".into()],
    }
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
    reply(&hello(identity))?;
    let mut local = Local::default();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let msg: ToAgent = match serde_json::from_str(&line) {
            Ok(m) => m,
            Err(e) => {
                reply(&FromAgent::Failed(format!("bad request: {e}")))?;
                continue;
            }
        };
        match msg {
            ToAgent::Exec { action, left_ms } => {
                if let Action::Server(s) = &action
                    && s.api != "default"
                {
                    reply(&FromAgent::Unsupported {
                        what: format!("server api `{}`", s.api),
                        reason: "Rust std has one way to make a server".into(),
                    })?;
                    continue;
                }
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
                    local.insert(&sock, LocalSock::new(s, proto, family, nonblocking));
                    reply(&FromAgent::Adopted)?;
                }
                Err(e) => reply(&FromAgent::Failed(format!("receiving `{sock}`: {e}")))?,
            },
            // No destructors, no close(): the kernel closes what we hold.
            ToAgent::Exit => std::process::exit(0),
            // Dropping what it held closes every socket.
            ToAgent::Clear => {
                local = Local::default();
                reply(&FromAgent::Cleared {
                    sockets: sys::open_sockets_here(&chan),
                })?;
            }
        }
    }
    Ok(())
}
