//! Runs one attempt of a test: each step in order, in the process (actor)
//! that holds its socket.
//!
//! The engine keeps a mirror of every socket of the test — where it lives and
//! the addresses the kernel last reported for it — so that ports resolve to
//! numbers here, claims cover sockets in every process, and `tcp_state` can
//! look an endpoint up after its socket is gone.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::actors::{Actor, AgentCmd, AgentError, CLEAR_WAIT, Pids, run_agent};
use super::local::{Addrs, Done, Local};
use super::ports::{Claims, lease_named};
use super::{AttemptResult, Problem, StepResult};
use crate::model::{Action, Family, PortRef, Proto, Step, Test};
use crate::outcome::{ErrName, Outcome, TcpState};
use crate::steps;
use crate::sys;

/// What the engine knows of a socket, wherever it is.
struct Slot {
    /// The actor holding it; `None` is this process.
    actor: Option<String>,
    proto: Proto,
    family: Family,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// A checked step that sets it up failed: later steps on it are not run.
    failed: bool,
    /// Closed, or its process ended; its addresses stay known.
    open: bool,
}

/// Where the run's helper (`--agent`) sits among the actors: a name no case
/// can give one.
const MAIN: &str = "";

/// A helper that could not do a step: one its runtime cannot express makes
/// the test unavailable (skipped, with the reason), never passed.
fn agent_stop(e: AgentError) -> Stop {
    match e {
        AgentError::Unsupported(m) => Stop::Problem(Problem::Unavailable { msg: m }),
        AgentError::Failed(m) => Stop::Problem(Problem::Harness { msg: m }),
    }
}

/// Why a step produced no kernel outcome.
enum Stop {
    NotRun(String),
    Retry(String),
    Problem(Problem),
}

struct Engine<'a> {
    slots: BTreeMap<String, Slot>,
    local: Local,
    actors: BTreeMap<String, Actor>,
    leases: BTreeMap<String, u16>,
    /// Settings a `sysctl` step changed, with the value each had first: put
    /// back when the attempt ends, so the next test in the namespace starts
    /// from the run's settings.
    sysctls: Vec<(String, String)>,
    claims: &'a mut Claims,
    pids: &'a Pids,
    deadline: Instant,
}

/// Runs every step of `test` once.
pub fn attempt(test: &Test, claims: &mut Claims, pids: &Pids, deadline: Instant) -> AttemptResult {
    let mut e = Engine {
        slots: BTreeMap::new(),
        local: Local::default(),
        actors: BTreeMap::new(),
        leases: BTreeMap::new(),
        sysctls: Vec::new(),
        claims,
        pids,
        deadline,
    };
    let mut p = Progress::default();
    for step in &test.steps {
        let started = Instant::now();
        let remaining = deadline.saturating_duration_since(started);
        let record = |outcome: Outcome, raw, detail| StepResult {
            index: step.index,
            kind: step.action.kind(),
            label: step.check.clone(),
            sock: step.action.sock().map(str::to_string),
            outcome,
            raw,
            detail,
            took: started.elapsed(),
        };
        if let Some((outcome, detail)) = p.gate(step, started, deadline) {
            p.steps.push(record(outcome, None, detail));
            continue;
        }
        let done = match e.step(step) {
            Ok((done, port_setup)) => e.settle(&mut p, step, done, port_setup, remaining),
            Err(Stop::NotRun(why)) => Some(Done::not_run(why)),
            Err(Stop::Retry(why)) => {
                p.retry = Some(why);
                None
            }
            Err(Stop::Problem(problem)) => {
                p.problem = Some(problem);
                Some(Done::of(Outcome::NotRun))
            }
        };
        if let Some(d) = done {
            p.steps.push(record(d.outcome, d.raw, d.detail));
        }
    }
    // Dropping the engine closes this process's sockets and ends every
    // actor, but for helpers that clear: they are kept for this thread's
    // next test (`Actor::recycle`), unless the harness went wrong here.
    let changed = std::mem::take(&mut e.sysctls);
    let mut kept = std::mem::take(&mut e.actors);
    sys::closing(|| drop(e));
    for (key, old) in changed.iter().rev() {
        if let Err(msg) = sys::settings::restore_for_test(key, old) {
            p.problem.get_or_insert(Problem::Harness { msg });
        }
    }
    if let Some(Problem::Harness { .. } | Problem::Hung) = p.problem {
        sys::closing(|| kept.clear());
    }
    // Clearing may take CLEAR_WAIT, counted from the deadline at the
    // latest: well inside the grace before an attempt counts as hung.
    let by = Instant::now().min(deadline) + CLEAR_WAIT;
    Actor::recycle(kept.into_values(), by);
    AttemptResult {
        steps: p.steps,
        problem: p.problem,
        retry: p.retry,
    }
}

