//! Linux specifics: the TCP table from procfs, and per-thread network namespaces.

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use crate::outcome::TcpState;
use crate::sys::{Isolation, IsolationMode, TcpEntry, canonical, isolation_mode};

/// Reading the table is cheap enough to do after every implicit bind
/// (0.2 ms in a worker's namespace).
pub const CHEAP_TCP_TABLE: bool = true;

/// A bind without options conflicts with a TIME_WAIT entry on the port,
/// so a lease's probe binds see it.
pub const BIND_IGNORES_TIME_WAIT: bool = false;

/// The calling thread's TCP table. `/proc/thread-self/net` (not `/proc/net`,
/// which follows the main thread) so a worker sees its own namespace:
/// <https://man7.org/linux/man-pages/man5/proc_pid_net.5.html>
pub fn tcp_table() -> io::Result<Vec<TcpEntry>> {
    let mut out = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        let path = format!("/proc/thread-self/net/{file}");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No IPv6 in this kernel: no tcp6 table.
            Err(e) if v6 && e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{path}: {e}"))),
        };
        out.extend(parse_proc_tcp(&text, v6));
    }
    Ok(out)
}

/// Parses /proc/net/tcp{,6}: addresses are the kernel's in-memory words
/// printed in hex (network order bytes read as host-order u32s), ports plain
/// hex; states are `include/net/tcp_states.h`.
pub fn parse_proc_tcp(text: &str, v6: bool) -> Vec<TcpEntry> {
    fn addr(s: &str, v6: bool) -> Option<SocketAddr> {
        let (ip, port) = s.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        let ip: IpAddr = if v6 {
            if ip.len() != 32 {
                return None;
            }
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok()?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
            Ipv6Addr::from(bytes).into()
        } else {
            Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.to_ne_bytes()).into()
        };
        Some(canonical(SocketAddr::new(ip, port)))
    }
    fn state(s: &str) -> Option<TcpState> {
        Some(match u8::from_str_radix(s, 16).ok()? {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 | 12 => TcpState::SynReceived,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Closed,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            _ => return None,
        })
    }
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            Some(TcpEntry {
                local: addr(cols.get(1)?, v6)?,
                remote: addr(cols.get(2)?, v6)?,
                state: state(cols.get(3)?)?,
            })
        })
        .collect()
}

thread_local! {
    // Already `const`: clippy on some targets (illumos, Android) asks anyway.
    #[allow(clippy::missing_const_for_thread_local)]
    static ISOLATION: Cell<Option<Isolation>> = const { Cell::new(None) };
}

/// The core the calling thread runs on, for [`leave_cpu`].
pub fn current_cpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
}

/// Moves the calling thread off the core `cpu` if it runs there and
/// another is allowed, then allows again the cores it was allowed (as
/// sched_getaffinity gives them: those online): only the start is forced.
/// The kernel migrates a running thread whose mask no longer holds its
/// core before the call returns (`__set_cpus_allowed_ptr`, kernel/sched/
/// core.c). <https://man7.org/linux/man-pages/man2/sched_setaffinity.2.html>
/// Gives the core it moved to; `None` if it did not move (it ran
/// elsewhere already, no other core is allowed, or a call failed).
pub fn leave_cpu(cpu: usize) -> Option<usize> {
    use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu, sched_setaffinity};
    if sched_getcpu().ok()? != cpu {
        return None;
    }
    let me = nix::unistd::Pid::from_raw(0);
    let allowed = sched_getaffinity(me).ok()?;
    let mut away = allowed;
    if away.unset(cpu).is_err() || away == CpuSet::new() {
        return None;
    }
    sched_setaffinity(me, &away).ok()?;
    let now = sched_getcpu().ok();
    // A refusal here (the cpuset changed meanwhile) leaves the thread on
    // the cores it was moved to: still allowed ones.
    let _ = sched_setaffinity(me, &allowed);
    now
}

/// Moves the calling thread into a network namespace of its own (once), with
/// `lo` up, when the mode asks for it and the privilege allows. Threads and
/// processes started from this thread inherit the namespace.
/// <https://man7.org/linux/man-pages/man2/unshare.2.html>
pub fn isolate_thread() -> Result<Isolation, String> {
    if let Some(iso) = ISOLATION.with(Cell::get) {
        return Ok(iso);
    }
    let mode = isolation_mode();
    let iso = match mode {
        IsolationMode::Host => Isolation::Host,
        IsolationMode::Auto | IsolationMode::Netns => match enter_netns() {
            Ok(()) => Isolation::Netns,
            Err(e) if mode == IsolationMode::Netns => {
                return Err(format!("cannot create a network namespace: {e}"));
            }
            Err(_) => Isolation::Host,
        },
    };
    ISOLATION.with(|c| c.set(Some(iso)));
    Ok(iso)
}

