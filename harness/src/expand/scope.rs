//! Scope checking: within one test, sockets and actors exist before they
//! are used, ports come from bound sockets, options suit the socket; and
//! what the test needs from the machine it runs on.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::error::InputError;
use crate::model::{Action, Family, Location, Need, Opt, OptValue, OsFamily, PortRef, Proto};
use crate::steps;

/// What the expansion knows about a socket while it walks the steps.
pub struct SockInfo {
    actor: Option<String>,
    proto: Proto,
    family: Family,
    open: bool,
    /// Has a local port: bound, or bound implicitly by connect, listen or send.
    bound: bool,
}

/// Sockets, actors, labels and leases of one test, as its steps go by.
#[derive(Default)]
pub struct Scope {
    socks: crate::Map<String, SockInfo>,
    actors: crate::Map<String, bool>,
    pub labels: BTreeSet<String>,
    leases: BTreeSet<String>,
}

/// How a step's options count as needs: only on the families it runs on, and
/// not at all for a probe (which asks whether the option exists).
pub struct OptScope {
    pub os: Option<Vec<OsFamily>>,
    pub probe: bool,
}

impl OptScope {
    fn need(&self, opt: Opt) -> Option<Need> {
        (!self.probe).then(|| Need::Opt(opt, self.os.clone()))
    }
}

/// The errors of one step, all at the step's position.
struct Errs<'a> {
    at: &'a Location,
    errors: &'a mut Vec<InputError>,
}

impl Errs<'_> {
    fn err(&mut self, msg: String, help: Option<&str>) {
        let mut e = InputError::at(self.at, msg);
        if let Some(h) = help {
            e = e.help(h);
        }
        self.errors.push(e);
    }
}

/// Checks one step against what the test has done so far, updates the
/// scope, and adds what the step needs from the machine.
pub fn check_semantics(
    action: &Action,
    actor: Option<&str>,
    at: &Location,
    opt_scope: &OptScope,
    scope: &mut Scope,
    needs: &mut Vec<Need>,
    errors: &mut Vec<InputError>,
) {
    let mut e = Errs { at, errors };
    check_uses(action, scope, &mut e);
    if let Some(p) = action.port() {
        check_port(p, scope, &mut e);
    }
    check_sockets(action, actor, opt_scope, scope, needs, &mut e);
    check_lifecycle(action, scope, needs, &mut e);
    address_needs(action, scope, needs);
}

/// The sockets a step uses exist, are open (unless only their remembered
/// endpoint is read), and live in one actor.
fn check_uses(action: &Action, scope: &Scope, e: &mut Errs<'_>) {
    let mut err = |msg: String, help: Option<&str>| e.err(msg, help);
    let socks = action.socks();
    // Sockets the step needs open, and those it may use after close (for their
    // remembered endpoint).
    let (open_needed, remembered): (&[&str], Vec<&str>) = match action {
        Action::Socket(_) | Action::Server(_) => (&[], vec![]),
        Action::TcpState(steps::TcpState { sock, .. }) => (&[], vec![sock]),
        Action::SamePort(steps::SamePort { a, b }) => (&[], vec![a, b]),
        _ => (&socks, vec![]),
    };
    for s in open_needed.iter().chain(&remembered) {
        match scope.socks.get(*s) {
            None => err(
                format!("socket `{s}` is used before a `socket` step creates it"),
                Some(
                    "create it first: `{ do = \"socket\", name = ..., type = ..., family = ... }`",
                ),
            ),
            Some(info) if !info.open && open_needed.contains(s) => {
                err(format!("socket `{s}` is used after it was closed"), None)
            }
            _ => {}
        }
    }
    // Multi-socket steps run inside one actor.
    if socks.len() > 1 && !matches!(action, Action::SamePort(_)) {
        let actors: BTreeSet<Option<&str>> = socks
            .iter()
            .filter_map(|s| scope.socks.get(*s).map(|i| i.actor.as_deref()))
            .collect();
        if actors.len() > 1 {
            err(
                format!(
                    "a `{}` step needs all its sockets in one actor",
                    action.kind()
                ),
                None,
            );
        }
    }
}

/// A port names a lease, or a socket that exists and has a port.
fn check_port(p: &PortRef, scope: &mut Scope, e: &mut Errs<'_>) {
    let mut err = |msg: String, help: Option<&str>| e.err(msg, help);
    match p {
        PortRef::Of(s) if !scope.socks.contains_key(s) => err(
            format!("port of `{s}`: no socket `{s}` exists at this point"),
            Some("a port is \"@lease\", 0, or the name of an earlier socket"),
        ),
        PortRef::Of(s) if scope.socks.get(s).is_some_and(|i| !i.bound) => err(
            format!("port of `{s}`: `{s}` has no port yet at this point (it is not bound)"),
            Some("bind it first, or use a leased port (\"@p\") for both"),
        ),
        PortRef::Lease(l) => {
            if let Some(other) = scope
                .leases
                .iter()
                .find(|o| *o != l && lease_base(o) == lease_base(l))
            {
                let base = lease_base(l);
                err(
                    format!(
                        "`@{l}` and `@{other}` are one lease name written two ways: they would be two different ports"
                    ),
                    Some(&format!(
                        "write a lease the same way at every use: \"@{base}{low}\" everywhere for one privileged port, \"@{base}\" everywhere for one unprivileged port, or another name for a second port",
                        low = crate::exec::ports::LOW_SUFFIX
                    )),
                );
            }
            scope.leases.insert(l.clone());
        }
        _ => {}
    }
}

