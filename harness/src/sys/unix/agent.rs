//! Unix helper processes: spawning with a descriptor channel, passing
//! sockets with SCM_RIGHTS, dropping to another user.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use socket2::Socket;

/// The descriptor a helper finds its end of the channel at (the protocol's
/// place, docs/agent-protocol.md).
const AGENT_FD: RawFd = 3;

/// Where sockspec's own agent finds its end instead, when it is started
/// without a fork ([`spawn_agent`] with `fd3` false).
const AGENT_FD_ENV: &str = "SOCKSPEC_AGENT_FD";

/// A Unix socketpair end that carries sockets (SCM_RIGHTS) between processes.
pub struct DescriptorChannel(UnixStream);

/// Starts `program` as an agent: stdin and stdout piped for requests, our
/// socketpair's other end on descriptor 3 (`fd3`, the protocol's place), or
/// else at whatever number it has, named in `SOCKSPEC_AGENT_FD`; with `env`
/// added to our environment and `unset` taken out.
///
/// Putting it on 3 takes code between fork and exec, so std forks: it copies
/// the harness's page tables and write-protects its memory, and every worker
/// then faults on its next writes (under QEMU's TCG a builtin spawn took
/// 150 ms). Without it std uses posix_spawn (vfork). The channel is then
/// made inheritable only while this spawn holds the child gate, which lets no
/// other child start, and it is closed before the gate opens.
pub fn spawn_agent(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    unset: &[String],
    fd3: bool,
) -> io::Result<(Child, DescriptorChannel)> {
    // std makes the pair close-on-exec in a second call on Apple systems:
    // created behind the gate so that no other child starting now keeps it.
    let (ours, theirs) = crate::sys::closing(UnixStream::pair)?;
    let theirs_fd = theirs.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // A group of its own, which a kill reaches whole ([`kill_pid`]): a
        // helper run by a wrapper that does not exec it (`sh -c '...'`) is
        // the wrapper's child, and would outlive a kill of the wrapper alone.
        .process_group(0);
    for k in unset {
        cmd.env_remove(k);
    }
    if !fd3 {
        cmd.env(AGENT_FD_ENV, theirs_fd.to_string());
        let child = crate::sys::spawn_child_with(&mut cmd, || {
            set_cloexec(theirs_fd, false)?;
            Ok(move || drop(theirs))
        })?;
        return Ok((child, DescriptorChannel(ours)));
    }
    // Not inherited from an agent that starts a helper itself.
    cmd.env_remove(AGENT_FD_ENV);
    // SAFETY: dup2 is async-signal-safe; it runs in the child between fork
    // and exec, and clears FD_CLOEXEC on the copy so it survives exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(theirs_fd, AGENT_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            // Helpers in other runtimes die with the harness too (Linux,
            // FreeBSD).
            #[cfg(any(target_os = "linux", target_os = "android"))]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            #[cfg(target_os = "freebsd")]
            die_with_parent_freebsd();
            Ok(())
        });
    }
    let child = crate::sys::spawn_child(&mut cmd)?;
    drop(theirs);
    Ok((child, DescriptorChannel(ours)))
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD on a descriptor the caller holds open.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        let flags = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The agent's end of the channel: where `SOCKSPEC_AGENT_FD` says, else
/// descriptor 3 (inherited). It is taken over once per process: a second
/// call gets a dead channel, never a second owner of the same descriptor.
pub fn agent_channel() -> DescriptorChannel {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let first = !TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst);
    let fd = std::env::var(AGENT_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
        .filter(|fd| *fd > 2)
        .unwrap_or(AGENT_FD);
    // Started by hand (a protocol test), without the channel: a dead one.
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if (!first || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0)
        && let Ok((ours, _)) = UnixStream::pair()
    {
        return DescriptorChannel(ours);
    }
    if !first {
        panic!("the agent channel is taken once per process");
    }
    // SAFETY: the harness left our end of a socketpair open at `fd` across
    // exec; we take ownership of it once, here.
    let s = unsafe { UnixStream::from_raw_fd(fd) };
    // Keep it out of anything this agent might start.
    let _ = set_cloexec(fd, true);
    DescriptorChannel(s)
}

