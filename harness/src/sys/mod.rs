//! The OS layer: everything that differs between operating systems, chosen here
//! and nowhere else.
//!
//! Every backend (`unix`, `windows`) provides the same items:
//!
//! - `os_family()`, `os_release()`, `os_detail()`: what we run on. Wine is
//!   detected at run time and reported as its own family, never as Windows.
//! - `error_name(raw)`: the portable name of an OS error code (errno, WSA code).
//! - `set_special(sock, opt, on)` / `get_special(sock, opt)`: the options
//!   socket2 does not cover on every OS (SO_REUSEPORT, SO_REUSEPORT_LB,
//!   SO_EXCLUSIVEADDRUSE, SO_EXCLBIND). An option the OS lacks gives
//!   `io::ErrorKind::Unsupported`.
//! - `close(sock)`: close and return what close(2)/closesocket said (socket2's
//!   drop ignores it, but linger makes it meaningful).
//! - `tcp_table()`: the kernel's own TCP socket table (/proc/net/tcp on Linux,
//!   the IP Helper API on Windows, netstat on the BSDs and illumos).
//! - `wait_readable` / `wait_writable`: poll with a timeout.
//! - `unacked(sock, sent)`: the bytes a TCP socket wrote that its peer has
//!   not acknowledged (`Unsupported` where the OS keeps no such count), and
//!   `connection_failed(sock)`: whether a reset ended the connection; the
//!   `acked` step waits on both.
//! - `isolate_thread()`: put the calling thread in a network namespace of its
//!   own where the OS and privileges allow (Linux), else share the host's.
//! - `current_cpu()` / `leave_cpu(cpu)`: the calling thread's core, and
//!   moving the calling thread off a core once (Linux and Android; `None`
//!   elsewhere): how `par::spawn` starts a thread beside its starter.
//! - `is_privileged()`: root / Administrator.
//! - `exit_now(code)`: end the process at once, output already flushed
//!   (Unix: `_exit`, skipping exit handlers; Windows: `process::exit`).
//! - `stack_settings()`: the settings of the calling thread's network stack
//!   that change outcomes (`settings::KNOWN` lists them with their defaults).
//! - actor support: `spawn_agent` (a helper process with piped stdin/stdout
//!   and a `DescriptorChannel` for sockets), `send_socket` / `receive_socket`
//!   (SCM_RIGHTS; WSADuplicateSocket blobs), `become_user` (drop to another
//!   uid for good, with proof), `die_with_parent`, `kill_pid` and
//!   `kill_helper` (with the helper's process group on Unix),
//!   `end_group_if_exited`,
//!   `open_sockets` (how many sockets a helper holds, where the OS says), and the
//!   `ACTORS` / `OTHER_USER` capabilities.
//!
//! Portable socket calls go straight through socket2 in `exec`.

use std::io;
use std::net::SocketAddr;

use crate::outcome::TcpState;

#[cfg(unix)]
#[path = "unix/mod.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;
#[cfg(not(any(unix, windows)))]
compile_error!("sockspec runs on Unix and Windows");

pub use imp::*;

/// Not asked here: only Linux was seen to queue a new thread behind its
/// starter (see `par::spawn`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn current_cpu() -> Option<usize> {
    None
}

/// Never called here: [`current_cpu`] knows no core.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn leave_cpu(_cpu: usize) -> Option<usize> {
    None
}

mod netstat_text;
pub mod settings;
// Used where the TCP table is the host's (Windows, netstat); Linux reads
// each worker's namespace, and tests it only.
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
mod shared_read;
pub use netstat_text::parse_netstat;

/// The interface IPv6 multicast cases use: one end of a veth pair in the
/// worker's own network namespace (Linux), since IPv6 multicast does not work
/// on `lo`.
pub const V6_MCAST_IFACE: &str = "sockspec0";

/// One row of the kernel's TCP table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEntry {
    /// The entry's local address and port.
    pub local: SocketAddr,
    /// The entry's remote address and port (unspecified for a listener).
    pub remote: SocketAddr,
    /// The connection's state.
    pub state: TcpState,
}

/// How the calling thread is isolated from the rest of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A network namespace of our own: nothing else on the machine shares its ports.
    Netns,
    /// The host's network stack, shared with everything else.
    Host,
}

/// The uid of the account named `nobody` on this machine: 65534 on Linux,
/// 4294967294 (-2) on macOS, 32767 on OpenBSD; `None` where there is none.
#[cfg(unix)]
pub fn nobody_uid() -> Option<u32> {
    nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// Windows has no `nobody`: actors as another user need that user's
/// credentials there.
#[cfg(not(unix))]
pub fn nobody_uid() -> Option<u32> {
    None
}

/// Whether workers should get network namespaces of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationMode {
    /// A namespace where possible (Linux, with privilege), else the host.
    Auto,
    /// A namespace, or fail.
    Netns,
    /// Always the host's network stack.
    Host,
}

static MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Chooses the isolation for threads that isolate themselves from now on.
pub fn set_isolation_mode(mode: IsolationMode) {
    MODE.store(mode as u8, std::sync::atomic::Ordering::SeqCst);
}

/// The isolation mode chosen for threads that isolate themselves from now on (`--isolation`).
pub fn isolation_mode() -> IsolationMode {
    match MODE.load(std::sync::atomic::Ordering::SeqCst) {
        1 => IsolationMode::Netns,
        2 => IsolationMode::Host,
        _ => IsolationMode::Auto,
    }
}

/// Closing sockets and starting child processes exclude each other. A child
/// gets a copy of every descriptor at fork and holds it until exec drops the
/// close-on-exec ones, so a socket closed in that window stays open: its port
/// stays bound, its linger and reset do not happen yet. Tests in other
/// workers would see that as the kernel's doing.
///
/// Closes never wait for a child that is only waiting to start, just for one
/// that is starting: a close that lingers for a second (SO_LINGER {1,1} with
/// unsent data) would otherwise stop every other worker's closes behind the
/// waiting child too (std's RwLock lets no reader in while a writer waits).
static CHILD_GATE: ChildGate = ChildGate {
    state: std::sync::Mutex::new(GateState {
        closing: 0,
        spawning: false,
        waiting: 0,
    }),
    changed: std::sync::Condvar::new(),
};

struct ChildGate {
    state: std::sync::Mutex<GateState>,
    changed: std::sync::Condvar,
}

struct GateState {
    /// Closes under way.
    closing: usize,
    /// A child between fork and exec.
    spawning: bool,
    /// Threads waiting at the gate.
    waiting: usize,
}

impl ChildGate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `ready`, then applies `enter`; the guard applies `leave`.
    fn pass(
        &self,
        ready: fn(&GateState) -> bool,
        enter: fn(&mut GateState),
        leave: fn(&mut GateState),
    ) -> GatePass<'_> {
        let mut st = self.state();
        st.waiting += 1;
        while !ready(&st) {
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiting -= 1;
        enter(&mut st);
        GatePass { gate: self, leave }
    }
}

/// Leaves the gate when dropped, also when the closure panics.
struct GatePass<'a> {
    gate: &'a ChildGate,
    leave: fn(&mut GateState),
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        (self.leave)(&mut self.gate.state());
        self.gate.changed.notify_all();
    }
}

/// Runs `f`, which may close sockets, while no child process is starting.
pub fn closing<T>(f: impl FnOnce() -> T) -> T {
    let _pass = CHILD_GATE.pass(|s| !s.spawning, |s| s.closing += 1, |s| s.closing -= 1);
    let _here = ClosingHere::enter();
    f()
}

/// Counts this thread's `closing` passes while it holds one, also when the
/// closure panics.
struct ClosingHere;

impl ClosingHere {
    fn enter() -> ClosingHere {
        CLOSING_HERE.with(|n| n.set(n.get() + 1));
        ClosingHere
    }
}

impl Drop for ClosingHere {
    fn drop(&mut self) {
        CLOSING_HERE.with(|n| n.set(n.get() - 1));
    }
}

thread_local! {
    // How many `closing` passes this thread holds: a child started inside
    // one would wait for the close that waits for it, until the deadline.
    static CLOSING_HERE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Starts a child process (`f` returns once it has exec'd, as
/// `Command::spawn` does) while no socket is being closed.
pub fn spawning<T>(f: impl FnOnce() -> T) -> T {
    debug_assert_eq!(
        CLOSING_HERE.with(|n| n.get()),
        0,
        "a child started behind this thread's own close would wait for it forever"
    );
    let _pass = CHILD_GATE.pass(
        |s| !s.spawning && s.closing == 0,
        |s| s.spawning = true,
        |s| s.spawning = false,
    );
    f()
}

/// Whether a new descriptor becomes close-on-exec only in a second call.
/// socket2 creates sockets with SOCK_CLOEXEC and accepts with accept4 where
/// the system has them, but on Apple systems it calls socket(2) / accept(2)
/// and then fcntl(FD_CLOEXEC) (socket2 0.6 src/socket.rs `Socket::new` →
/// `set_common_flags`, `Socket::accept` → `set_common_accept_flags`;
/// <https://github.com/rust-lang/socket2/blob/master/src/socket.rs>). A child
/// forked between the two calls keeps the socket, and its port, until it
/// execs.
const CLOEXEC_IS_A_SECOND_CALL: bool = cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos"
));