/// A lease's name without the privileged suffix: `p` for `p!low`.
fn lease_base(lease: &str) -> &str {
    lease
        .strip_suffix(crate::exec::ports::LOW_SUFFIX)
        .unwrap_or(lease)
}

/// Sockets: created once, options that suit them, addresses of their family.
fn check_sockets(
    action: &Action,
    actor: Option<&str>,
    opt_scope: &OptScope,
    scope: &mut Scope,
    needs: &mut Vec<Need>,
    e: &mut Errs<'_>,
) {
    let mut err = |msg: String, help: Option<&str>| e.err(msg, help);
    let fam_of = |scope: &Scope, s: &str| scope.socks.get(s).map(|i| (i.family, i.proto));
    match action {
        Action::Socket(steps::Socket {
            name,
            proto,
            family,
            opts,
        }) => {
            if scope.socks.contains_key(name) {
                err(
                    format!("socket `{name}` is created twice"),
                    Some("give the new socket its own name"),
                );
            }
            if let Some(a) = actor {
                match scope.actors.get(a) {
                    None => err(
                        format!("actor `{a}` is used before a `spawn` step starts it"),
                        None,
                    ),
                    Some(false) => err(format!("actor `{a}` is used after it ended"), None),
                    _ => {}
                }
            }
            for o in opts {
                needs.extend(opt_scope.need(*o));
                if *o == Opt::V6Only && *family == Family::V4 {
                    err("`v6only` is an IPv6 option".into(), None);
                }
            }
            scope.socks.insert(
                name.clone(),
                SockInfo {
                    actor: actor.map(str::to_string),
                    proto: *proto,
                    family: *family,
                    open: true,
                    bound: false,
                },
            );
        }
        Action::Server(steps::Server {
            name, proto, addr, ..
        }) => {
            if scope.socks.contains_key(name) {
                err(
                    format!("socket `{name}` is created twice"),
                    Some("give the new socket its own name"),
                );
            }
            if let Some(a) = actor
                && scope.actors.get(a) != Some(&true)
            {
                err(
                    format!("actor `{a}` is not running when this step creates `{name}`"),
                    None,
                );
            }
            scope.socks.insert(
                name.clone(),
                SockInfo {
                    actor: actor.map(str::to_string),
                    proto: *proto,
                    family: Family::of(addr),
                    open: true,
                    bound: true,
                },
            );
        }
        Action::SetOpt(steps::SetOpt { sock, opt, value }) => {
            needs.extend(opt_scope.need(*opt));
            check_setopt(fam_of(scope, sock), *opt, value, needs, &mut err);
        }
        Action::GetOpt(steps::GetOpt { opt, .. }) => {
            needs.extend(opt_scope.need(*opt));
        }
        Action::Bind(steps::Bind { sock, addr, .. })
        | Action::Connect(steps::Connect { sock, addr, .. }) => {
            if let Some((fam, _)) = fam_of(scope, sock) {
                check_family(sock, fam, addr, &mut err);
            }
        }
        Action::Listen(steps::Listen { sock, .. })
        | Action::Accept(steps::Accept { sock, .. })
        | Action::Acked(steps::Acked { sock, .. })
            if fam_of(scope, sock).is_some_and(|(_, p)| p == Proto::Udp) =>
        {
            err(format!("`{}` needs a TCP socket", action.kind()), None);
        }
        _ => {}
    }
}

/// `setopt`: what the option needs of the machine, and of the socket
/// (`fp`: its family and protocol, when it exists).
fn check_setopt(
    fp: Option<(Family, Proto)>,
    opt: Opt,
    value: &OptValue,
    needs: &mut Vec<Need>,
    err: &mut impl FnMut(String, Option<&str>),
) {
    match (opt, value) {
        (Opt::V6Only, OptValue::Bool(false)) => {
            needs.push(Need::DualStack);
        }
        (Opt::Join | Opt::Leave, OptValue::Group { group, .. }) => {
            if group.is_ipv6() {
                needs.push(Need::Ipv6Multicast);
                needs.push(Need::Root);
            }
            if let Some((fam, proto)) = fp
                && (fam != Family::of(group) || proto != Proto::Udp)
            {
                err(
                    format!("`{}` needs a UDP socket of the group's family", opt.key()),
                    None,
                );
            }
        }
        _ => {}
    }
    if opt == Opt::V6Only && fp.is_some_and(|(f, _)| f == Family::V4) {
        err("`v6only` is an IPv6 option".into(), None);
    }
}

