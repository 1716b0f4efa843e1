//! Runs one attempt of a test: each step on real sockets, in order.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::ports::{Claims, lease};
use super::{AttemptResult, Problem, StepResult};
use crate::model::{Action, Band, Family, How, Observe, Opt, OptValue, PortRef, Proto, Step, Test};
use crate::outcome::{Each, ErrName, Outcome, TcpState};
use crate::sys;

/// A named socket of the test.
struct Slot {
    sock: Option<Socket>,
    proto: Proto,
    family: Family,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    /// A checked step on it failed: later steps on it are not run.
    failed: bool,
    nonblocking: bool,
}

/// What a step did, before judging.
struct Done {
    outcome: Outcome,
    raw: Option<i32>,
    detail: Option<String>,
    /// The step only set up a port: a failure is retried, not reported.
    port_setup: bool,
}

impl Done {
    fn ok() -> Self {
        Done {
            outcome: Outcome::Ok,
            raw: None,
            detail: None,
            port_setup: false,
        }
    }

    fn of(o: Outcome) -> Self {
        Done {
            outcome: o,
            ..Done::ok()
        }
    }

    fn err(e: &io::Error) -> Self {
        let (outcome, raw) = sys::describe(e);
        Done {
            outcome,
            raw,
            detail: Some(e.to_string()),
            port_setup: false,
        }
    }

    fn from(r: io::Result<()>) -> Self {
        match r {
            Ok(()) => Done::ok(),
            Err(e) => Done::err(&e),
        }
    }

    fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// Why a step could not produce a kernel outcome.
enum Stop {
    NotRun(String),
    Retry(String),
    Problem(Problem),
}

pub struct Engine<'a> {
    slots: BTreeMap<String, Slot>,
    leases: BTreeMap<String, u16>,
    claims: &'a mut Claims,
    deadline: Instant,
}

/// Runs every step of `test` once.
pub fn attempt(test: &Test, claims: &mut Claims, deadline: Instant) -> AttemptResult {
    let mut e = Engine {
        slots: BTreeMap::new(),
        leases: BTreeMap::new(),
        claims,
        deadline,
    };
    let mut steps = Vec::new();
    let mut problem = None;
    let mut retry = None;
    for step in &test.steps {
        let started = Instant::now();
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
        if problem.is_some() || retry.is_some() {
            steps.push(record(
                Outcome::NotRun,
                None,
                Some("the test stopped earlier".into()),
            ));
            continue;
        }
        if let Some(on) = &step.os
            && !on.contains(&sys::os_family())
        {
            steps.push(record(
                Outcome::NotRun,
                None,
                Some(format!("not a step for {}", sys::os_family())),
            ));
            continue;
        }
        if Instant::now() >= e.deadline {
            steps.push(record(
                Outcome::Timeout,
                None,
                Some("the test's deadline passed before this step".into()),
            ));
            if step.check.is_none() {
                problem = Some(Problem::Setup {
                    step: step.index,
                    msg: "the test's deadline passed".into(),
                });
            }
            continue;
        }
        let done = match e.step(step) {
            Ok(d) => d,
            Err(Stop::NotRun(why)) => {
                steps.push(record(Outcome::NotRun, None, Some(why)));
                continue;
            }
            Err(Stop::Retry(why)) => {
                retry = Some(why);
                continue;
            }
            Err(Stop::Problem(p)) => {
                problem = Some(p);
                steps.push(record(Outcome::NotRun, None, None));
                continue;
            }
        };
        // Claim every port the test's sockets now hold.
        if let Err(why) = e.claim_ports() {
            retry = Some(why);
            continue;
        }
        // A step with `require` succeeds when it gives that outcome.
        let ok = match &step.require {
            Some(req) => &done.outcome == req,
            None => done.outcome.is_ok(),
        };
        if !ok && step.check.is_none() {
            if done.port_setup
                && matches!(
                    done.outcome,
                    Outcome::Error(ErrName::EADDRINUSE | ErrName::EADDRNOTAVAIL | ErrName::EACCES)
                )
            {
                retry = Some(format!(
                    "setting up a port (step {}) failed with {}",
                    step.index + 1,
                    done.outcome
                ));
                continue;
            }
            problem = Some(match &step.require {
                Some(req) => Problem::Precondition {
                    step: step.index,
                    msg: format!(
                        "`{}` must give {req} for this test to show anything, but gave {}",
                        step.action.kind(),
                        done.outcome
                    ),
                },
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
                },
            });
        }
        // A failed step that sets a socket up leaves it unusable; a recv that
        // sees a reset, or a close that fails, is only an observation.
        let establishes = matches!(
            step.action,
            Action::Socket { .. }
                | Action::SetOpt { .. }
                | Action::Bind { .. }
                | Action::Listen { .. }
                | Action::Connect { .. }
        );
        if !ok && step.check.is_some() && establishes {
            for s in step.action.socks() {
                if let Some(slot) = e.slots.get_mut(s) {
                    slot.failed = true;
                }
            }
        }
        if let Some(req) = &step.require
            && problem.is_none()
            && step.check.is_some()
            && &done.outcome != req
        {
            problem = Some(Problem::Precondition {
                step: step.index,
                msg: format!(
                    "`{}` must give {req} for this test to show anything, but gave {}",
                    step.action.kind(),
                    done.outcome
                ),
            });
        }
        steps.push(record(done.outcome, done.raw, done.detail));
    }
    // Close what is left; dropping a Socket closes it.
    e.slots.clear();
    AttemptResult {
        steps,
        problem,
        retry,
    }
}