/// How far an attempt has got.
#[derive(Default)]
struct Progress {
    steps: Vec<StepResult>,
    problem: Option<Problem>,
    retry: Option<String>,
    /// Set once a step timed out because the deadline cut its wait short:
    /// every later step is `not_run`, however close to the deadline the
    /// waiting step happened to return.
    expired: bool,
}

impl Progress {
    /// The outcome of a step that is not performed (the test stopped, the
    /// step is for another OS, the deadline passed), or `None` to run it.
    fn gate(
        &mut self,
        step: &Step,
        now: Instant,
        deadline: Instant,
    ) -> Option<(Outcome, Option<String>)> {
        if self.problem.is_some() || self.retry.is_some() {
            return Some((Outcome::NotRun, Some("the test stopped earlier".into())));
        }
        if let Some(on) = &step.os
            && !on.contains(&sys::os_family())
        {
            let why = format!("not a step for {}", sys::os_family());
            return Some((Outcome::NotRun, Some(why)));
        }
        if self.expired {
            let why = "the test's deadline passed during an earlier step";
            return Some((Outcome::NotRun, Some(why.into())));
        }
        if now >= deadline {
            self.expired = true;
            if step.check.is_none() {
                self.problem = Some(Problem::Setup {
                    step: step.index,
                    msg: "the test's deadline passed".into(),
                    at: None,
                    what: None,
                });
            }
            let why = "the test's deadline passed before this step";
            return Some((Outcome::Timeout, Some(why.into())));
        }
        None
    }
}

