//! The sockets one process holds, and how a resolved action runs on them.
//!
//! Both the harness (for the main actor) and every helper process (agent)
//! run steps through [`Local`]: ports are already numbers here
//! ([`PortRef::Number`]); leases, claims and routing are the engine's.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::model::{Action, Band, Family, Observe, Opt, OptValue, PortRef, Proto};
use crate::outcome::{Each, ErrName, Outcome};
use crate::steps;
use crate::sys;

/// What a step did, before judging.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Done {
    /// What the kernel did.
    #[serde(with = "outcome_text")]
    pub outcome: Outcome,
    /// The OS's own error code, when the outcome is an error.
    pub raw: Option<i32>,
    /// What a person needs to read the outcome: the error text, bytes read, who received.
    pub detail: Option<String>,
    /// Ports the step's own helper sockets got (spread's clients), to claim.
    #[serde(default)]
    pub extra_ports: Vec<u16>,
}

/// Outcomes travel to and from agents as their text.
mod outcome_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::outcome::Outcome;

    pub fn serialize<S: Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&o.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Done {
    /// The call succeeded.
    pub fn ok() -> Self {
        Done {
            outcome: Outcome::Ok,
            raw: None,
            detail: None,
            extra_ports: Vec::new(),
        }
    }

    /// This outcome, with nothing more to say.
    pub fn of(o: Outcome) -> Self {
        Done {
            outcome: o,
            ..Done::ok()
        }
    }

    /// The call failed: the error's portable name, its raw code and its text.
    pub fn err(e: &io::Error) -> Self {
        let (outcome, raw) = sys::describe(e);
        Done {
            outcome,
            raw,
            detail: Some(e.to_string()),
            extra_ports: Vec::new(),
        }
    }

    /// `ok`, or the error of a call that returns nothing.
    pub fn result(r: io::Result<()>) -> Self {
        match r {
            Ok(()) => Done::ok(),
            Err(e) => Done::err(&e),
        }
    }

    /// The step was not performed, and why.
    pub fn not_run(why: impl Into<String>) -> Self {
        Done::of(Outcome::NotRun).detail(why)
    }

    /// The same outcome with this detail.
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// A socket this process holds.
pub struct LocalSock {
    /// The socket itself.
    pub sock: Socket,
    /// TCP or UDP, as created.
    pub proto: Proto,
    /// IPv4 or IPv6, as created.
    pub family: Family,
    /// Set by the `nonblocking` option: accept and connect do not wait.
    pub nonblocking: bool,
    /// Bytes this process wrote on it (`send`, `fill`): where the OS counts
    /// only what is in flight (Windows), `acked` also needs all of it sent.
    pub sent: u64,
}

impl LocalSock {
    /// A socket that has written nothing yet: one just made, accepted, or
    /// passed in from another process (which counts only what is in flight).
    pub fn new(sock: Socket, proto: Proto, family: Family, nonblocking: bool) -> LocalSock {
        LocalSock {
            sock,
            proto,
            family,
            nonblocking,
            sent: 0,
        }
    }

    fn addrs(&self) -> Addrs {
        Addrs {
            local: addr_of(&self.sock),
            peer: peer_of(&self.sock),
        }
    }
}

/// Addresses of a socket as the kernel reports them now.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Addrs {
    /// The bound address (getsockname), once it has a port.
    pub local: Option<SocketAddr>,
    /// The connected peer (getpeername), when connected.
    pub peer: Option<SocketAddr>,
}

/// The sockets of one process (the main actor or an agent).
#[derive(Default)]
pub struct Local {
    socks: BTreeMap<String, LocalSock>,
}

fn domain(f: Family) -> Domain {
    match f {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    }
}

pub(crate) fn addr_of(s: &Socket) -> Option<SocketAddr> {
    s.local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .filter(|a| a.port() != 0)
        .map(sys::canonical)
}

fn peer_of(s: &Socket) -> Option<SocketAddr> {
    s.peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(sys::canonical)
}

fn number(p: &PortRef) -> u16 {
    match p {
        PortRef::Number(n) => *n,
        _ => 0,
    }
}

impl Local {
    /// Holds `s` as `name` (a socket passed in from another process).
    pub fn insert(&mut self, name: &str, s: LocalSock) {
        self.socks.insert(name.to_string(), s);
    }

    /// Gives up `name` (to pass it to another process).
    pub fn take(&mut self, name: &str) -> Option<LocalSock> {
        self.socks.remove(name)
    }