fn domain(f: Family) -> Domain {
    match f {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    }
}

fn addr_of(s: &Socket) -> Option<SocketAddr> {
    s.local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .filter(|a| a.port() != 0)
}

impl Engine<'_> {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
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

    fn sock(&self, name: &str) -> Result<&Socket, Stop> {
        self.slot(name)?
            .sock
            .as_ref()
            .ok_or_else(|| Stop::NotRun(format!("socket `{name}` is closed")))
    }

    fn port(&mut self, p: &PortRef) -> Result<(u16, bool), Stop> {
        match p {
            PortRef::Zero => Ok((0, true)),
            PortRef::Lease(l) => {
                if let Some(p) = self.leases.get(l) {
                    return Ok((*p, false));
                }
                let p =
                    lease(self.claims).map_err(|e| Stop::Retry(format!("leasing a port: {e}")))?;
                self.leases.insert(l.clone(), p);
                Ok((p, true))
            }
            PortRef::Of(s) => {
                let slot = self.slot(s)?;
                slot.local
                    .map(|a| (a.port(), false))
                    .ok_or_else(|| Stop::NotRun(format!("socket `{s}` has no port yet")))
            }
        }
    }

    /// Claims the local port of every socket; a port another attempt holds
    /// means a collision, and the attempt is re-run.
    fn claim_ports(&mut self) -> Result<(), String> {
        for (name, slot) in self.slots.iter_mut() {
            if let Some(s) = &slot.sock
                && let Some(a) = addr_of(s)
            {
                slot.local = Some(a);
            }
            if let Some(a) = slot.local
                && self.claims.claim(a.port()).is_err()
            {
                return Err(format!(
                    "socket `{name}` got port {} which another test holds",
                    a.port()
                ));
            }
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<Done, Stop> {
        match &step.action {
            Action::Socket {
                name,
                proto,
                family,
                opts,
            } => {
                let (ty, p) = match proto {
                    Proto::Tcp => (Type::STREAM, Protocol::TCP),
                    Proto::Udp => (Type::DGRAM, Protocol::UDP),
                };
                let sock = match Socket::new(domain(*family), ty, Some(p)) {
                    Ok(s) => s,
                    Err(e) => return Ok(Done::err(&e)),
                };
                let mut slot = Slot {
                    sock: None,
                    proto: *proto,
                    family: *family,
                    local: None,
                    peer: None,
                    failed: false,
                    nonblocking: false,
                };
                for o in opts {
                    if let Err(e) = set_opt(&sock, &mut slot, *o, &OptValue::Bool(true)) {
                        return Ok(Done::err(&e).detail(format!("setting {}: {e}", o.c_name())));
                    }
                }
                slot.sock = Some(sock);
                self.slots.insert(name.clone(), slot);
                Ok(Done::ok())
            }
            Action::SetOpt { sock, opt, value } => {
                self.sock(sock)?;
                let slot = self.slots.get_mut(sock).expect("checked above");
                let s = slot.sock.take().expect("checked above");
                let r = set_opt(&s, slot, *opt, value);
                slot.sock = Some(s);
                Ok(Done::from(r))
            }
            Action::GetOpt { sock, opt } => {
                let slot = self.slot(sock)?;
                let s = self.sock(sock)?;
                Ok(match get_opt(s, slot, *opt) {
                    Ok(o) => Done::of(o),
                    Err(e) => Done::err(&e),
                })
            }
            Action::Bind { sock, addr, port } => {
                let (p, first_use) = self.port(port)?;
                let s = self.sock(sock)?;
                let mut d = Done::from(s.bind(&SocketAddr::new(*addr, p).into()));
                d.port_setup = first_use;
                Ok(d)
            }
            Action::Listen { sock, backlog } => Ok(Done::from(self.sock(sock)?.listen(*backlog))),
            Action::Connect { sock, addr, port } => {
                let (p, _) = self.port(port)?;
                let target = SocketAddr::new(*addr, p);
                let nonblocking = self.slot(sock)?.nonblocking;
                let timeout = self.remaining();
                let s = self.sock(sock)?;
                let d = connect(s, target, nonblocking, timeout);
                if d.outcome.is_ok()
                    && let Some(slot) = self.slots.get_mut(sock)
                {
                    slot.peer = Some(sys::canonical(target));
                }
                Ok(d)
            }
            Action::Accept { sock, name } => {
                let slot = self.slot(sock)?;
                let (proto, family, nonblocking) = (slot.proto, slot.family, slot.nonblocking);
                let s = self.sock(sock)?;
                if !nonblocking {
                    match sys::wait_readable(s, self.remaining()) {
                        Ok(true) => {}
                        Ok(false) => {
                            return Ok(Done::of(Outcome::Timeout).detail("no connection to accept"));
                        }
                        Err(e) => return Ok(Done::err(&e)),
                    }
                }
                match s.accept() {
                    Ok((new, peer)) => {
                        let local = addr_of(&new);
                        self.slots.insert(
                            name.clone(),
                            Slot {
                                sock: Some(new),
                                proto,
                                family,
                                local,
                                peer: peer.as_socket().map(sys::canonical),
                                failed: false,
                                nonblocking: false,
                            },
                        );
                        Ok(Done::ok())
                    }
                    Err(e) => Ok(Done::err(&e)),
                }
            }
            Action::Send { sock, bytes, to } => {
                let to = match to {
                    Some((a, p)) => Some(SocketAddr::new(*a, self.port(p)?.0)),
                    None => None,
                };
                let s = self.sock(sock)?;
                let data = vec![b's'; *bytes];
                let r = match to {
                    Some(t) => s.send_to(&data, &t.into()),
                    None => s.send(&data),
                };
                Ok(match r {
                    Ok(n) if n == data.len() => Done::ok(),
                    Ok(n) => Done::ok().detail(format!("sent {n} of {} bytes", data.len())),
                    Err(e) => Done::err(&e),
                })
            }
            Action::Recv { sock, wait } => {
                let wait = (*wait).min(self.remaining());
                let s = self.sock(sock)?;
                match sys::wait_readable(s, wait) {
                    Ok(true) => {}
                    Ok(false) => return Ok(Done::of(Outcome::Timeout)),
                    Err(e) => return Ok(Done::err(&e)),
                }
                let mut buf = [0u8; 65536];
                let mut reader: &Socket = s;
                Ok(match reader.read(&mut buf) {
                    Ok(0) if self.slot(sock)?.proto == Proto::Tcp => Done::of(Outcome::Eof),
                    Ok(n) => Done::of(Outcome::Data).detail(format!("{n} bytes")),
                    Err(e) => Done::err(&e),
                })
            }
            Action::Shutdown { sock, how } => {
                let how = match how {
                    How::Read => std::net::Shutdown::Read,
                    How::Write => std::net::Shutdown::Write,
                    How::Both => std::net::Shutdown::Both,
                };
                Ok(Done::from(self.sock(sock)?.shutdown(how)))
            }
            Action::Close { sock, bands } => {
                self.sock(sock)?;
                let slot = self.slots.get_mut(sock).expect("checked above");
                let s = slot.sock.take().expect("checked above");
                if let Some(a) = addr_of(&s) {
                    slot.local = Some(a);
                }
                let started = Instant::now();
                let r = sys::close(s);
                let took = started.elapsed();
                let mut d = Done::from(r);
                if !bands.is_empty() {
                    d = banded(d, bands, took);
                }
                Ok(d)
            }
            Action::TcpState { sock, want, wait } => {
                let slot = self
                    .slots
                    .get(sock)
                    .ok_or_else(|| Stop::NotRun(format!("socket `{sock}` does not exist")))?;
                let local = slot
                    .local
                    .ok_or_else(|| Stop::NotRun(format!("socket `{sock}` was never bound")))?;
                let peer = slot.peer;
                let wait = (*wait).min(self.remaining());
                match observe_state(local, peer, *want, wait) {
                    Ok((st, polls)) => Ok(Done::of(Outcome::State(st)).detail(format!(
                        "{local}{} after {polls} look(s) at the kernel's table",
                        peer.map(|p| format!(" -> {p}")).unwrap_or_default()
                    ))),
                    Err(e) => Err(Stop::Problem(Problem::Harness(format!(
                        "reading the kernel's TCP table: {e}"
                    )))),
                }
            }
            Action::Fanout {
                sender,
                addr,
                port,
                receivers,
                count,
                observe,
                wait,
            } => {
                let (p, _) = self.port(port)?;
                let target = SocketAddr::new(*addr, p);
                let s = self.sock(sender)?;
                let mut rx = Vec::new();
                for r in receivers {
                    rx.push((r.as_str(), self.sock(r)?));
                }
                Ok(fanout(
                    s,
                    target,
                    &rx,
                    *count,
                    *observe,
                    (*wait).min(self.remaining()),
                ))
            }
            Action::Spread {
                addr,
                port,
                listeners,
                count,
                observe,
            } => {
                let (p, _) = self.port(port)?;
                let target = SocketAddr::new(*addr, p);
                let mut ls = Vec::new();
                for l in listeners {
                    ls.push((l.as_str(), self.sock(l)?));
                }
                let (done, client_ports) = spread(&ls, target, *count, *observe, self.remaining());
                for cp in client_ports {
                    if self.claims.claim(cp).is_err() {
                        return Err(Stop::Retry(format!(
                            "a client of `spread` got port {cp}, which another test holds"
                        )));
                    }
                }
                Ok(done)
            }
            Action::Fill { sock } => {
                let nonblocking = self.slot(sock)?.nonblocking;
                Ok(fill(self.sock(sock)?, nonblocking))
            }
            Action::Drain { sock, wait } => {
                let wait = (*wait).min(self.remaining());
                Ok(drain(self.sock(sock)?, wait))
            }
            Action::SamePort { a, b } => {
                let pa = self.slots.get(a).and_then(|s| s.local).map(|x| x.port());
                let pb = self.slots.get(b).and_then(|s| s.local).map(|x| x.port());
                match (pa, pb) {
                    (Some(x), Some(y)) => Ok(Done::of(Outcome::Bool(x == y))),
                    _ => Err(Stop::NotRun("both sockets need a port".into())),
                }
            }
            Action::Sleep { ms } => {
                std::thread::sleep(Duration::from_millis(*ms).min(self.remaining()));
                Ok(Done::ok())
            }
            Action::Spawn { .. }
            | Action::Pass { .. }
            | Action::Kill { .. }
            | Action::Exit { .. } => Err(Stop::Problem(Problem::Harness(
                "actor steps run through the actor engine".into(),
            ))),
        }
    }
}

fn set_opt(s: &Socket, slot: &mut Slot, opt: Opt, value: &OptValue) -> io::Result<()> {
    let v6 = slot.family == Family::V6;
    match (opt, value) {
        (Opt::ReuseAddr, OptValue::Bool(b)) => s.set_reuse_address(*b),
        (
            Opt::ReusePort | Opt::ReusePortLb | Opt::ExclusiveAddrUse | Opt::ExclBind,
            OptValue::Bool(b),
        ) => sys::set_special(s, opt, *b),
        (Opt::Linger, OptValue::Linger(l)) => {
            s.set_linger(l.map(|secs| Duration::from_secs(secs.into())))
        }
        (Opt::V6Only, OptValue::Bool(b)) => s.set_only_v6(*b),
        (Opt::NonBlocking, OptValue::Bool(b)) => {
            s.set_nonblocking(*b)?;
            slot.nonblocking = *b;
            Ok(())
        }
        (Opt::MulticastLoop, OptValue::Bool(b)) if v6 => s.set_multicast_loop_v6(*b),
        (Opt::MulticastLoop, OptValue::Bool(b)) => s.set_multicast_loop_v4(*b),
        (Opt::Join | Opt::Leave, OptValue::Group { group, iface }) => {
            let join = opt == Opt::Join;
            match group {
                IpAddr::V4(g) => {
                    let i = iface.parse().map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("{iface} is not an IPv4 address"),
                        )
                    })?;
                    if join {
                        s.join_multicast_v4(g, &i)
                    } else {
                        s.leave_multicast_v4(g, &i)
                    }
                }
                IpAddr::V6(g) => {
                    let i = sys::if_index(iface)?;
                    if join {
                        s.join_multicast_v6(g, i)
                    } else {
                        s.leave_multicast_v6(g, i)
                    }
                }
            }
        }
        (Opt::MulticastIf, OptValue::Iface(i)) => match i.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => s.set_multicast_if_v4(&a),
            _ => s.set_multicast_if_v6(sys::if_index(i)?),
        },
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} cannot take {value}", opt.c_name()),
        )),
    }
}