impl Engine<'_> {
    /// Judges what a performed step did for the attempt (a setup that
    /// failed stops it, a port clash retries it, a failed socket setup marks
    /// the socket) and returns what to record, or `None` when the attempt
    /// is retried.
    fn settle(
        &mut self,
        p: &mut Progress,
        step: &Step,
        done: Done,
        port_setup: bool,
        remaining: Duration,
    ) -> Option<Done> {
        if done.outcome == Outcome::NotRun {
            return Some(Done { raw: None, ..done });
        }
        if done.outcome == Outcome::Timeout && step.action.own_wait().is_none_or(|w| w >= remaining)
        {
            p.expired = true;
        }
        // Claim every port the test's sockets now hold, in every process.
        if let Err(why) = self.claim_ports(&done.extra_ports) {
            p.retry = Some(why);
            return None;
        }
        // A step with `require` succeeds when it gives that outcome.
        let ok = match &step.require {
            Some(req) => &done.outcome == req,
            None => done.outcome.is_ok(),
        };
        let precondition = |req: &Outcome| Problem::Precondition {
            step: step.index,
            msg: format!(
                "`{}` must give {req} for this test to show anything, but gave {}",
                step.action.kind(),
                done.outcome
            ),
        };
        if !ok && step.check.is_none() {
            if port_setup
                && matches!(
                    done.outcome,
                    Outcome::Error(ErrName::EADDRINUSE | ErrName::EADDRNOTAVAIL | ErrName::EACCES)
                )
            {
                p.retry = Some(format!(
                    "setting up a port (step {}) failed with {}",
                    step.index + 1,
                    done.outcome
                ));
                return None;
            }
            p.problem = Some(match &step.require {
                Some(req) => precondition(req),
                None => Problem::Setup {
                    step: step.index,
                    msg: format!(
                        "`{}` is not checked but gave {}{}",
                        step.action.kind(),
                        done.outcome,
                        done.detail
                            .as_deref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    ),
                    at: None,
                    what: None,
                },
            });
        }
        // A failed step that sets a socket up leaves it unusable; a recv that
        // sees a reset, or a close that fails, is only an observation.
        if !ok && step.check.is_some() && step.action.establishes() {
            for s in step.action.socks() {
                if let Some(slot) = self.slots.get_mut(s) {
                    slot.failed = true;
                }
            }
        }
        if let Some(req) = &step.require
            && p.problem.is_none()
            && step.check.is_some()
            && &done.outcome != req
        {
            p.problem = Some(precondition(req));
        }
        Some(done)
    }

    fn slot(&self, name: &str) -> Result<&Slot, Stop> {
        let slot = self.slots.get(name).ok_or_else(|| {
            Stop::NotRun(format!(
                "socket `{name}` does not exist (an earlier step failed)"
            ))
        })?;
        if slot.failed {
            return Err(Stop::NotRun(format!(
                "an earlier checked step on `{name}` failed"
            )));
        }
        Ok(slot)
    }

    fn open_slot(&self, name: &str) -> Result<&Slot, Stop> {
        let slot = self.slot(name)?;
        if !slot.open {
            return Err(Stop::NotRun(format!("socket `{name}` is closed")));
        }
        Ok(slot)
    }

    /// A port reference as a number; `true` when it is the first use of a
    /// port the test did not hold yet (a failure then is port trouble).
    fn port(&mut self, p: &PortRef) -> Result<(u16, bool), Stop> {
        match p {
            PortRef::Zero => Ok((0, true)),
            PortRef::Number(n) => Ok((*n, false)),
            PortRef::Lease(l) => {
                if let Some(p) = self.leases.get(l) {
                    return Ok((*p, false));
                }
                let p = lease_named(self.claims, l).map_err(|e| match e.kind() {
                    // No privileged ports here, or no privilege to prove one free.
                    std::io::ErrorKind::Unsupported => {
                        Stop::Problem(Problem::Unavailable { msg: e.to_string() })
                    }
                    _ => Stop::Retry(format!("leasing a port: {e}")),
                })?;
                self.leases.insert(l.clone(), p);
                Ok((p, true))
            }
            PortRef::Of(s) => self
                .slot(s)?
                .local
                .map(|a| (a.port(), false))
                .ok_or_else(|| Stop::NotRun(format!("socket `{s}` has no port yet"))),
        }
    }

    /// The action with its ports as numbers.
    fn resolve(&mut self, action: &Action) -> Result<(Action, bool), Stop> {
        let mut a = action.clone();
        let mut first_use = false;
        let mut fix = |p: &mut PortRef, this: &mut Self| -> Result<(), Stop> {
            let (n, first) = this.port(p)?;
            first_use |= first;
            *p = PortRef::Number(n);
            Ok(())
        };
        match &mut a {
            Action::Bind(steps::Bind { port, .. })
            | Action::Server(steps::Server { port, .. })
            | Action::Connect(steps::Connect { port, .. })
            | Action::Fanout(steps::Fanout { port, .. })
            | Action::Spread(steps::Spread { port, .. }) => fix(port, self)?,
            Action::Send(steps::Send {
                to: Some((_, port)),
                ..
            }) => fix(port, self)?,
            _ => {}
        }
        Ok((
            a,
            first_use && matches!(action, Action::Bind(_) | Action::Server(_)),
        ))
    }

    /// A port connect() picked may still carry another test's TIME_WAIT (the
    /// kernel shares a connect-assigned port among distinct 4-tuples), and
    /// the test would then see that entry in a later bind on the port: such
    /// an attempt is re-run. Leases cannot meet this: their probe binds
    /// conflict with TIME_WAIT. Checked only where reading the kernel's
    /// table is cheap.
    fn check_implicit_port(&self, sock: &str) -> Result<(), Stop> {
        let Some(local) = self.slots.get(sock).and_then(|s| s.local) else {
            return Ok(());
        };
        if !sys::CHEAP_TCP_TABLE || local.port() == 0 {
            return Ok(());
        }
        let ours: Vec<(SocketAddr, Option<SocketAddr>)> = self
            .slots
            .values()
            .filter_map(|s| {
                s.local
                    .map(|l| (sys::canonical(l), s.peer.map(sys::canonical)))
            })
            .collect();
        let table = sys::tcp_table().map_err(|e| {
            Stop::Problem(Problem::Harness {
                msg: format!("reading the kernel's TCP table: {e}"),
            })
        })?;
        let stranger = table.iter().find(|e| {
            e.local.port() == local.port()
                && !ours.iter().any(|(l, p)| {
                    *l == sys::canonical(e.local) && p.is_none_or(|p| p == sys::canonical(e.remote))
                })
        });
        match stranger {
            Some(e) => Err(Stop::Retry(format!(
                "connect gave `{sock}` port {}, which an earlier test's {} {} -> {} still holds",
                local.port(),
                Outcome::State(e.state),
                e.local,
                e.remote
            ))),
            None => Ok(()),
        }
    }

    fn mirror(&mut self, holder: Option<&str>, addrs: Vec<(String, Addrs)>) {
        for (name, a) in addrs {
            if let Some(slot) = self.slots.get_mut(&name)
                && slot.actor.as_deref() == holder
            {
                slot.local = a.local.or(slot.local);
                slot.peer = a.peer.or(slot.peer);
            }
        }
    }

    /// Claims the local port of every socket; a port another attempt holds
    /// means a collision, and the attempt is re-run.
    fn claim_ports(&mut self, extra: &[u16]) -> Result<(), String> {
        for (name, slot) in &self.slots {
            if let Some(a) = slot.local
                && self.claims.claim(a.port()).is_err()
            {
                return Err(format!(
                    "socket `{name}` got port {}, which another test holds",
                    a.port()
                ));
            }
        }
        for p in extra {
            if self.claims.claim(*p).is_err() {
                return Err(format!(
                    "a helper socket got port {p}, which another test holds"
                ));
            }
        }
        Ok(())
    }

    fn actor(&mut self, name: &str) -> Result<&mut Actor, Stop> {
        self.actors
            .get_mut(name)
            .ok_or_else(|| Stop::NotRun(format!("actor `{name}` is not running")))
    }

    /// The helper that holds the sockets of `holder`: a named actor, or for
    /// the main process the run's helper (`--agent`), started at first use;
    /// `None` when this process holds them itself.
    fn holder(&mut self, holder: &Option<String>) -> Result<Option<&mut Actor>, Stop> {
        match holder {
            Some(a) => self.actor(a).map(Some),
            None => {
                let Some(cmd) = run_agent() else {
                    return Ok(None);
                };
                if !self.actors.contains_key(MAIN) {
                    // A helper that is slow to start on a loaded machine
                    // (an interpreter) costs a re-run, never an outcome.
                    let (a, _) = Actor::spawn_cmd("main", cmd, None, self.deadline, self.pids)
                        .map_err(|e| Stop::Retry(format!("starting the run's agent: {e}")))?;
                    self.actors.insert(MAIN.to_string(), a);
                }
                Ok(self.actors.get_mut(MAIN))
            }
        }
    }

    /// Performs one step; the flag says whether it set up a port (a clash
    /// there retries the attempt).
    fn step(&mut self, step: &Step) -> Result<(Done, bool), Stop> {
        let harness = |e: String| Stop::Problem(Problem::Harness { msg: e });
        let done = match &step.action {
            Action::Spawn(s) => self.spawn(s)?,
            Action::Kill(steps::Kill { actor }) => self.end_actor(actor, true)?,
            Action::Exit(steps::Exit { actor }) => self.end_actor(actor, false)?,
            // This process's copy of a passed socket closes once the other
            // end has it: behind the child gate, as every close here. The
            // run's helper is started first, if it is not yet: no child can
            // start behind the gate (it would wait for its own close).
            Action::Pass(steps::Pass { sock, to }) => {
                self.holder(&None)?;
                sys::closing(|| self.pass(sock, to))?
            }
            Action::TcpState(steps::TcpState { sock, want, wait }) => {
                let slot = self
                    .slots
                    .get(sock)
                    .ok_or_else(|| Stop::NotRun(format!("socket `{sock}` does not exist")))?;
                let local = slot
                    .local
                    .ok_or_else(|| Stop::NotRun(format!("socket `{sock}` was never bound")))?;
                let peer = slot.peer;
                let wait = (*wait).min(self.deadline.saturating_duration_since(Instant::now()));
                let (st, polls) = observe_state(local, peer, *want, wait)
                    .map_err(|e| harness(format!("reading the kernel's TCP table: {e}")))?;
                Done::of(Outcome::State(st)).detail(format!(
                    "{local}{} after {polls} look(s) at the kernel's table",
                    peer.map(|p| format!(" -> {p}")).unwrap_or_default()
                ))
            }
            Action::SamePort(steps::SamePort { a, b }) => {
                let pa = self.slots.get(a).and_then(|s| s.local).map(|x| x.port());
                let pb = self.slots.get(b).and_then(|s| s.local).map(|x| x.port());
                match (pa, pb) {
                    (Some(x), Some(y)) => Done::of(Outcome::Bool(x == y)),
                    _ => return Err(Stop::NotRun("both sockets need a port".into())),
                }
            }
            Action::Sleep(_) => self.local.exec(&step.action, self.deadline),
            Action::Sysctl(steps::Sysctl { key, value }) => {
                if let Some(msg) = sys::settings::no_test_sysctl(self.claims.scope, key) {
                    return Err(Stop::Problem(Problem::Unavailable { msg }));
                }
                let old = sys::settings::set_for_test(key, value).map_err(harness)?;
                if !self.sysctls.iter().any(|(k, _)| k == key) {
                    self.sysctls.push((key.clone(), old.clone()));
                }
                Done::ok().detail(format!("was {old}"))
            }
            _ => return self.socket_step(step),
        };
        Ok((done, false))
    }

    /// `spawn`: starts an actor, in sockspec's own process image or in
    /// another runtime's helper, as another user where asked.
    fn spawn(&mut self, s: &steps::Spawn) -> Result<Done, Stop> {
        let steps::Spawn {
            actor,
            user,
            runtime,
        } = s;
        let unavailable = |msg: String| Stop::Problem(Problem::Unavailable { msg });
        if user.is_some() && !sys::OTHER_USER {
            return Err(unavailable(
                "sockspec runs an actor as another user only on Unix (setuid); on Windows that needs another account's credentials".into(),
            ));
        }
        if user.is_some() && (runtime.is_some() || run_agent().is_some()) {
            return Err(unavailable(
                "a helper in another runtime than sockspec's own does not become another user"
                    .into(),
            ));
        }
        let uid = match user {
            Some(u) => Some(
                u.uid()
                    .ok_or_else(|| unavailable(format!("no user {u} on this machine")))?,
            ),
            None => None,
        };
        let (a, identity) = match runtime {
            // sockspec's own helper failing to start says nothing of the
            // kernel (Wine's CreateProcess fails now and then under load,
            // ERROR_INTERNAL_ERROR): a re-run, as a port clash is.
            None => Actor::spawn(actor, uid, self.deadline, self.pids)
                .map_err(|msg| Stop::Retry(format!("starting actor `{actor}`: {msg}")))?,
            // A runtime this machine lacks (no python3, no node) cannot run
            // the test: skipped, saying so.
            Some(r) => AgentCmd::parse(r)
                .and_then(|cmd| Actor::spawn_cmd(actor, &cmd, uid, self.deadline, self.pids))
                .map_err(|e| unavailable(format!("cannot start a {r} helper: {e}")))?,
        };
        let mut detail = match identity {
            Some(i) => format!("{} running as {i}", a.implementation),
            None => a.implementation.clone(),
        };
        if a.served > 0 {
            detail += &format!(
                ", pid {}, kept from {} earlier test(s) of this worker",
                a.pid, a.served
            );
        } else {
            detail += &format!(", pid {}", a.pid);
        }
        self.actors.insert(actor.clone(), a);
        Ok(Done::ok().detail(detail))
    }

    /// `kill` or `exit`: ends an actor; its sockets are closed with it.
    fn end_actor(&mut self, actor: &str, kill: bool) -> Result<Done, Stop> {
        let deadline = self.deadline;
        let a = self.actor(actor)?;
        if kill { a.kill() } else { a.exit(deadline) }
            .map_err(|msg| Stop::Problem(Problem::Harness { msg }))?;
        self.actors.remove(actor);
        for slot in self.slots.values_mut() {
            if slot.actor.as_deref() == Some(actor) {
                slot.open = false;
            }
        }
        Ok(Done::ok())
    }

    /// `pass`: moves a socket to another process (`main` is this one).
    fn pass(&mut self, sock: &str, to: &str) -> Result<Done, Stop> {
        let deadline = self.deadline;
        let (from, proto, family) = {
            let s = self.open_slot(sock)?;
            (s.actor.clone(), s.proto, s.family)
        };
        let to = (to != "main").then(|| to.to_string());
        if from == to {
            return Ok(Done::ok().detail("already there"));
        }
        let ls = match self.holder(&from)? {
            None => self.local.take(sock).ok_or_else(|| {
                Stop::Problem(Problem::Harness {
                    msg: format!("`{sock}` is not here"),
                })
            })?,
            Some(a) => a
                .export(sock, deadline, proto, family)
                .map_err(agent_stop)?,
        };
        match self.holder(&to)? {
            None => self.local.insert(sock, ls),
            Some(a) => a.adopt(sock, ls, deadline).map_err(agent_stop)?,
        }
        if let Some(slot) = self.slots.get_mut(sock) {
            slot.actor = to;
        }
        Ok(Done::ok())
    }

    /// A step on sockets, performed where they live (a new socket where the
    /// case puts it), with its ports resolved here; the mirror follows.
    fn socket_step(&mut self, step: &Step) -> Result<(Done, bool), Stop> {
        let action = &step.action;
        let deadline = self.deadline;
        let holder = match action {
            Action::Socket(_) | Action::Server(_) => step.actor.clone(),
            _ => {
                let mut holder = None;
                for (i, s) in action.socks().into_iter().enumerate() {
                    let slot = self.open_slot(s)?;
                    if i == 0 {
                        holder = slot.actor.clone();
                    }
                }
                holder
            }
        };
        let (resolved, port_setup) = self.resolve(action)?;
        // A TCP connect from an unbound socket picks its port itself.
        let implicit = match action {
            Action::Connect(steps::Connect { sock, .. }) => self
                .slots
                .get(sock)
                .filter(|s| s.proto == Proto::Tcp && s.local.is_none())
                .map(|_| sock.clone()),
            _ => None,
        };
        let (done, addrs) = match self.holder(&holder)? {
            None => {
                let d = self.local.exec(&resolved, deadline);
                // What the helper protocol calls Unsupported.
                if let Action::Server(s) = action
                    && d.outcome == Outcome::Unsupported
                {
                    return Err(Stop::Problem(Problem::Unavailable {
                        msg: format!("rust std cannot express server api `{}`", s.api),
                    }));
                }
                (d, self.local.addrs_after(&resolved))
            }
            Some(a) => match a.exec(&resolved, deadline) {
                Ok(x) => x,
                Err(AgentError::Failed(e)) => (Done::of(Outcome::Timeout).detail(e), Vec::new()),
                Err(e @ AgentError::Unsupported(_)) => return Err(agent_stop(e)),
            },
        };
        // `acked` is a precondition: where the OS keeps no count of
        // unacknowledged bytes, the test cannot be made to show anything.
        if let Action::Acked(_) = action
            && done.outcome == Outcome::Unsupported
        {
            return Err(Stop::Problem(Problem::Unavailable {
                msg: format!(
                    "`acked` cannot tell when the peer has acknowledged the data here: {}",
                    done.detail
                        .as_deref()
                        .unwrap_or("no count of unacknowledged bytes")
                ),
            }));
        }
        if done.outcome.is_ok() {
            self.track_new(action, &holder);
        }
        if let Action::Close(steps::Close { sock, .. }) = action
            && let Some(s) = self.slots.get_mut(sock)
        {
            s.open = false;
        }
        self.mirror(holder.as_deref(), addrs);
        if let Some(sock) = implicit {
            self.check_implicit_port(&sock)?;
        }
        Ok((done, port_setup))
    }

    /// Mirrors the socket a successful `socket`, `server` or `accept` made.
    fn track_new(&mut self, action: &Action, holder: &Option<String>) {
        let (name, proto, family) = match action {
            Action::Socket(steps::Socket {
                name,
                proto,
                family,
                ..
            }) => (name, *proto, *family),
            Action::Server(steps::Server {
                name, proto, addr, ..
            }) => (name, *proto, Family::of(addr)),
            Action::Accept(steps::Accept { sock, name }) => {
                let (proto, family) = self
                    .slots
                    .get(sock)
                    .map(|s| (s.proto, s.family))
                    .unwrap_or((Proto::Tcp, Family::V4));
                (name, proto, family)
            }
            _ => return,
        };
        let slot = self.new_slot(holder.clone(), proto, family);
        self.slots.insert(name.clone(), slot);
    }

    fn new_slot(&self, actor: Option<String>, proto: Proto, family: Family) -> Slot {
        Slot {
            actor,
            proto,
            family,
            local: None,
            peer: None,
            failed: false,
            open: true,
        }
    }
}

/// Polls the kernel's table until the endpoint is in `want`, or in a state
/// that is not just passing through, or `wait` runs out.
fn observe_state(
    local: SocketAddr,
    peer: Option<SocketAddr>,
    want: Option<TcpState>,
    wait: Duration,
) -> io::Result<(TcpState, u32)> {
    let end = Instant::now() + wait;
    let local = sys::canonical(local);
    let mut polls = 0;
    let mut pause = Duration::from_micros(200);
    loop {
        polls += 1;
        let table = sys::tcp_table()?;
        let st = table
            .iter()
            .find(|e| {
                e.local == local
                    && match peer {
                        Some(p) => e.remote == p,
                        None => e.remote.port() == 0,
                    }
            })
            .map(|e| e.state)
            .unwrap_or(TcpState::None);
        let settled = match want {
            Some(w) => st == w,
            None => !st.is_transient(),
        };
        if settled || Instant::now() >= end {
            return Ok((st, polls));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