/// Two unshares: the first namespace only sets `tcp_child_ehash_entries`, so
/// the second (the worker's) gets a small TCP hash table of its own instead of
/// sharing the host's, which is sized by RAM and which every read of
/// /proc/net/tcp walks (10 ms here, 0.2 ms with 1024 buckets). Kernels before
/// 6.1 lack the setting and keep the shared table; nothing else changes.
/// https://docs.kernel.org/networking/ip-sysctl.html (tcp_child_ehash_entries)
fn enter_netns() -> io::Result<()> {
    let unshare =
        || nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from);
    unshare()?;
    let _ = std::fs::write("/proc/sys/net/ipv4/tcp_child_ehash_entries", "1024");
    unshare()?;
    // A namespace's TIME_WAIT limit defaults to half its hash table (512
    // here); past it the kernel silently skips TIME_WAIT ("time wait bucket
    // table overflow"), which `--repeat` runs reach within TIME_WAIT's 60 s.
    let _ = std::fs::write("/proc/sys/net/ipv4/tcp_max_tw_buckets", "262144");
    set_up("lo")
}

/// Brings `lo` up in the calling thread's namespace.
pub fn bring_up_loopback() -> io::Result<()> {
    set_up("lo")
}

/// Brings an interface up (SIOCGIFFLAGS / SIOCSIFFLAGS).
pub fn set_up(name: &str) -> io::Result<()> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    // SAFETY: valid fd and a properly sized ifreq for these requests.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

thread_local! {
    // Already `const`: clippy on some targets (illumos, Android) asks anyway.
    #[allow(clippy::missing_const_for_thread_local)]
    static V6_MCAST: std::cell::RefCell<Option<Result<(), String>>> = const { std::cell::RefCell::new(None) };
}

/// IPv6 multicast does not work on `lo`: give the worker's own namespace a
/// veth pair, up, with duplicate address detection off so the link-local
/// address is usable at once. Done once per thread; needs the namespace.
pub fn prepare_v6_multicast() -> Result<(), String> {
    if let Some(r) = V6_MCAST.with(|c| c.borrow().clone()) {
        return r;
    }
    let r = make_veth();
    V6_MCAST.with(|c| *c.borrow_mut() = Some(r.clone()));
    r
}

fn make_veth() -> Result<(), String> {
    if ISOLATION.with(Cell::get) != Some(Isolation::Netns) {
        return Err("IPv6 multicast needs a network namespace of our own (run as root)".into());
    }
    // /proc/sys/net follows the opener's namespace, which is this thread's.
    for scope in ["default", "all"] {
        let path = format!("/proc/sys/net/ipv6/conf/{scope}/accept_dad");
        std::fs::write(&path, "0").map_err(|e| format!("{path}: {e}"))?;
    }
    let peer = format!("{}p", crate::sys::V6_MCAST_IFACE);
    // rtnetlink, as `ip link add NAME up type veth peer name PEER` would
    // (no `ip` binary needed, and no child process started).
    super::netlink::create_veth(crate::sys::V6_MCAST_IFACE, &peer).map_err(|e| {
        format!(
            "making the veth pair {}/{peer} (rtnetlink RTM_NEWLINK): {e}",
            crate::sys::V6_MCAST_IFACE
        )
    })?;
    // NAME is up already (the ioctl is a no-op then); PEER comes up now.
    set_up(crate::sys::V6_MCAST_IFACE).map_err(|e| e.to_string())?;
    set_up(&peer).map_err(|e| e.to_string())?;
    wait_for_v6_multicast(crate::sys::V6_MCAST_IFACE)
}