fn get_opt(s: &Socket, slot: &Slot, opt: Opt) -> io::Result<Outcome> {
    Ok(match opt {
        Opt::ReuseAddr => Outcome::Bool(s.reuse_address()?),
        Opt::ReusePort | Opt::ReusePortLb | Opt::ExclusiveAddrUse | Opt::ExclBind => {
            Outcome::Bool(sys::get_special(s, opt)?)
        }
        Opt::V6Only => Outcome::Bool(s.only_v6()?),
        Opt::Linger => match s.linger()? {
            None => Outcome::Bool(false),
            Some(d) => Outcome::Int(d.as_secs() as i64),
        },
        Opt::NonBlocking => Outcome::Bool(slot.nonblocking),
        Opt::MulticastLoop if slot.family == Family::V6 => Outcome::Bool(s.multicast_loop_v6()?),
        Opt::MulticastLoop => Outcome::Bool(s.multicast_loop_v4()?),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} cannot be read back", other.c_name()),
            ));
        }
    })
}

/// A blocking connect that cannot outlive the deadline: the kernel's verdict on
/// loopback is the same as a plain blocking connect's (the 4-tuple checks
/// happen before the SYN; a refusal comes back as SO_ERROR).
fn connect(s: &Socket, target: SocketAddr, nonblocking: bool, timeout: Duration) -> Done {
    let addr: SockAddr = target.into();
    if nonblocking {
        return Done::from(s.connect(&addr));
    }
    if let Err(e) = s.set_nonblocking(true) {
        return Done::err(&e);
    }
    let r = match s.connect(&addr) {
        Ok(()) => Done::ok(),
        Err(e) if in_progress(&e) => match sys::wait_writable(s, timeout) {
            Ok(true) => match s.take_error() {
                Ok(None) => Done::ok(),
                Ok(Some(e)) | Err(e) => Done::err(&e),
            },
            Ok(false) => Done::of(Outcome::Timeout).detail("no answer to the connection request"),
            Err(e) => Done::err(&e),
        },
        Err(e) => Done::err(&e),
    };
    if let Err(e) = s.set_nonblocking(false) {
        return Done::err(&e);
    }
    r
}

