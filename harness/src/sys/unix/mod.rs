//! Unix backend: Linux, Android, macOS/iOS, FreeBSD, NetBSD, OpenBSD, illumos.

use std::io;
use std::os::fd::{AsFd, IntoRawFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use socket2::Socket;

use crate::model::{Opt, OsFamily};
use crate::outcome::ErrName;

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "linux.rs"]
mod os;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[path = "netstat.rs"]
mod os;

mod agent;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod netlink;

pub use agent::{
    DescriptorChannel, agent_channel, become_user, die_with_parent, end_group_if_exited,
    kill_helper, kill_pid, open_sockets_here, reap_pid, receive_socket, send_socket, spawn_agent,
};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use os::bring_up_loopback;
pub use os::{BIND_IGNORES_TIME_WAIT, CHEAP_TCP_TABLE, isolate_thread, stack_settings, tcp_table};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use os::{current_cpu, leave_cpu};

/// Whether this backend can run steps in helper processes.
pub const ACTORS: bool = true;

/// Whether an actor can run as another user (setuid, as root).
pub const OTHER_USER: bool = true;

/// The OS family sockspec was compiled for.
pub fn os_family() -> OsFamily {
    if cfg!(any(target_os = "macos", target_os = "ios")) {
        OsFamily::Macos
    } else if cfg!(target_os = "freebsd") {
        OsFamily::Freebsd
    } else if cfg!(target_os = "openbsd") {
        OsFamily::Openbsd
    } else if cfg!(target_os = "netbsd") {
        OsFamily::Netbsd
    } else if cfg!(any(target_os = "illumos", target_os = "solaris")) {
        OsFamily::Illumos
    } else {
        OsFamily::Linux
    }
}

/// The kernel release (`uname -r`). Where a distribution's release is an ABI
/// name that hides the upstream version (Debian's `6.1.0-56-cloud-amd64` is
/// 6.1.192), the upstream version leads: `6.1.192 (6.1.0-56-cloud-amd64)`,
/// so that version ranges compare what kernel developers mean.
pub fn os_release() -> String {
    let Ok(u) = nix::sys::utsname::uname() else {
        return "unknown".into();
    };
    let release = u.release().to_string_lossy().into_owned();
    let signature = std::fs::read_to_string("/proc/version_signature").unwrap_or_default();
    match upstream_version(&u.version().to_string_lossy(), &signature) {
        Some(up)
            if crate::version::version_numbers(&up)
                != crate::version::version_numbers(&release) =>
        {
            format!("{up} ({release})")
        }
        _ => release,
    }
}

/// The upstream kernel version a distribution states: Debian in `uname -v`
/// ("... Debian 6.1.192-2 ..."), Ubuntu in /proc/version_signature
/// ("Ubuntu 6.8.0-45.45-generic 6.8.12").
fn upstream_version(uname_v: &str, signature: &str) -> Option<String> {
    let numeric = |s: &str| {
        let v: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        (v.matches('.').count() >= 2).then_some(v)
    };
    if let Some(rest) = uname_v.split("Debian ").nth(1) {
        return numeric(rest);
    }
    signature.split_whitespace().last().and_then(numeric)
}

/// A longer description: the system name and version string.
pub fn os_detail() -> String {
    nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy(),
                u.version().to_string_lossy()
            )
        })
        .unwrap_or_default()
}

/// Ends the process with `code` at once: no atexit handlers, among them,
/// on Linux, mimalloc's, which gives its free pages back to the OS one
/// range at a time (~40 madvise calls after `check`, ~0.3 ms) just before
/// the OS takes them all. Everything written must be flushed already; what
/// an exit handler would write (mimalloc's `MIMALLOC_SHOW_STATS`, coverage
/// profiles) is not.
/// <https://man7.org/linux/man-pages/man2/_exit.2.html>
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the process; nothing of it is used after.
    unsafe { libc::_exit(code) }
}

/// Whether the process runs as root (effective uid 0).
pub fn is_privileged() -> bool {
    nix::unistd::geteuid().is_root()
}