    /// Whether this process holds a socket called `name`.
    pub fn holds(&self, name: &str) -> bool {
        self.socks.contains_key(name)
    }

    /// Every socket's addresses now (the engine mirrors them).
    pub fn addrs(&self) -> Vec<(String, Addrs)> {
        self.socks
            .iter()
            .map(|(n, s)| (n.clone(), s.addrs()))
            .collect()
    }

    /// The addresses `action` may have changed: those of the sockets it
    /// names and of the one it makes. A socket's own calls are all that
    /// give it an address (a peer's reset takes its peer away, which the
    /// engine's mirror keeps anyway), and asking every socket after every
    /// step was two system calls per socket per step.
    pub fn addrs_after(&self, action: &Action) -> Vec<(String, Addrs)> {
        if !action.may_address() {
            return Vec::new();
        }
        let mut names = action.socks();
        names.extend(action.makes());
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| self.socks.get(n).map(|s| (n.to_string(), s.addrs())))
            .collect()
    }

    fn sock(&self, name: &str) -> Result<&LocalSock, Done> {
        self.socks
            .get(name)
            .ok_or_else(|| Done::not_run(format!("socket `{name}` is not open here")))
    }

    fn sock_mut(&mut self, name: &str) -> Result<&mut LocalSock, Done> {
        self.socks
            .get_mut(name)
            .ok_or_else(|| Done::not_run(format!("socket `{name}` is not open here")))
    }

    /// Runs a step that writes on socket `name`, and counts what it wrote.
    fn writing(
        &mut self,
        name: &str,
        write: impl FnOnce(&LocalSock) -> (Done, usize),
    ) -> Result<Done, Done> {
        let ls = self.sock_mut(name)?;
        let (done, n) = write(ls);
        ls.sent += n as u64;
        Ok(done)
    }

    /// `socket`: a new socket with `opts` set before anything else.
    fn open(&mut self, name: &str, proto: Proto, family: Family, opts: &[Opt]) -> Done {
        let (ty, p) = match proto {
            Proto::Tcp => (Type::STREAM, Protocol::TCP),
            Proto::Udp => (Type::DGRAM, Protocol::UDP),
        };
        let sock = match sys::new_socket(domain(family), ty, Some(p)) {
            Ok(s) => s,
            Err(e) => return Done::err(&e),
        };
        let mut ls = LocalSock::new(sock, proto, family, false);
        for o in opts {
            let on = OptValue::Bool(true);
            if let Err(e) = set_opt(&ls.sock, ls.family, &mut ls.nonblocking, *o, &on) {
                return Done::err(&e).detail(format!("setting {}: {e}", o.c_name()));
            }
        }
        self.socks.insert(name.to_string(), ls);
        Done::ok()
    }

    /// `server`: a listening (TCP) or bound (UDP) socket made Rust std's
    /// own way, with its defaults: on Unix TcpListener::bind sets
    /// SO_REUSEADDR, UdpSocket::bind nothing.
    fn server(&mut self, name: &str, proto: Proto, at: SocketAddr, api: &str) -> Done {
        if api != "default" {
            return Done::of(Outcome::Unsupported)
                .detail(format!("Rust std has no `{api}` server API"));
        }
        let sock: io::Result<Socket> = match proto {
            Proto::Tcp => std::net::TcpListener::bind(at).map(Socket::from),
            Proto::Udp => std::net::UdpSocket::bind(at).map(Socket::from),
        };
        match sock {
            Ok(sock) => {
                let ls = LocalSock::new(sock, proto, Family::of(&at.ip()), false);
                self.socks.insert(name.to_string(), ls);
                Done::ok()
            }
            Err(e) => Done::err(&e),
        }
    }

    /// `accept`: waits (on a blocking socket) for a connection, and holds
    /// the accepted socket as `name`.
    fn accept(&mut self, sock: &str, name: &str, wait: Duration) -> Result<Done, Done> {
        let ls = self.sock(sock)?;
        if !ls.nonblocking {
            match sys::wait_readable(&ls.sock, wait) {
                Ok(true) => {}
                Ok(false) => {
                    return Ok(Done::of(Outcome::Timeout).detail("no connection to accept"));
                }
                Err(e) => return Ok(Done::err(&e)),
            }
        }
        Ok(match sys::accept(&ls.sock) {
            Ok((new, _)) => {
                let new = LocalSock::new(new, ls.proto, ls.family, false);
                self.socks.insert(name.to_string(), new);
                Done::ok()
            }
            Err(e) => Done::err(&e),
        })
    }

    /// `close`: closes the socket, timing the close when the case gives
    /// bands for how long it may take (SO_LINGER).
    fn close(&mut self, sock: &str, bands: &[Band]) -> Result<Done, Done> {
        let ls = self
            .socks
            .remove(sock)
            .ok_or_else(|| Done::not_run(format!("socket `{sock}` is not open here")))?;
        let started = Instant::now();
        let r = sys::close(ls.sock);
        let took = started.elapsed();
        let d = Done::result(r);
        Ok(if bands.is_empty() {
            d
        } else {
            banded(d, bands, took)
        })
    }

    /// `fanout`: datagrams from `sender` to one address, and which of the
    /// receivers got them.
    fn fanout(&self, f: &steps::Fanout, remaining: Duration) -> Result<Done, Done> {
        let s = &self.sock(&f.sender)?.sock;
        let mut rx = Vec::new();
        for r in &f.receivers {
            rx.push((r.as_str(), &self.sock(r)?.sock));
        }
        let to = SocketAddr::new(f.addr, number(&f.port));
        Ok(fanout(
            s,
            to,
            &rx,
            f.count,
            f.observe,
            f.wait.min(remaining),
        ))
    }

    /// `spread`: connections to one address, and which listeners got them;
    /// the clients' ports are claimed like the test's own.
    fn spread(&self, sp: &steps::Spread, remaining: Duration) -> Result<Done, Done> {
        let mut ls = Vec::new();
        for l in &sp.listeners {
            ls.push((l.as_str(), &self.sock(l)?.sock));
        }
        let to = SocketAddr::new(sp.addr, number(&sp.port));
        let (mut done, client_ports) = spread(&ls, to, sp.count, sp.observe, remaining);
        done.extra_ports = client_ports;
        Ok(done)
    }

    /// Runs one action whose ports are resolved. Steps that act on no socket
    /// of this process (tcp_state, same_port, actor control) are the engine's.
    ///
    /// Steps that may close a socket of this process run behind the child
    /// gate ([`sys::closing`]); the others (waiting for a datagram, a
    /// connection, a sleep) do not hold it, so a child can start meanwhile.
    pub fn exec(&mut self, action: &Action, deadline: Instant) -> Done {
        let run = |me: &mut Self| match me.exec_inner(action, deadline) {
            Ok(d) | Err(d) => d,
        };
        if self.may_close(action) {
            sys::closing(|| run(self))
        } else {
            run(self)
        }
    }

    /// Whether `action` may drop a socket of this process, other than by
    /// `close`: the temporary sockets of `spread`, a socket that fails while
    /// being set up, or a name given to a new socket while an old one still
    /// holds it.
    fn may_close(&self, action: &Action) -> bool {
        match action {
            // `close` passes the gate itself (sys::close).
            Action::Spread(_) | Action::Socket(_) | Action::Server(_) => true,
            Action::Accept(steps::Accept { name, .. }) => self.holds(name),
            _ => false,
        }
    }

    fn exec_inner(&mut self, action: &Action, deadline: Instant) -> Result<Done, Done> {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        Ok(match action {
            Action::Socket(steps::Socket {
                name,
                proto,
                family,
                opts,
            }) => self.open(name, *proto, *family, opts),
            Action::Server(steps::Server {
                name,
                proto,
                addr,
                port,
                api,
            }) => self.server(name, *proto, SocketAddr::new(*addr, number(port)), api),
            Action::SetOpt(steps::SetOpt { sock, opt, value }) => {
                let ls = self.sock_mut(sock)?;
                Done::result(set_opt(
                    &ls.sock,
                    ls.family,
                    &mut ls.nonblocking,
                    *opt,
                    value,
                ))
            }
            Action::GetOpt(steps::GetOpt { sock, opt }) => {
                let ls = self.sock(sock)?;
                match get_opt(&ls.sock, ls, *opt) {
                    Ok(o) => Done::of(o),
                    Err(e) => Done::err(&e),
                }
            }
            Action::Bind(steps::Bind { sock, addr, port }) => {
                let s = &self.sock(sock)?.sock;
                Done::result(s.bind(&SocketAddr::new(*addr, number(port)).into()))
            }
            Action::Listen(steps::Listen { sock, backlog }) => {
                Done::result(self.sock(sock)?.sock.listen(*backlog))
            }
            Action::Connect(steps::Connect { sock, addr, port }) => {
                let ls = self.sock(sock)?;
                connect(
                    &ls.sock,
                    SocketAddr::new(*addr, number(port)),
                    ls.nonblocking,
                    remaining(),
                )
            }
            Action::Accept(steps::Accept { sock, name }) => self.accept(sock, name, remaining())?,
            Action::Send(steps::Send { sock, bytes, to }) => {
                let to = to.as_ref().map(|(a, p)| SocketAddr::new(*a, number(p)));
                self.writing(sock, |ls| send(&ls.sock, *bytes, to))?
            }
            Action::Acked(steps::Acked { sock, wait }) => {
                acked(self.sock(sock)?, (*wait).min(remaining()))
            }
            Action::Readable(steps::Readable { sock, wait }) => {
                readable(&self.sock(sock)?.sock, (*wait).min(remaining()))
            }
            Action::Recv(steps::Recv { sock, wait }) => {
                recv(self.sock(sock)?, (*wait).min(remaining()))
            }
            Action::Shutdown(steps::Shutdown { sock, how }) => {
                Done::result(self.sock(sock)?.sock.shutdown((*how).into()))
            }
            Action::Close(steps::Close { sock, bands }) => self.close(sock, bands)?,
            Action::Fanout(f) => self.fanout(f, remaining())?,
            Action::Spread(sp) => self.spread(sp, remaining())?,
            Action::GetSockName(steps::GetSockName { sock, addr }) => {
                match self.sock(sock)?.sock.local_addr() {
                    Ok(a) => Done::of(Outcome::Bool(
                        a.as_socket().is_some_and(|a| a.ip() == *addr),
                    )),
                    Err(e) => Done::err(&e),
                }
            }
            Action::Fill(steps::Fill { sock }) => {
                self.writing(sock, |ls| fill(&ls.sock, ls.nonblocking))?
            }
            Action::Drain(steps::Drain { sock, wait }) => {
                drain(&self.sock(sock)?.sock, (*wait).min(remaining()))
            }
            Action::Sleep(steps::Sleep { ms }) => {
                std::thread::sleep(Duration::from_millis(*ms).min(remaining()));
                Done::ok()
            }
            Action::TcpState(_)
            | Action::Sysctl(_)
            | Action::SamePort(_)
            | Action::Spawn(_)
            | Action::Pass(_)
            | Action::Kill(_)
            | Action::Exit(_) => Done::not_run("the engine runs this step, not a socket table"),
        })
    }
}