/// `Socket::new`, never leaking into a child that starts meanwhile: behind
/// the child gate where close-on-exec is a second call.
pub fn new_socket(
    domain: socket2::Domain,
    ty: socket2::Type,
    protocol: Option<socket2::Protocol>,
) -> io::Result<socket2::Socket> {
    if CLOEXEC_IS_A_SECOND_CALL {
        closing(|| socket2::Socket::new(domain, ty, protocol))
    } else {
        socket2::Socket::new(domain, ty, protocol)
    }
}

/// `Socket::accept`, like [`new_socket`]. Callers wait for a connection
/// first, so that the gate is not held while accept blocks.
pub fn accept(sock: &socket2::Socket) -> io::Result<(socket2::Socket, socket2::SockAddr)> {
    if CLOEXEC_IS_A_SECOND_CALL {
        closing(|| sock.accept())
    } else {
        sock.accept()
    }
}

/// `Command::output`, with the start behind the gate.
pub fn output(cmd: &mut std::process::Command) -> io::Result<std::process::Output> {
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn_child(cmd)?.wait_with_output()
}

/// `Command::spawn` behind the gate, which opens only once the child has
/// given up the descriptors it got at fork. `spawn` returns when exec has
/// closed std's close-on-exec error pipe, and exec closes descriptors in
/// order, so a socket numbered above the pipe may still be the child's
/// ([`imp::exec_settled`]).
pub fn spawn_child(cmd: &mut std::process::Command) -> io::Result<std::process::Child> {
    spawn_child_with(cmd, || Ok(|| ()))
}

/// [`spawn_child`] with `prepare` run behind the gate first; what it returns
/// runs once the child has started (or failed to), still behind the gate. No
/// other child starts in between: a descriptor made inheritable there and
/// closed after reaches this child only.
pub fn spawn_child_with<A: FnOnce()>(
    cmd: &mut std::process::Command,
    prepare: impl FnOnce() -> io::Result<A>,
) -> io::Result<std::process::Child> {
    spawning(|| {
        let after = prepare()?;
        let before = imp::exec_marker();
        let child = cmd.spawn();
        if let Ok(c) = &child {
            imp::exec_settled(c.id(), before.as_deref());
        }
        after();
        child
    })
}

/// Whether 127.0.0.2 is an address of this machine (in the calling thread's
/// namespace). Linux and Windows route all of 127.0.0.0/8 to loopback; macOS
/// and the BSDs have only the addresses configured on lo0
/// (<https://man.freebsd.org/cgi/man.cgi?query=lo&sektion=4>).
pub fn second_loopback() -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 2], 0));
    // Created and closed behind the gate: a child must not keep the port.
    closing(|| {
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .and_then(|s| s.bind(&addr.into()))
    })
    .map_err(|e| {
        format!(
            "127.0.0.2 is not an address of this machine ({e}); add it to loopback first \
                 (macOS, BSD: `sudo ifconfig lo0 alias 127.0.0.2 up`)"
        )
    })
}

/// The first port a process without privilege may bind: 1024, or on Linux
/// `net.ipv4.ip_unprivileged_port_start` as the calling thread's network
/// namespace has it, when lower (ip(7)).
pub fn first_unprivileged_port() -> u16 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(s) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        && let Ok(n) = s.trim().parse::<u32>()
    {
        return n.min(1024) as u16;
    }
    1024
}

/// Why a need that only this machine can answer, at run time, is unmet here;
/// `None` when it is met or is not such a need. Asked before a test runs so
/// that `cargo test` ignores the trial with the reason rather than failing it.
/// Privilege alone does not settle these: GitHub's Windows runners run as
/// Administrator (so `Root` is met), yet an actor cannot run as another user
/// there.
pub fn unmet_need(need: &crate::model::Need) -> Option<String> {
    use crate::model::Need;
    static LOOPBACK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    match need {
        Need::OtherUser if !OTHER_USER => Some(
            "sockspec runs an actor as another user only on Unix (setuid); on Windows that \
             needs another account's credentials"
                .into(),
        ),
        Need::SecondLoopback => LOOPBACK.get_or_init(second_loopback).clone().err(),
        _ => None,
    }
}

/// Normalises IPv4-mapped IPv6 addresses to IPv4, as kernels report dual-stack
/// sockets under either form.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Maps an `io::Error` to an outcome-friendly pair (portable name, raw code).
pub fn describe(e: &io::Error) -> (crate::outcome::Outcome, Option<i32>) {
    use crate::outcome::Outcome;
    if e.kind() == io::ErrorKind::Unsupported && e.raw_os_error().is_none() {
        return (Outcome::Unsupported, None);
    }
    match e.raw_os_error() {
        Some(raw) => (Outcome::Error(error_name(raw)), Some(raw)),
        None if e.kind() == io::ErrorKind::TimedOut => (Outcome::Timeout, None),
        None => (Outcome::Error(crate::outcome::ErrName::Other(-1)), None),
    }
}