/// `bind` and `connect`: the address is of the socket's family.
fn check_family(
    sock: &str,
    fam: Family,
    addr: &std::net::IpAddr,
    err: &mut impl FnMut(String, Option<&str>),
) {
    if fam == Family::V4 && addr.is_ipv6() {
        err(
            format!("socket `{sock}` is IPv4 but the address {addr} is IPv6"),
            None,
        );
    }
    if fam == Family::V6 && addr.is_ipv4() {
        err(
            format!("socket `{sock}` is IPv6 but the address {addr} is IPv4"),
            Some("write IPv4 addresses for IPv6 sockets as mapped (mapped_lo, ::ffff:127.0.0.1)"),
        );
    }
}

/// Closing, actors starting and ending, sockets moving between actors and
/// accepted into being.
fn check_lifecycle(action: &Action, scope: &mut Scope, needs: &mut Vec<Need>, e: &mut Errs<'_>) {
    let mut err = |msg: String, help: Option<&str>| e.err(msg, help);
    match action {
        Action::Close(steps::Close { sock, .. }) => {
            if let Some(i) = scope.socks.get_mut(sock) {
                i.open = false;
            }
        }
        Action::Spawn(steps::Spawn { actor, user, .. }) => {
            if scope.actors.insert(actor.clone(), true).is_some() {
                err(format!("actor `{actor}` is spawned twice"), None);
            }
            needs.push(Need::Actors);
            if user.is_some() {
                needs.push(Need::Root);
                needs.push(Need::OtherUser);
            }
        }
        Action::Kill(steps::Kill { actor: a }) | Action::Exit(steps::Exit { actor: a }) => {
            match scope.actors.get_mut(a) {
                Some(alive @ true) => {
                    *alive = false;
                    for info in scope.socks.values_mut() {
                        if info.actor.as_deref() == Some(a.as_str()) {
                            info.open = false;
                        }
                    }
                }
                Some(false) => err(format!("actor `{a}` has already ended"), None),
                None => err(format!("actor `{a}` is never spawned"), None),
            }
        }
        Action::Pass(steps::Pass { sock, to }) => {
            if *to != "main" && scope.actors.get(to) != Some(&true) {
                err(
                    format!("`pass` to `{to}`: no running actor has that name"),
                    Some("spawn it first, or pass to \"main\""),
                );
            }
            if let Some(i) = scope.socks.get_mut(sock) {
                i.actor = (to != "main").then(|| to.clone());
            }
        }
        _ => {}
    }
    if let Action::Accept(steps::Accept { sock, name }) = action {
        if scope.socks.contains_key(name) {
            err(format!("socket `{name}` is created twice"), None);
        }
        let info = scope.socks.get(sock).map(|i| SockInfo {
            actor: i.actor.clone(),
            proto: i.proto,
            family: i.family,
            open: true,
            bound: true,
        });
        if let Some(info) = info {
            scope.socks.insert(name.clone(), info);
        }
    }
}

/// Which sockets now have a port, and what the step's addresses need.
fn address_needs(action: &Action, scope: &mut Scope, needs: &mut Vec<Need>) {
    // Steps that give a socket a local port.
    if let Action::Bind(steps::Bind { sock, .. })
    | Action::Connect(steps::Connect { sock, .. })
    | Action::Listen(steps::Listen { sock, .. })
    | Action::Send(steps::Send { sock, .. })
    | Action::Fanout(steps::Fanout { sender: sock, .. }) = action
        && let Some(i) = scope.socks.get_mut(sock)
    {
        i.bound = true;
    }
    // 127.0.0.2 and kin exist on loopback only on some systems.
    let addr = match action {
        Action::Bind(steps::Bind { addr, .. })
        | Action::Server(steps::Server { addr, .. })
        | Action::Connect(steps::Connect { addr, .. })
        | Action::Fanout(steps::Fanout { addr, .. })
        | Action::Spread(steps::Spread { addr, .. })
        | Action::Send(steps::Send {
            to: Some((addr, _)),
            ..
        }) => Some(addr),
        _ => None,
    };
    if addr.is_some_and(|a| is_extra_loopback(*a)) {
        needs.push(Need::SecondLoopback);
    }
    // A privileged lease ("@p!low") is proven free by binding it: root.
    if let Some(crate::model::PortRef::Lease(l)) = action.port()
        && l.ends_with(crate::exec::ports::LOW_SUFFIX)
    {
        needs.push(Need::Root);
    }
    // Addresses of IPv6 groups need the namespace interface.
    if let Action::Fanout(steps::Fanout {
        addr: IpAddr::V6(a),
        ..
    }) = action
        && a.is_multicast()
    {
        needs.push(Need::Ipv6Multicast);
        needs.push(Need::Root);
    }
}

/// A loopback address other than 127.0.0.1 (also v4-mapped).
fn is_extra_loopback(a: IpAddr) -> bool {
    let v4 = match a {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return false,
        },
    };
    v4.is_loopback() && v4 != std::net::Ipv4Addr::LOCALHOST
}