fn set_opt(
    s: &Socket,
    family: Family,
    nonblocking: &mut bool,
    opt: Opt,
    value: &OptValue,
) -> io::Result<()> {
    let v6 = family == Family::V6;
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
            *nonblocking = *b;
            Ok(())
        }
        (Opt::MulticastLoop, OptValue::Bool(b)) if v6 => s.set_multicast_loop_v6(*b),
        (Opt::MulticastLoop, OptValue::Bool(b)) => s.set_multicast_loop_v4(*b),
        (Opt::MulticastAll, OptValue::Bool(b)) => sys::set_multicast_all(s, family, *b),
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
        (Opt::Broadcast, OptValue::Bool(b)) => s.set_broadcast(*b),
        (Opt::BindToDevice | Opt::BoundIf, OptValue::Iface(i)) => {
            sys::bind_device(s, family, opt, i)
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

fn get_opt(s: &Socket, slot: &LocalSock, opt: Opt) -> io::Result<Outcome> {
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
        Opt::MulticastAll => Outcome::Bool(sys::multicast_all(s, slot.family)?),
        Opt::Broadcast => Outcome::Bool(s.broadcast()?),
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
/// happen before the SYN; a refusal comes back as SO_ERROR). It waits for the
/// test's whole remaining time, never a shorter fixed timeout: Windows answers
/// a connect to a closed loopback port with ECONNREFUSED only after its SYN
/// retries, about 2 s (https://github.com/libuv/libuv/pull/2896), so a case
/// that expects several refusals there needs `deadline_ms` beyond the 5 s
/// default.
fn connect(s: &Socket, target: SocketAddr, nonblocking: bool, timeout: Duration) -> Done {
    let addr: SockAddr = target.into();
    if nonblocking {
        return Done::result(s.connect(&addr));
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
            let mut buf = [0u8; 512];
            // One read of a datagram socket is one datagram; who sent it
            // does not matter here (`Read` is implemented for `&Socket`).
            let mut sock: &Socket = socks[i];
            if let Ok(len) = std::io::Read::read(&mut sock, &mut buf) {
                let text = String::from_utf8_lossy(&buf[..len]);
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
        Observe::Each | Observe::Count => {
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
/// `fill`: what it did, and how many bytes it queued.
fn fill(s: &Socket, nonblocking: bool) -> (Done, usize) {
    if let Err(e) = s.set_nonblocking(true) {
        return (Done::err(&e), 0);
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
        return (Done::err(&e), queued);
    }
    let detail = format!("{queued} bytes queued");
    let done = Done {
        detail: Some(
            r.detail
                .clone()
                .map_or(detail.clone(), |d| format!("{d}; {detail}")),
        ),
        ..r
    };
    (done, queued)
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
                if *r && let Ok((s, _)) = sys::accept(listeners[i]) {
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
        let c = match sys::new_socket(domain, Type::STREAM, Some(Protocol::TCP)) {
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
        Observe::Count | Observe::Each => Outcome::Int(hit as i64),
    };
    (
        Done::of(outcome).detail(format!(
            "{count} connections accepted as {detail} across {} listeners",
            listeners.len()
        )),
        ports,
    )
}

/// `recv`: waits up to `wait` for something to read, then reads once.
fn recv(ls: &LocalSock, wait: Duration) -> Done {
    let ready = readable(&ls.sock, wait);
    if !ready.outcome.is_ok() {
        return ready;
    }
    let mut buf = [0u8; 65536];
    let mut reader: &Socket = &ls.sock;
    match reader.read(&mut buf) {
        Ok(0) if ls.proto == Proto::Tcp => Done::of(Outcome::Eof),
        Ok(n) => Done::of(Outcome::Data).detail(format!("{n} bytes")),
        Err(e) => Done::err(&e),
    }
}

/// `send`: `bytes` bytes, to `to` when given (UDP), else to the peer; what
/// it did, and how many bytes it sent.
fn send(s: &Socket, bytes: usize, to: Option<SocketAddr>) -> (Done, usize) {
    let data = vec![b's'; bytes];
    let r = match to {
        Some(a) => s.send_to(&data, &a.into()),
        None => s.send(&data),
    };
    match r {
        Ok(n) if n == data.len() => (Done::ok(), n),
        Ok(n) => (
            Done::ok().detail(format!("sent {n} of {} bytes", data.len())),
            n,
        ),
        Err(e) => (Done::err(&e), 0),
    }
}

/// `readable`: whether the socket has something to read within `wait`.
fn readable(s: &Socket, wait: Duration) -> Done {
    match sys::wait_readable(s, wait) {
        Ok(true) => Done::ok(),
        Ok(false) => Done::of(Outcome::Timeout),
        Err(e) => Done::err(&e),
    }
}

/// `acked`: polls until the kernel counts no byte of the socket's as
/// unacknowledged, or the connection has failed (a reset answers the data
/// too), for at most `wait`. On loopback the acknowledgement comes in
/// microseconds, or a delayed ACK's 40 ms (Linux) to 200 ms later.
fn acked(ls: &LocalSock, wait: Duration) -> Done {
    let start = Instant::now();
    let mut looks = 0u32;
    loop {
        looks += 1;
        let unacked = sys::unacked(&ls.sock, ls.sent);
        if let Ok(0) = unacked {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            return Done::ok().detail(format!("acknowledged after {looks} look(s), {ms:.1} ms"));
        }
        // A reset answers the data too (Windows resets a connection whose
        // reader shut down reading), and may leave the count stale or refused.
        match (sys::connection_failed(&ls.sock), &unacked) {
            (Ok(true), _) => {
                return Done::ok()
                    .detail("the connection failed (reset) before all was acknowledged");
            }
            (_, Err(e)) if e.kind() == io::ErrorKind::Unsupported => {
                return Done::of(Outcome::Unsupported).detail(e.to_string());
            }
            (_, Err(e)) => return Done::err(e),
            (Err(e), _) => return Done::err(&e),
            (Ok(false), Ok(_)) => {}
        }
        let n = unacked.unwrap_or_default();
        if start.elapsed() >= wait {
            return Done::of(Outcome::Timeout).detail(format!("{n} bytes still unacknowledged"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