pub(crate) fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what} does not exist on this OS"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_and_spawning_exclude_each_other() {
        spawning(|| {
            let st = CHILD_GATE.state();
            assert!(st.spawning && st.closing == 0, "a close could run now");
        });
        closing(|| {
            let st = CHILD_GATE.state();
            assert!(!st.spawning && st.closing >= 1, "a child could start now");
        });
    }

    /// A close under way keeps a child from starting, but not another close:
    /// a lingering close must not stop every worker's closes.
    #[test]
    fn a_waiting_child_does_not_hold_up_closes() {
        use std::sync::mpsc;
        let (in_close, closed) = (mpsc::channel(), mpsc::channel::<()>());
        let (entered, release) = (in_close.0, closed.1);
        let long = std::thread::spawn(move || {
            closing(|| {
                entered.send(()).unwrap();
                release.recv().unwrap();
            })
        });
        in_close.1.recv().unwrap();
        let (started_tx, started) = mpsc::channel();
        let child = std::thread::spawn(move || spawning(|| started_tx.send(()).unwrap()));
        // Wait until the child is queued at the gate (it cannot pass).
        while CHILD_GATE.state().waiting == 0 {
            std::thread::yield_now();
        }
        assert!(
            started.try_recv().is_err(),
            "a child started during a close"
        );
        // Another close passes at once although a child waits.
        closing(|| ());
        closed.0.send(()).unwrap();
        long.join().unwrap();
        child.join().unwrap();
        started.recv().unwrap();
    }

    /// A close that lingers (SO_LINGER {1, 1} with unsent data) lets a child
    /// start while it lingers, once its descriptor is out of the table, and
    /// still takes its second. With the gate held for the whole close, the
    /// child would start only after the close returned. (A child asked for
    /// before the close began starts at once either way.)
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_starts_while_a_close_lingers() {
        use socket2::{Domain, Protocol, SockAddr, Type};
        use std::io::Write;
        use std::time::{Duration, Instant};
        let l = new_socket(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        l.bind(&SockAddr::from(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))
        .unwrap();
        l.listen(1).unwrap();
        let mut c = new_socket(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        c.connect(&l.local_addr().unwrap()).unwrap();
        let _peer = l.accept().unwrap(); // never reads: the data stays unsent
        c.set_nonblocking(true).unwrap();
        while c.write(&[0u8; 65536]).is_ok() {}
        c.set_nonblocking(false).unwrap();
        c.set_linger(Some(Duration::from_secs(1))).unwrap();
        let started = Instant::now();
        let closer = std::thread::spawn(move || {
            let r = close(c);
            (r, Instant::now())
        });
        // Well inside the second the close lingers.
        std::thread::sleep(Duration::from_millis(200));
        let mut cmd = std::process::Command::new("true");
        let child = spawning(|| cmd.spawn()).unwrap();
        let spawned = Instant::now();
        let (r, closed) = closer.join().unwrap();
        drop(child.wait_with_output());
        assert!(r.is_ok(), "the close failed: {r:?}");
        let took = closed.duration_since(started);
        assert!(
            took >= Duration::from_millis(900),
            "the close did not linger: {took:?}"
        );
        assert!(
            spawned < closed,
            "the child started only after the close returned ({:?} after it began)",
            spawned.duration_since(started)
        );
    }

    /// New and accepted sockets are close-on-exec as they come back, so no
    /// child started later keeps them.
    #[cfg(unix)]
    #[test]
    fn new_and_accepted_sockets_are_close_on_exec() {
        use socket2::{Domain, Protocol, Type};
        use std::os::fd::AsRawFd;
        let cloexec = |s: &socket2::Socket| {
            // SAFETY: F_GETFD on a descriptor we own.
            let flags = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFD) };
            flags >= 0 && flags & libc::FD_CLOEXEC != 0
        };
        let l = new_socket(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        assert!(cloexec(&l));
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(1).unwrap();
        let c = new_socket(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        c.connect(&l.local_addr().unwrap()).unwrap();
        let (a, _) = accept(&l).unwrap();
        assert!(cloexec(&a));
    }

    #[test]
    fn mapped_addresses_are_canonical() {
        let a: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert_eq!(canonical(a), "127.0.0.1:5".parse().unwrap());
        let b: SocketAddr = "[::1]:5".parse().unwrap();
        assert_eq!(canonical(b), b);
    }
}
