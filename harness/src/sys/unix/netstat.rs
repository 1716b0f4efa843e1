//! BSDs, macOS and illumos: the TCP table from netstat(1), no namespaces.
//!
//! netstat prints the kernel's pcb list (the `net.inet.tcp.pcblist` sysctl on
//! the BSDs and macOS); its text is stabler across releases than the binary
//! `xinpcb` layouts, which change with every major version.

use std::io;

use crate::sys::{Isolation, IsolationMode, TcpEntry, isolation_mode, parse_netstat};

/// Reading the table runs netstat: too slow to do after every implicit bind.
pub const CHEAP_TCP_TABLE: bool = false;

/// A bind without options conflicts with a TIME_WAIT entry on the port,
/// so a lease's probe binds see it.
pub const BIND_IGNORES_TIME_WAIT: bool = false;

/// The TCP table as `netstat` prints it (no /proc here).
pub fn tcp_table() -> io::Result<Vec<TcpEntry>> {
    // The table is the host's (workers share its stack here), and netstat
    // is a process: concurrent workers share reads.
    static TABLE: crate::sys::shared_read::SharedRead<Vec<TcpEntry>> =
        crate::sys::shared_read::SharedRead::new();
    TABLE.get(read_tcp_table)
}

fn read_tcp_table() -> io::Result<Vec<TcpEntry>> {
    let args: &[&str] = if cfg!(any(target_os = "illumos", target_os = "solaris")) {
        &["-an", "-P", "tcp"]
    } else if cfg!(any(target_os = "macos", target_os = "ios")) {
        // -l: whole IPv6 addresses (inet6print cuts them to 16 characters
        // otherwise; -W widens only IPv4's). network_cmds netstat.tproj/inet6.c
        &["-anl", "-p", "tcp"]
    } else if cfg!(target_os = "freebsd") {
        // -W: whole IPv6 addresses (39 characters, not 16). usr.bin/netstat/inet6.c
        &["-anW", "-p", "tcp"]
    } else {
        &["-an", "-p", "tcp"]
    };
    let out = crate::sys::output(std::process::Command::new("netstat").args(args))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "netstat {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_netstat(
        &String::from_utf8_lossy(&out.stdout),
        &|name| super::if_index(name).ok(),
    ))
}

/// No network namespaces here: every worker shares the host's stack.
pub fn isolate_thread() -> Result<Isolation, String> {
    match isolation_mode() {
        IsolationMode::Netns => Err("network namespaces exist only on Linux".into()),
        _ => Ok(Isolation::Host),
    }
}

pub fn prepare_v6_multicast() -> Result<(), String> {
    Err(
        "sockspec sets up an IPv6 multicast interface only on Linux (a veth pair in a namespace)"
            .into(),
    )
}

/// Network-stack settings that change outcomes, read with sysctlbyname(3)
/// where the system has it (FreeBSD, macOS, NetBSD), else sysctl(8); FreeBSD's
/// `nolocaltimewait` suppresses TIME_WAIT on loopback altogether (tcp(4)).
pub fn stack_settings() -> std::collections::BTreeMap<String, String> {
    if cfg!(any(target_os = "illumos", target_os = "solaris")) {
        return Default::default();
    }
    let mut names = crate::sys::settings::known_keys(crate::sys::os_family());
    if names.is_empty() {
        names = vec![
            "net.inet.tcp.msl",
            "net.inet6.ip6.v6only",
            "net.inet.ip.portrange.first",
            "net.inet.ip.portrange.last",
        ];
    }
    read_sysctls(&names)
}

#[cfg(any(
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios",
    target_os = "netbsd"
))]
fn read_sysctls(names: &[&str]) -> std::collections::BTreeMap<String, String> {
    names
        .iter()
        .filter_map(|name| {
            let c = std::ffi::CString::new(*name).ok()?;
            let mut v: libc::c_int = 0;
            let mut len: libc::size_t = std::mem::size_of::<libc::c_int>();
            // SAFETY: a NUL-terminated name, and an int-sized buffer with its size.
            let r = unsafe {
                libc::sysctlbyname(
                    c.as_ptr(),
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                    std::ptr::null_mut(),
                    0,
                )
            };
            (r == 0 && len == std::mem::size_of::<libc::c_int>())
                .then(|| (name.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(not(any(
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios",
    target_os = "netbsd"
)))]
fn read_sysctls(names: &[&str]) -> std::collections::BTreeMap<String, String> {
    let Ok(out) = crate::sys::output(std::process::Command::new("sysctl").args(names)) else {
        return Default::default();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':').or_else(|| l.split_once('='))?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}
