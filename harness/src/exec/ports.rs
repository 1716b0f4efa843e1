//! Ports for tests, without collisions.
//!
//! Case files never name port numbers. A test either lets the kernel choose
//! (port 0, or a connect's implicit bind) or asks for a *lease* (`"@p"`): a
//! port the kernel handed to wildcard probe sockets in both families and both
//! protocols, which proves nothing on the machine holds it, and which is then
//! released for the test to bind. A *privileged* lease (`"@p!low"`) is a
//! port below the first unprivileged one (1024; on Linux
//! `net.ipv4.ip_unprivileged_port_start` if lower), proven free by the same
//! four probes bound on it; leasing one needs the privilege to bind there.
//!
//! Every port any socket of a test attempt ends up on is *claimed* in the
//! run-wide [`PortBook`]. If two attempts in one isolation scope ever hold the
//! same port (a connect elsewhere picked a leased port between lease and
//! bind, say), the later one fails its claim and both are re-run: collisions
//! can happen in the kernel but never reach a reported outcome. With a
//! network namespace per worker (Linux, root) each scope has one attempt at a
//! time and no other process in it. What earlier attempts leave behind can
//! still meet a new one: a TIME_WAIT entry on a port that connect() hands out
//! again (the engine checks the kernel's table after an implicit bind), and a
//! closed socket that a child process still held (sockets are never closed
//! while a child is starting: `sys::closing`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use socket2::{Domain, Protocol, Socket, Type};

/// Identifies an isolation scope: one per network namespace, 0 for the host.
pub type ScopeId = u64;

static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

/// A fresh scope id for a new network namespace.
pub fn new_scope() -> ScopeId {
    NEXT_SCOPE.fetch_add(1, Ordering::Relaxed)
}

#[derive(Default)]
struct Inner {
    owners: HashMap<(ScopeId, u16), u64>,
    disturbed: HashSet<u64>,
    /// Ports held by attempts that never finished (hung and abandoned).
    poisoned: HashSet<(ScopeId, u16)>,
}

/// Which attempt holds which port, across the whole run.
#[derive(Default)]
pub struct PortBook {
    inner: Mutex<Inner>,
    next_attempt: AtomicU64,
}

/// The ports one attempt holds. Dropping it releases them.
pub struct Claims {
    book: Arc<PortBook>,
    /// The isolation scope the attempt runs in; claims only collide within it.
    pub scope: ScopeId,
    /// The attempt's run-wide id, as the book records its ports.
    pub attempt: u64,
    ports: BTreeSet<u16>,
}

/// Another attempt in this scope holds the port.
#[derive(Debug)]
pub struct Collision(pub u16);

impl PortBook {
    /// An empty book, for one run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new attempt in `scope`, with no ports claimed yet.
    pub fn begin(self: &Arc<Self>, scope: ScopeId) -> Claims {
        Claims {
            book: self.clone(),
            scope,
            attempt: self.next_attempt.fetch_add(1, Ordering::Relaxed),
            ports: BTreeSet::new(),
        }
    }