/// Sends a socket over the channel (SCM_RIGHTS). Nothing to carry in the
/// message itself on Unix.
pub fn send_socket(
    chan: &DescriptorChannel,
    sock: &Socket,
    _to_pid: u32,
) -> io::Result<Option<String>> {
    let fds = [sock.as_raw_fd()];
    sendmsg::<()>(
        chan.0.as_raw_fd(),
        &[IoSlice::new(&[0u8])],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    Ok(None)
}

/// Receives the socket sent with [`send_socket`]. The descriptor must be
/// close-on-exec before any child can start: MSG_CMSG_CLOEXEC sets it in the
/// receive itself where the system has it; elsewhere (Apple, illumos) the
/// receive and the fcntl run behind the child gate, once the message is there,
/// so that the gate is never held while waiting.
pub fn receive_socket(chan: &DescriptorChannel, _blob: Option<&str>) -> io::Result<Socket> {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    ))]
    let received = receive_fd(chan, MsgFlags::MSG_CMSG_CLOEXEC);
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd"
    )))]
    let received = wait_for_message(chan)
        .and_then(|()| crate::sys::closing(|| receive_fd(chan, MsgFlags::empty())));
    received
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
fn wait_for_message(chan: &DescriptorChannel) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: chan.0.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd; -1 waits as long as recvmsg would.
        if unsafe { libc::poll(&mut pfd, 1, -1) } >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn receive_fd(chan: &DescriptorChannel, flags: MsgFlags) -> io::Result<Socket> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(chan.0.as_raw_fd(), &mut iov, Some(&mut space), flags)
        .map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // FD_CLOEXEC again: a no-op where the receive set it.
            let _ = set_cloexec(*fd, true);
            // SAFETY: the kernel gave us a new descriptor that nothing else owns.
            return Ok(unsafe { Socket::from_raw_fd(*fd) });
        }
    }
    Err(io::Error::other("no descriptor arrived on the channel"))
}

/// Drops supplementary groups, gid and uid for good (as root, setuid sets
/// the real, effective and saved ids), then proves it: every id is `uid`, no
/// supplementary group is left, and setuid(0) fails.
/// <https://man7.org/linux/man-pages/man2/setuid.2.html>
pub fn become_user(uid: u32) -> Result<String, String> {
    let gid = uid;
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(format!("setgroups: {}", io::Error::last_os_error()));
        }
        if libc::setgid(gid as libc::gid_t) != 0 {
            return Err(format!("setgid({gid}): {}", io::Error::last_os_error()));
        }
        if libc::setuid(uid as libc::uid_t) != 0 {
            return Err(format!("setuid({uid}): {}", io::Error::last_os_error()));
        }
    }
    // SAFETY: getters without side effects; getgroups(0, NULL) counts.
    let (ruid, euid, rgid, egid, ngroups) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
            libc::getgroups(0, std::ptr::null_mut()),
        )
    };
    if [ruid, euid] != [uid as libc::uid_t; 2] || [rgid, egid] != [gid as libc::gid_t; 2] {
        return Err(format!(
            "ids did not change: uid={ruid} euid={euid} gid={rgid} egid={egid}"
        ));
    }
    // Some systems keep the effective gid in the group list; any other group is a failure.
    let mut groups = vec![0 as libc::gid_t; ngroups.max(0) as usize];
    // SAFETY: the buffer holds `ngroups` entries.
    let n = unsafe { libc::getgroups(ngroups, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    if groups.iter().any(|g| *g != gid as libc::gid_t) {
        return Err(format!("supplementary groups remain: {groups:?}"));
    }
    // SAFETY: an attempt that must fail.
    if unsafe { libc::setuid(0) } == 0 {
        return Err("setuid(0) succeeded: the drop was not irrevocable".into());
    }
    let back = io::Error::last_os_error();
    Ok(format!(
        "uid={ruid} euid={euid} gid={rgid} egid={egid} groups={groups:?}; setuid(0) refused: {back}"
    ))
}

/// Makes the agent die with the harness: the kernel sends SIGKILL when the
/// thread that started us ends (Linux) or the harness process does
/// (FreeBSD); elsewhere stdin's end of file ends the agent's loop.
pub fn die_with_parent(parent: u32) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: prctl with an integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    #[cfg(target_os = "freebsd")]
    die_with_parent_freebsd();
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    // SAFETY: getppid has no side effects; _exit ends the process at once.
    unsafe {
        if libc::getppid() as u32 != parent {
            // The harness is already gone.
            libc::_exit(3);
        }
    }
    let _ = parent;
}