/// errno → portable name. A table rather than a `match` because several
/// constants coincide on some systems (EAGAIN/EWOULDBLOCK, ENOTSUP/EOPNOTSUPP).
pub fn error_name(raw: i32) -> ErrName {
    use ErrName::*;
    let table: &[(i32, ErrName)] = &[
        (libc::EACCES, EACCES),
        (libc::EADDRINUSE, EADDRINUSE),
        (libc::EADDRNOTAVAIL, EADDRNOTAVAIL),
        (libc::EAFNOSUPPORT, EAFNOSUPPORT),
        (libc::EALREADY, EALREADY),
        (libc::EBADF, EBADF),
        (libc::ECONNABORTED, ECONNABORTED),
        (libc::ECONNREFUSED, ECONNREFUSED),
        (libc::ECONNRESET, ECONNRESET),
        (libc::EFAULT, EFAULT),
        (libc::EHOSTUNREACH, EHOSTUNREACH),
        (libc::EINPROGRESS, EINPROGRESS),
        (libc::EINTR, EINTR),
        (libc::EINVAL, EINVAL),
        (libc::EISCONN, EISCONN),
        (libc::EMFILE, EMFILE),
        (libc::EMSGSIZE, EMSGSIZE),
        (libc::ENETDOWN, ENETDOWN),
        (libc::ENETUNREACH, ENETUNREACH),
        (libc::ENOBUFS, ENOBUFS),
        (libc::ENODEV, ENODEV),
        (libc::ENOMEM, ENOMEM),
        (libc::ENOPROTOOPT, ENOPROTOOPT),
        (libc::ENOTCONN, ENOTCONN),
        (libc::ENOTSOCK, ENOTSOCK),
        (libc::EOPNOTSUPP, EOPNOTSUPP),
        (libc::ENOTSUP, EOPNOTSUPP),
        (libc::EPERM, EPERM),
        (libc::EPIPE, EPIPE),
        (libc::EPROTONOSUPPORT, EPROTONOSUPPORT),
        (libc::EPROTOTYPE, EPROTOTYPE),
        (libc::ESHUTDOWN, ESHUTDOWN),
        (libc::ETIMEDOUT, ETIMEDOUT),
        (libc::EWOULDBLOCK, EWOULDBLOCK),
        (libc::EAGAIN, EWOULDBLOCK),
    ];
    table
        .iter()
        .find(|(code, _)| *code == raw)
        .map(|(_, n)| *n)
        .unwrap_or(Other(raw))
}

/// Options whose availability differs between Unix systems.
pub fn set_special(sock: &Socket, opt: Opt, on: bool) -> io::Result<()> {
    match opt {
        #[cfg(not(any(target_os = "illumos", target_os = "solaris")))]
        Opt::ReusePort => sock.set_reuse_port(on),
        #[cfg(target_os = "freebsd")]
        Opt::ReusePortLb => sock.set_reuse_port_lb(on),
        // SO_EXCLBIND: getsockopt(3SOCKET), https://illumos.org/man/3SOCKET/setsockopt
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        Opt::ExclBind => setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_EXCLBIND, on as i32),
        _ => Err(super::unsupported(opt.c_name())),
    }
}

/// Reads an option of [`set_special`]'s (SO_REUSEPORT, SO_REUSEPORT_LB, SO_EXCLBIND) where this
/// system has it.
pub fn get_special(sock: &Socket, opt: Opt) -> io::Result<bool> {
    match opt {
        #[cfg(not(any(target_os = "illumos", target_os = "solaris")))]
        Opt::ReusePort => sock.reuse_port(),
        #[cfg(target_os = "freebsd")]
        Opt::ReusePortLb => sock.reuse_port_lb(),
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        Opt::ExclBind => getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_EXCLBIND).map(|v| v != 0),
        _ => Err(super::unsupported(opt.c_name())),
    }
}

/// IP_MULTICAST_ALL / IPV6_MULTICAST_ALL: Linux only (ip(7) since 2.6.31,
/// ipv6(7) since 4.20); every other system delivers a group only to sockets
/// that joined it, and has no such option.
pub fn set_multicast_all(sock: &Socket, family: crate::model::Family, on: bool) -> io::Result<()> {
    let _ = (sock, family, on);
    #[cfg(target_os = "linux")]
    return match family {
        crate::model::Family::V4 => sock.set_multicast_all_v4(on),
        crate::model::Family::V6 => sock.set_multicast_all_v6(on),
    };
    #[allow(unreachable_code)]
    Err(super::unsupported(Opt::MulticastAll.c_name()))
}

/// Whether IP_MULTICAST_ALL / IPV6_MULTICAST_ALL is on for the socket (Linux only; elsewhere
/// unsupported).
pub fn multicast_all(sock: &Socket, family: crate::model::Family) -> io::Result<bool> {
    let _ = (sock, family);
    #[cfg(target_os = "linux")]
    return match family {
        crate::model::Family::V4 => sock.multicast_all_v4(),
        crate::model::Family::V6 => sock.multicast_all_v6(),
    };
    #[allow(unreachable_code)]
    Err(super::unsupported(Opt::MulticastAll.c_name()))
}