fn in_progress(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || matches!(
            e.raw_os_error().map(sys::error_name),
            Some(ErrName::EINPROGRESS | ErrName::EWOULDBLOCK | ErrName::EALREADY)
        )
}

fn banded(d: Done, bands: &[Band], took: Duration) -> Done {
    let band = bands
        .iter()
        .find(|b| took >= b.min && took <= b.max)
        .map(|b| b.name.clone())
        .unwrap_or_else(|| "out_of_band".into());
    let ms = took.as_secs_f64() * 1000.0;
    Done {
        outcome: Outcome::Band(Box::new(d.outcome), band),
        detail: Some(match d.detail {
            Some(x) => format!("{x}; took {ms:.1} ms"),
            None => format!("took {ms:.1} ms"),
        }),
        ..d
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

fn fanout(
    sender: &Socket,
    target: SocketAddr,
    receivers: &[(&str, &Socket)],
    count: u32,
    observe: Observe,
    quiet: Duration,
) -> Done {
    let tag = format!("sockspec-fanout-{}-", std::process::id());
    for seq in 0..count {
        let msg = format!("{tag}{seq}");
        if let Err(e) = sender.send_to(msg.as_bytes(), &target.into()) {
            return Done::err(&e).detail(format!("sending datagram {seq}"));
        }
    }
    let n = receivers.len();
    let mut got = vec![vec![false; count as usize]; n];
    let mut total = 0usize;
    let socks: Vec<&Socket> = receivers.iter().map(|(_, s)| *s).collect();
    let mut until = Instant::now() + quiet;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || total == n * count as usize {
            break;
        }
        let ready = match sys::poll_readable(&socks, left) {
            Ok(r) => r,
            Err(e) => return Done::err(&e),
        };
        for (i, r) in ready.iter().enumerate() {
            if !*r {
                continue;
            }
            let mut buf = [MaybeUninit::<u8>::uninit(); 512];
            if let Ok((len, _)) = socks[i].recv_from(&mut buf) {
                // SAFETY: recv_from initialised the first `len` bytes.
                let bytes: Vec<u8> = buf[..len]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                let text = String::from_utf8_lossy(&bytes);
                if let Some(seq) = text
                    .strip_prefix(&tag)
                    .and_then(|s| s.parse::<usize>().ok())
                    && seq < count as usize
                    && !got[i][seq]
                {
                    got[i][seq] = true;
                    total += 1;
                    until = Instant::now() + quiet;
                }
            }
        }
    }
    let per: Vec<usize> = got
        .iter()
        .map(|g| g.iter().filter(|x| **x).count())
        .collect();
    let detail = receivers
        .iter()
        .zip(&per)
        .map(|((name, _), c)| format!("{name}:{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let outcome = match observe {
        Observe::Who => Outcome::Who(
            receivers
                .iter()
                .zip(&per)
                .filter(|(_, c)| **c > 0)
                .map(|((name, _), _)| name.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
        Observe::Each => {
            let reach: Vec<usize> = (0..count as usize)
                .map(|seq| got.iter().filter(|g| g[seq]).count())
                .collect();
            Outcome::Each(if reach.iter().all(|r| *r == 0) {
                Each::None
            } else if n > 1 && reach.iter().all(|r| *r == n) {
                Each::All
            } else if reach.iter().all(|r| *r == 1) {
                Each::One
            } else {
                Each::Mixed
            })
        }
    };
    Done::of(outcome).detail(format!("{count} datagrams; received {detail}"))
}

/// Writes until the send buffer is full: the peer does not read, so this
/// leaves data queued for a lingering close to wait on.
fn fill(s: &Socket, nonblocking: bool) -> Done {
    if let Err(e) = s.set_nonblocking(true) {
        return Done::err(&e);
    }
    let chunk = vec![b'f'; 64 * 1024];
    let mut queued = 0usize;
    let r = loop {
        match s.send(&chunk) {
            Ok(n) => queued += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Done::ok(),
            Err(e) => break Done::err(&e),
        }
        if queued > 256 << 20 {
            break Done::of(Outcome::Timeout)
                .detail("the send buffer never filled (256 MB queued)");
        }
    };
    if !nonblocking && let Err(e) = s.set_nonblocking(false) {
        return Done::err(&e);
    }
    let detail = format!("{queued} bytes queued");
    Done {
        detail: Some(
            r.detail
                .clone()
                .map_or(detail.clone(), |d| format!("{d}; {detail}")),
        ),
        ..r
    }
}

/// Reads until end of stream or an error; `timeout` if the stream stays
/// open without data for `wait`.
fn drain(s: &Socket, wait: Duration) -> Done {
    let mut buf = [0u8; 65536];
    let mut got = 0usize;
    let mut reader: &Socket = s;
    loop {
        match sys::wait_readable(s, wait) {
            Ok(true) => {}
            Ok(false) => {
                return Done::of(Outcome::Timeout)
                    .detail(format!("read {got} bytes, then nothing"));
            }
            Err(e) => return Done::err(&e),
        }
        match reader.read(&mut buf) {
            Ok(0) => {
                return Done::of(Outcome::Eof)
                    .detail(format!("read {got} bytes, then end of stream"));
            }
            Ok(n) => got += n,
            Err(e) => return Done::err(&e).detail(format!("read {got} bytes, then {e}")),
        }
    }
}

/// `count` connections to `target`: how many of `listeners` accepted at
/// least one, or which did.
fn spread(
    named: &[(&str, &Socket)],
    target: SocketAddr,
    count: u32,
    observe: Observe,
    budget: Duration,
) -> (Done, Vec<u16>) {
    let listeners: Vec<&Socket> = named.iter().map(|(_, s)| *s).collect();
    let listeners = listeners.as_slice();
    let end = Instant::now() + budget;
    let mut clients = Vec::new();
    let mut ports = Vec::new();
    let mut per = vec![0u32; listeners.len()];
    let mut accepted = Vec::new();
    let domain = if target.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let accept_ready =
        |per: &mut Vec<u32>, accepted: &mut Vec<Socket>, wait: Duration| -> io::Result<bool> {
            let ready = sys::poll_readable(listeners, wait)?;
            let mut any = false;
            for (i, r) in ready.iter().enumerate() {
                if *r && let Ok((s, _)) = listeners[i].accept() {
                    // Reset on close, so no TIME_WAIT is left behind.
                    let _ = s.set_linger(Some(Duration::ZERO));
                    accepted.push(s);
                    per[i] += 1;
                    any = true;
                }
            }
            Ok(any)
        };
    for _ in 0..count {
        let c = match Socket::new(domain, Type::STREAM, Some(Protocol::TCP)) {
            Ok(c) => c,
            Err(e) => return (Done::err(&e), ports),
        };
        let _ = c.set_linger(Some(Duration::ZERO));
        let d = connect(
            &c,
            target,
            false,
            end.saturating_duration_since(Instant::now()),
        );
        if !d.outcome.is_ok() {
            return (d, ports);
        }
        if let Some(a) = addr_of(&c) {
            ports.push(a.port());
        }
        clients.push(c);
        // Keep the accept queues short.
        if let Err(e) = accept_ready(&mut per, &mut accepted, Duration::ZERO) {
            return (Done::err(&e), ports);
        }
    }
    while per.iter().sum::<u32>() < count {
        let left = end
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        match accept_ready(&mut per, &mut accepted, left) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return (Done::err(&e), ports),
        }
    }
    let hit = per.iter().filter(|c| **c > 0).count();
    let detail = per.iter().map(u32::to_string).collect::<Vec<_>>().join("/");
    let outcome = match observe {
        Observe::Who => {
            let mut who: Vec<String> = named
                .iter()
                .zip(&per)
                .filter(|(_, c)| **c > 0)
                .map(|((n, _), _)| n.to_string())
                .collect();
            who.sort();
            Outcome::Who(who)
        }
        Observe::Each => Outcome::Int(hit as i64),
    };
    (
        Done::of(outcome).detail(format!(
            "{count} connections accepted as {detail} across {} listeners",
            listeners.len()
        )),
        ports,
    )
}