/// SIGKILL when our parent process exits: FreeBSD's PR_SET_PDEATHSIG, kept
/// across exec (https://man.freebsd.org/cgi/man.cgi?query=procctl&sektion=2).
/// Async-signal-safe: one system call, for use between fork and exec.
#[cfg(target_os = "freebsd")]
fn die_with_parent_freebsd() {
    let mut sig: libc::c_int = libc::SIGKILL;
    // SAFETY: PROC_PDEATHSIG_CTL reads one int from `data`, for this process.
    unsafe {
        libc::procctl(
            libc::P_PID,
            0,
            libc::PROC_PDEATHSIG_CTL,
            (&raw mut sig).cast::<libc::c_void>(),
        );
    }
}

/// SIGKILL to a helper and every process of its group (each helper leads
/// one: [`spawn_agent`]), for helpers of an attempt that hung. The caller
/// knows `pid` unreaped, so no other group can have its id.
pub fn kill_pid(pid: u32) {
    let _ = kill_group(pid);
}

/// [`kill_pid`] for a helper the caller holds, with the error when neither
/// it nor its group could be signalled (not merely gone).
pub fn kill_helper(child: &mut Child) -> io::Result<()> {
    kill_group(child.id())
}

fn kill_group(pid: u32) -> io::Result<()> {
    use nix::sys::signal::{Signal, kill, killpg};
    let pid = nix::unistd::Pid::from_raw(pid as libc::pid_t);
    killpg(pid, Signal::SIGKILL)
        .or_else(|_| kill(pid, Signal::SIGKILL))
        .or_else(|e| match e {
            nix::errno::Errno::ESRCH => Ok(()),
            e => Err(io::Error::from(e)),
        })
}

/// Kills what is left of the group of a helper that has ended and is not
/// yet reaped: what a wrapper started, which would otherwise run on with the
/// helper's stdout. `Some(ended)` where waitid can look without reaping
/// (Linux, Android, FreeBSD), `None` elsewhere. A zombie keeps its pid, and
/// so its group's id, from reuse.
pub fn end_group_if_exited(pid: u32) -> Option<bool> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
        let p = nix::unistd::Pid::from_raw(pid as libc::pid_t);
        let look = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(p), look) {
            Ok(WaitStatus::StillAlive) => Some(false),
            Ok(_) => {
                let _ = nix::sys::signal::killpg(p, nix::sys::signal::Signal::SIGKILL);
                Some(true)
            }
            // Not ours to look at (reaped already): the reap says so.
            Err(_) => None,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        let _ = pid;
        None
    }
}

/// Waits for our child `pid` to end and reaps it (no zombie is left);
/// false when it has not ended by `deadline`.
pub fn reap_pid(pid: u32, deadline: std::time::Instant) -> bool {
    loop {
        let p = nix::unistd::Pid::from_raw(pid as libc::pid_t);
        let r = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        // Reaped now, or not our child (any more).
        if !matches!(r, Ok(nix::sys::wait::WaitStatus::StillAlive)) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The sockets this process has open besides `chan` and its standard
/// descriptors (stderr may be a log collector's socket), as the OS lists
/// them: /proc/self/fd on Linux, /dev/fd on macOS, else the first 1024
/// descriptors (the OS gives the lowest free number, and a helper holds a
/// handful). What a helper answers to Clear (docs/agent-protocol.md).
pub fn open_sockets_here(chan: &DescriptorChannel) -> Option<u32> {
    let listed = |dir: &str| -> Option<Vec<RawFd>> {
        let names = std::fs::read_dir(dir).ok()?;
        Some(
            names
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect(),
        )
    };
    let fds = if cfg!(any(target_os = "linux", target_os = "android")) {
        listed("/proc/self/fd")?
    } else if cfg!(target_os = "macos") {
        listed("/dev/fd")?
    } else {
        (0..1024).collect()
    };
    let own = chan.0.as_raw_fd();
    let socket = |fd: RawFd| {
        // SAFETY: fstat only reads the descriptor's status into `st`; a
        // descriptor that is not open fails with EBADF.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
        ok && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
    };
    Some(
        fds.into_iter()
            .filter(|&fd| fd > 2 && fd != own && socket(fd))
            .count() as u32,
    )
}