/// Ties a socket to one interface: SO_BINDTODEVICE by name (Linux, socket(7)),
/// IP_BOUND_IF / IPV6_BOUND_IF by index (macOS, illumos).
pub fn bind_device(
    sock: &Socket,
    family: crate::model::Family,
    opt: Opt,
    iface: &str,
) -> io::Result<()> {
    let _ = (sock, family, iface);
    match opt {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Opt::BindToDevice => sock.bind_device(Some(iface.as_bytes())),
        #[cfg(any(
            target_os = "macos",
            target_os = "ios",
            target_os = "illumos",
            target_os = "solaris"
        ))]
        Opt::BoundIf => {
            let index = std::num::NonZeroU32::new(if_index(iface)?);
            match family {
                crate::model::Family::V4 => sock.bind_device_by_index_v4(index),
                crate::model::Family::V6 => sock.bind_device_by_index_v6(index),
            }
        }
        _ => Err(super::unsupported(opt.c_name())),
    }
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
fn setsockopt_int(sock: &Socket, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(any(target_os = "illumos", target_os = "solaris", target_vendor = "apple"))]
fn getsockopt_int(sock: &Socket, level: i32, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: a valid fd, and `v`/`len` describe a writable int.
    let r = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            level,
            name,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What identifies a child forked by this thread before it execs (Linux:
/// this thread's name, which the child keeps until exec renames it).
pub fn exec_marker() -> Option<String> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return std::fs::read_to_string("/proc/thread-self/comm").ok();
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    None
}

/// How many sockets process `pid` has open (Linux: its descriptors that
/// link to `socket:[inode]` in /proc); `None` where that cannot be read.
/// A helper kept for another test must hold no more than when it started.
pub fn open_sockets(pid: u32) -> Option<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        let mut n = 0;
        for e in dir {
            let link = std::fs::read_link(e.ok()?.path()).ok()?;
            n += usize::from(link.as_os_str().as_encoded_bytes().starts_with(b"socket:"));
        }
        Some(n)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = pid;
        None
    }
}

/// Waits until child `pid` has closed the descriptors it got at fork. On
/// Linux exec renames the process after its close-on-exec pass
/// (`begin_new_exec` in fs/exec.c: `do_close_on_exec`, then
/// `__set_task_comm`), so a name other than the forking thread's (`before`)
/// says it is done. A child that exits, or that cannot be read, ends the
/// wait; so do two seconds, for a program named like the forking thread.
/// Elsewhere there is no such sign, and `spawn` returning has to do.
pub fn exec_settled(pid: u32, before: Option<&str>) {
    let Some(before) = before else { return };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let comm = format!("/proc/{pid}/comm");
    while std::fs::read_to_string(&comm).is_ok_and(|now| now == before)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// close(2), returning its result: with SO_LINGER set, close can block, fail
/// with EWOULDBLOCK (FreeBSD, `soclose`) or succeed after a timeout.
///
/// The close runs behind the child gate ([`crate::sys::closing`]). Only the
/// descriptor leaving the table needs it, and close(2) does that before it
/// lingers, so on Linux a close that may linger opens the gate as soon as
/// that has happened ([`os::close_lingering`]); elsewhere the gate is held
/// for the whole close.
pub fn close(sock: Socket) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if matches!(sock.linger(), Ok(Some(d)) if !d.is_zero()) && os::can_watch_close() {
        return os::close_lingering(sock.into_raw_fd());
    }
    let fd = sock.into_raw_fd();
    crate::sys::closing(|| close_fd(fd))
}