    /// Keeps an attempt's ports out of use for the rest of the run: it hung,
    /// and its sockets may still be open.
    pub fn abandon(&self, scope: ScopeId, attempt: u64) {
        let mut inner = self.lock();
        let held: Vec<(ScopeId, u16)> = inner
            .owners
            .iter()
            .filter(|(k, a)| k.0 == scope && **a == attempt)
            .map(|(k, _)| *k)
            .collect();
        for k in held {
            inner.owners.remove(&k);
            inner.poisoned.insert(k);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (plain inserts).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Claims {
    /// Claims `port` for this attempt; fails if another attempt in the scope
    /// holds it, and marks that attempt disturbed so it re-runs too.
    pub fn claim(&mut self, port: u16) -> Result<(), Collision> {
        if port == 0 || self.ports.contains(&port) {
            return Ok(());
        }
        let mut inner = self.book.lock();
        let key = (self.scope, port);
        if inner.poisoned.contains(&key) {
            return Err(Collision(port));
        }
        match inner.owners.get(&key) {
            Some(&other) if other != self.attempt => {
                inner.disturbed.insert(other);
                Err(Collision(port))
            }
            _ => {
                inner.owners.insert(key, self.attempt);
                self.ports.insert(port);
                Ok(())
            }
        }
    }

    /// Whether this attempt has claimed `port`.
    pub fn holds(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    /// Whether another attempt collided with one of ours.
    pub fn disturbed(&self) -> bool {
        self.book.lock().disturbed.contains(&self.attempt)
    }
}

impl Drop for Claims {
    fn drop(&mut self) {
        let mut inner = self.book.lock();
        for p in &self.ports {
            if inner.owners.get(&(self.scope, *p)) == Some(&self.attempt) {
                inner.owners.remove(&(self.scope, *p));
            }
        }
        inner.disturbed.remove(&self.attempt);
    }
}

/// Whether this machine has IPv6 at all (some CI containers do not).
pub fn have_ipv6() -> bool {
    static V6: OnceLock<bool> = OnceLock::new();
    *V6.get_or_init(|| {
        // Behind the gate, like every socket closed here (`sys::closing`).
        crate::sys::closing(|| {
            Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))
                .and_then(|s| s.bind(&SocketAddr::from((Ipv6Addr::LOCALHOST, 0)).into()))
                .is_ok()
        })
    })
}

/// A port that nothing holds, in either family or protocol, claimed for the attempt.
pub fn lease(claims: &mut Claims) -> io::Result<u16> {
    let mut last = None;
    for _ in 0..64 {
        match crate::sys::closing(probe) {
            Ok(Some(p)) if crate::sys::BIND_IGNORES_TIME_WAIT => match in_table(p)? {
                Some(e) => {
                    last = Some(format!(
                        "port {p} still has an earlier test's {} {} -> {}",
                        crate::outcome::Outcome::State(e.state),
                        e.local,
                        e.remote
                    ))
                }
                None => match claims.claim(p) {
                    Ok(()) => return Ok(p),
                    Err(_) => last = Some(format!("port {p} is held by another test")),
                },
            },
            Ok(Some(p)) => match claims.claim(p) {
                Ok(()) => return Ok(p),
                Err(_) => last = Some(format!("port {p} is held by another test")),
            },
            Ok(None) => last = Some("probe ports kept colliding".to_string()),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free port after 64 tries: {}", last.unwrap_or_default()),
    ))
}

/// The suffix of a lease name that asks for a privileged port: `"@p!low"`.
pub const LOW_SUFFIX: &str = "!low";

/// How many ports below the first unprivileged one a privileged lease tries.
const LOW_SPAN: u16 = 424;

/// The lease a test's `"@name"` asks for: a privileged port when the name
/// ends in [`LOW_SUFFIX`], else any free port the kernel hands out.
pub fn lease_named(claims: &mut Claims, name: &str) -> io::Result<u16> {
    if name.ends_with(LOW_SUFFIX) {
        lease_low(claims)
    } else {
        lease(claims)
    }
}

/// A free privileged port (below [`crate::sys::first_unprivileged_port`]),
/// claimed for the attempt. `Unsupported` when there are none here, or the
/// harness lacks the privilege to bind one (and so to prove it free).
pub fn lease_low(claims: &mut Claims) -> io::Result<u16> {
    let limit = crate::sys::first_unprivileged_port();
    if limit < 2 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "no privileged ports here: the first unprivileged port is {limit} (net.ipv4.ip_unprivileged_port_start)"
            ),
        ));
    }
    let low = limit.saturating_sub(LOW_SPAN).max(1);
    let span = u64::from(limit - low);
    // A different starting point per attempt, so retries try other ports.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
        ^ claims.attempt.wrapping_mul(0x9e37_79b9);
    let mut last = String::from("every candidate was taken");
    for i in 0..64u64 {
        let p = low + ((seed + i * 37) % span) as u16;
        match crate::sys::closing(|| probe_at(p, None)) {
            Ok(true) => {}
            Ok(false) => {
                last = format!("port {p} is in use");
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "leasing a privileged port needs the privilege to bind one (port {p}: {e})"
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
        if crate::sys::BIND_IGNORES_TIME_WAIT && in_table(p)?.is_some() {
            last = format!("port {p} still has an earlier test's TCP entry");
            continue;
        }
        match claims.claim(p) {
            Ok(()) => return Ok(p),
            Err(_) => last = format!("port {p} is held by another test"),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free privileged port after 64 tries: {last}"),
    ))
}

/// An entry of the kernel's TCP table on local port `port`. Where a plain
/// bind does not conflict with TIME_WAIT (Windows: `sys::BIND_IGNORES_TIME_WAIT`)
/// the probes cannot see an earlier test's TIME_WAIT on a port, and the test
/// would meet it; there a lease reads the table too, as the engine does for
/// ports connect() picks.
fn in_table(port: u16) -> io::Result<Option<crate::sys::TcpEntry>> {
    Ok(crate::sys::tcp_table()?
        .into_iter()
        .find(|e| e.local.port() == port))
}

/// Binds wildcard probes with no reuse options: a wildcard bind without
/// options conflicts with anything on the port (listening, connected, TIME_WAIT),
/// so success on all four means the port is clear.
fn probe() -> io::Result<Option<u16>> {
    let v6 = have_ipv6();
    let first_domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let first = Socket::new(first_domain, Type::STREAM, Some(Protocol::TCP))?;
    let any: SocketAddr = if v6 {
        first.set_only_v6(true)?;
        (Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    };
    first.bind(&any.into())?;
    let port = first
        .local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| io::Error::other("probe has no port"))?;
    Ok(probe_at(port, Some(first))?.then_some(port))
}

/// Binds plain wildcard probes on `port`: TCP and UDP, IPv4 and (where the
/// machine has it) IPv6 only, `first` already holding one of them. Whether
/// all bound; a bind refused for lack of privilege is an error.
fn probe_at(port: u16, first: Option<Socket>) -> io::Result<bool> {
    let v6 = have_ipv6();
    let mut holders: Vec<Socket> = first.into_iter().collect();
    let mut plan: Vec<(Domain, Type, Protocol, SocketAddr)> = Vec::new();
    if v6 || holders.is_empty() {
        plan.push((
            Domain::IPV4,
            Type::STREAM,
            Protocol::TCP,
            (Ipv4Addr::UNSPECIFIED, port).into(),
        ));
    }
    plan.extend([(
        Domain::IPV4,
        Type::DGRAM,
        Protocol::UDP,
        (Ipv4Addr::UNSPECIFIED, port).into(),
    )]);
    if v6 {
        plan.push((
            Domain::IPV6,
            Type::DGRAM,
            Protocol::UDP,
            (Ipv6Addr::UNSPECIFIED, port).into(),
        ));
        if holders.is_empty() {
            plan.push((
                Domain::IPV6,
                Type::STREAM,
                Protocol::TCP,
                (Ipv6Addr::UNSPECIFIED, port).into(),
            ));
        }
    }
    for (domain, ty, proto, addr) in plan {
        let s = Socket::new(domain, ty, Some(proto))?;
        if domain == Domain::IPV6 {
            s.set_only_v6(true)?;
        }
        match s.bind(&addr.into()) {
            Ok(()) => holders.push(s),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(e),
            Err(_) => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collisions_disturb_the_holder() {
        let book = Arc::new(PortBook::new());
        let mut a = book.begin(0);
        let mut b = book.begin(0);
        a.claim(4000).unwrap();
        assert!(b.claim(4000).is_err());
        assert!(a.disturbed());
        assert!(!b.disturbed());
        // Another scope (namespace) does not collide.
        let mut c = book.begin(7);
        c.claim(4000).unwrap();
        drop(a);
        b.claim(4000).unwrap();
    }

    #[test]
    fn abandoned_ports_stay_taken() {
        let book = Arc::new(PortBook::new());
        let mut a = book.begin(0);
        a.claim(4001).unwrap();
        book.abandon(0, a.attempt);
        drop(a);
        let mut b = book.begin(0);
        assert!(b.claim(4001).is_err());
    }

    /// What a lease on Windows looks for: an earlier connection's TIME_WAIT
    /// entry on the port, in the kernel's own table.
    #[test]
    fn a_time_wait_entry_is_found_in_the_table() {
        if !crate::sys::CHEAP_TCP_TABLE {
            return; // netstat: covered by its parser's fixtures instead
        }
        use std::io::Read;
        let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        l.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        l.listen(1).unwrap();
        let c = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        c.connect(&l.local_addr().unwrap()).unwrap();
        let port = c.local_addr().unwrap().as_socket().unwrap().port();
        let (mut a, _) = l.accept().unwrap();
        // The client closes first, so its end goes to TIME_WAIT once the
        // server's FIN arrives.
        drop(c);
        let mut buf = [0u8; 1];
        assert_eq!(a.read(&mut buf).unwrap(), 0);
        drop(a);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let e = in_table(port).unwrap();
            if let Some(e) = &e
                && e.state == crate::outcome::TcpState::TimeWait
            {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "no TIME_WAIT on {port}: {e:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// `@p!low`: a port below the first unprivileged one, free in both
    /// families and protocols; where the harness may not bind there, the
    /// lease says so (a test using it is then unavailable, not failed).
    #[test]
    fn privileged_leases_are_low_and_free() {
        let book = Arc::new(PortBook::new());
        let mut c = book.begin(0);
        match lease_named(&mut c, "p!low") {
            Ok(p) => {
                assert!(p < crate::sys::first_unprivileged_port(), "{p}");
                assert!(c.holds(p));
                for ty in [Type::STREAM, Type::DGRAM] {
                    let s = Socket::new(Domain::IPV4, ty, None).unwrap();
                    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, p)).into())
                        .unwrap();
                }
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}"),
        }
    }

    #[test]
    fn leased_ports_are_free_everywhere() {
        let book = Arc::new(PortBook::new());
        let mut c = book.begin(0);
        let p = lease(&mut c).unwrap();
        assert!(c.holds(p));
        // Free for a plain wildcard bind in both protocols.
        for ty in [Type::STREAM, Type::DGRAM] {
            let s = Socket::new(Domain::IPV4, ty, None).unwrap();
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, p)).into())
                .unwrap();
        }
    }
}