/// The kernel configures IPv6 on a veth only once it sees the carrier (via
/// linkwatch, asynchronously): until the interface has a link-local address
/// and the ff00::/8 route, sends fail with ENETUNREACH.
fn wait_for_v6_multicast(iface: &str) -> Result<(), String> {
    // include/uapi/linux/if_addr.h
    const IFA_F_DADFAILED: u32 = 0x08;
    const IFA_F_TENTATIVE: u32 = 0x40;
    let ready = || -> bool {
        let has = |file: &str, pred: &dyn Fn(&str) -> bool| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.split_whitespace().last() == Some(iface) && pred(l))
            })
        };
        // Not just present: usable. With DAD off the address still starts
        // out tentative (0x40) until the addrconf work item runs, and a
        // send from a tentative address fails with EADDRNOTAVAIL (seen on a
        // loaded machine). Columns: address ifindex plen scope flags name.
        // https://elixir.bootlin.com/linux/v6.12/source/net/ipv6/addrconf.c (addrconf_dad_begin)
        has("if_inet6", &|l| {
            let flags = l
                .split_whitespace()
                .nth(4)
                .and_then(|f| u32::from_str_radix(f, 16).ok());
            l.starts_with("fe80")
                && flags.is_some_and(|f| f & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0)
        }) && has("ipv6_route", &|l| {
            l.starts_with("ff000000000000000000000000000000 08")
        })
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !ready() {
        if std::time::Instant::now() > until {
            return Err(format!(
                "{iface} got no usable IPv6 link-local address and multicast route within 3 s"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

/// Network-stack settings that change outcomes, as this thread's namespace
/// has them (every one is per namespace: a worker's namespace starts from the
/// kernel's defaults, not the host's values). Linux's TIME_WAIT length is
/// the compile-time TCP_TIMEWAIT_LEN (60 s), not a setting: not recorded.
pub fn stack_settings() -> std::collections::BTreeMap<String, String> {
    crate::sys::settings::known_keys(crate::model::OsFamily::Linux)
        .into_iter()
        .filter_map(|k| {
            let v = std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/"))).ok()?;
            Some((k.to_string(), crate::sys::settings::normal(&v)))
        })
        .collect()
}

/// Whether a closing thread can be watched ([`close_lingering`]): not on a
/// PREEMPT_RT kernel, whose spinlocks sleep before the descriptor is out.
pub fn can_watch_close() -> bool {
    !std::path::Path::new("/sys/kernel/realtime").exists()
}

/// Closes `fd`, a socket that may linger, behind the child gate only until
/// the descriptor has left the table. close(2) takes it out first thing
/// (`file_close_fd` in fs/file.c) and lingers afterwards, in the socket's
/// last release; so a closing thread found asleep inside close(2) has given
/// the descriptor up, and a child forked from then on gets no copy.
///
/// Nothing here names the descriptor while it closes: an fstat or fcntl
/// racing the close takes a reference of its own, and then its return is the
/// last release, which lingers in that thread while close(2) returns at once.
/// The closing thread is watched through /proc/self/task/TID/{syscall,stat}
/// instead: asleep (`S` or `D`, not a tracing stop) in the close syscall.
/// Without /proc the gate stays closed until close(2) returns.
/// <https://man7.org/linux/man-pages/man5/proc_pid_syscall.5.html>
pub fn close_lingering(fd: std::os::fd::RawFd) -> io::Result<()> {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let closer = crate::sys::closing(|| {
        let closer = std::thread::spawn(move || {
            let _ = tid_tx.send(nix::unistd::gettid().as_raw());
            super::close_fd(fd)
        });
        if let Ok(tid) = tid_rx.recv() {
            while !closer.is_finished() && !asleep_in_close(tid) {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
        closer
    });
    closer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the closing thread panicked")))
}

/// Whether thread `tid` of this process sleeps inside close(2).
fn asleep_in_close(tid: i32) -> bool {
    let task = format!("/proc/self/task/{tid}");
    // "NR args..." while blocked in a syscall, "running" or "-1 ..." otherwise.
    let in_close = std::fs::read_to_string(format!("{task}/syscall")).is_ok_and(|t| {
        t.split_whitespace()
            .next()
            .and_then(|n| n.parse::<libc::c_long>().ok())
            == Some(libc::SYS_close)
    });
    // The state follows the last ')' (the name may hold any character).
    let asleep = || {
        std::fs::read_to_string(format!("{task}/stat")).is_ok_and(|t| {
            t.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "S" || state == "D")
        })
    };
    in_close && asleep()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_leaves_the_core_it_is_told_to_and_keeps_its_allowed_cores() {
        use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity};
        let me = nix::unistd::Pid::from_raw(0);
        let before = sched_getaffinity(me).unwrap();
        // A sandbox that refuses setaffinity leaves threads where they are.
        if sched_setaffinity(me, &before).is_err() {
            eprintln!("skipped: sched_setaffinity is refused here");
            return;
        }
        let here = sched_getcpu().unwrap();
        let others = (0..nix::sched::CpuSet::count())
            .filter(|&c| c != here && before.is_set(c).unwrap())
            .count();
        match leave_cpu(here) {
            Some(now) => {
                assert_ne!(now, here);
                assert!(before.is_set(now).unwrap(), "moved to a core not allowed");
            }
            // Or the thread had moved on its own between the two calls.
            None => assert!(
                others == 0 || sched_getcpu().unwrap() != here,
                "stayed on {here} with {others} other cores allowed"
            ),
        }
        assert_eq!(sched_getaffinity(me).unwrap(), before);
    }

    #[test]
    fn parses_proc_rows() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:A000 0100007F:1F90 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n";
        let rows = parse_proc_tcp(v4, false);
        assert_eq!(rows.len(), 2);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].local, "127.0.0.1:8080".parse().unwrap());
            assert_eq!(rows[1].state, TcpState::TimeWait);
            assert_eq!(rows[1].remote, "127.0.0.1:8080".parse().unwrap());
        }
        let v6 = "  sl  local_address                         remote_address                        st\n\
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0\n\
   1: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 0\n";
        let rows = parse_proc_tcp(v6, true);
        if cfg!(target_endian = "little") {
            assert_eq!(rows[0].local, "[::1]:8080".parse().unwrap());
            // Mapped addresses come back as IPv4.
            assert_eq!(rows[1].local, "127.0.0.1:8081".parse().unwrap());
        }
    }
}