/// close(2) of a descriptor the caller owns and gives up.
fn close_fd(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: the caller owns `fd` (taken from a Socket) and closes it once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn poll_one(sock: &Socket, events: PollFlags, timeout: Duration) -> io::Result<bool> {
    Ok(poll_many(&[sock], events, timeout)?[0])
}

/// poll(2) on `socks` for `events`: which became ready.
fn poll_many(socks: &[&Socket], events: PollFlags, timeout: Duration) -> io::Result<Vec<bool>> {
    Ok(poll_revents(socks, events, timeout)?
        .into_iter()
        .map(|r| !r.is_empty())
        .collect())
}

/// poll(2) on `socks` for `events`, again after EINTR: what each reported.
fn poll_revents(
    socks: &[&Socket],
    events: PollFlags,
    timeout: Duration,
) -> io::Result<Vec<PollFlags>> {
    let mut fds: Vec<PollFd<'_>> = socks
        .iter()
        .map(|s| PollFd::new(s.as_fd(), events))
        .collect();
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    loop {
        match nix::poll::poll(&mut fds, ms) {
            Ok(_) => {
                return Ok(fds
                    .iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                    .collect());
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the socket becomes readable (or has an error or EOF) within `timeout`.
pub fn wait_readable(sock: &Socket, timeout: Duration) -> io::Result<bool> {
    poll_one(sock, PollFlags::POLLIN, timeout)
}

/// Whether the socket becomes writable (or has an error) within `timeout`.
pub fn wait_writable(sock: &Socket, timeout: Duration) -> io::Result<bool> {
    poll_one(sock, PollFlags::POLLOUT, timeout)
}

/// Which of `socks` are readable within `timeout` (all false on timeout).
pub fn poll_readable(socks: &[&Socket], timeout: Duration) -> io::Result<Vec<bool>> {
    poll_many(socks, PollFlags::POLLIN, timeout)
}

/// How many bytes the TCP socket has written that its peer has not
/// acknowledged (sent or not yet sent). The kernel counts them all here, so
/// `_sent` (what sockspec wrote, which Windows needs) is not used.
///
/// - Linux, Android: SIOCOUTQ, which is `write_seq - snd_una` (tcp_ioctl()
///   in https://github.com/torvalds/linux/blob/master/net/ipv4/tcp.c; tcp(7)
///   calls it "unsent data", but the count lasts until acknowledged).
/// - macOS, iOS: SO_NWRITE (`so_snd.sb_cc`, xnu's bsd/kern/uipc_socket.c);
///   FreeBSD, NetBSD: FIONWRITE (the send buffer's bytes, soo_ioctl() in
///   sys/kern/sys_socket.c). TCP keeps data in the send buffer until it is
///   acknowledged.
/// - After the socket's own shutdown of writing, Linux also counts its FIN
///   until that is acknowledged; the others count data only.
/// - Elsewhere (OpenBSD, illumos, DragonFly) there is no such count: `Unsupported`.
pub fn unacked(sock: &Socket, _sent: u64) -> io::Result<u64> {
    let _ = sock;
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd"
    ))]
    {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let request = libc::TIOCOUTQ; // = SIOCOUTQ
        #[cfg(any(target_os = "freebsd", target_os = "netbsd"))]
        let request = libc::FIONWRITE;
        let mut n: libc::c_int = 0;
        // SAFETY: a valid fd, and a request that writes one int to `n`.
        let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(sock), request, &mut n) };
        return if r == 0 {
            Ok(n.max(0) as u64)
        } else {
            Err(io::Error::last_os_error())
        };
    }
    #[cfg(target_vendor = "apple")]
    return getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_NWRITE).map(|n| n.max(0) as u64);
    #[allow(unreachable_code)]
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this OS does not say how many bytes a TCP socket has unacknowledged",
    ))
}

/// Whether the connection has failed under the socket (a reset): poll(2)
/// reports POLLERR, and the pending error stays for later calls. Not
/// POLLHUP, which Linux also reports once both directions are shut, by the
/// socket's own shutdown of writing and the peer's FIN (tcp_poll() in
/// net/ipv4/tcp.c).
pub fn connection_failed(sock: &Socket) -> io::Result<bool> {
    Ok(poll_revents(&[sock], PollFlags::POLLOUT, Duration::ZERO)?[0].contains(PollFlags::POLLERR))
}

/// Interface index of an interface name (IPv6 multicast).
pub fn if_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}

/// Sets up what IPv6 multicast needs in the calling thread's namespace, if it
/// can; the reason why not otherwise.
pub fn prepare_v6_multicast() -> Result<(), String> {
    os::prepare_v6_multicast()
}

#[cfg(test)]
mod tests {
    use super::upstream_version;

    #[test]
    fn distribution_versions() {
        let debian = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-10-01)";
        assert_eq!(upstream_version(debian, "").as_deref(), Some("6.1.192"));
        let ubuntu = "Ubuntu 6.8.0-45.45-generic 6.8.12\n";
        assert_eq!(
            upstream_version("#45-Ubuntu SMP", ubuntu).as_deref(),
            Some("6.8.12")
        );
        assert_eq!(upstream_version("#1 SMP PREEMPT_DYNAMIC @0", ""), None);
    }
}
