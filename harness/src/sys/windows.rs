//! Windows backend (Winsock through windows-sys), and Wine, which runs it.
//!
//! Wine maps Winsock onto the host's sockets, so under Wine we report the
//! `wine` family and Wine's version: an emulation is never reported as Windows.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::windows::io::{AsRawSocket, IntoRawSocket};
use std::sync::OnceLock;
use std::time::Duration;

use socket2::Socket;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::NetworkManagement::IpHelper::if_nametoindex;
use windows_sys::Win32::Networking::WinSock as ws;
use windows_sys::Win32::Security::{
    GetTokenInformation, TOKEN_ELEVATION, TOKEN_QUERY, TokenElevation,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
use windows_sys::Win32::System::SystemInformation::OSVERSIONINFOW;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::{Isolation, IsolationMode, TcpEntry, canonical, isolation_mode};
use crate::model::{Opt, OsFamily};
use crate::outcome::{ErrName, TcpState};

/// Whether this backend can run steps in helper processes.
pub const ACTORS: bool = true;

/// Whether an actor can run as another user.
pub const OTHER_USER: bool = false;

/// Wine's version, if we run under Wine: ntdll exports `wine_get_version`
/// only there (https://wiki.winehq.org/Developer_FAQ#How_can_I_detect_Wine.3F).
fn wine_version() -> Option<&'static str> {
    static WINE: OnceLock<Option<String>> = OnceLock::new();
    WINE.get_or_init(|| {
        // SAFETY: NUL-terminated names; the function, if present, returns a
        // static NUL-terminated string.
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            if ntdll.is_null() {
                return None;
            }
            let f = GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast())?;
            let f: extern "C" fn() -> *const std::ffi::c_char = std::mem::transmute(f);
            Some(std::ffi::CStr::from_ptr(f()).to_string_lossy().into_owned())
        }
    })
    .as_deref()
}

/// The OS family sockspec was compiled for (Wine when run under Wine).
pub fn os_family() -> OsFamily {
    if wine_version().is_some() {
        OsFamily::Wine
    } else {
        OsFamily::Windows
    }
}

/// `10.0.<build>` from RtlGetVersion (GetVersionEx lies to unmanifested
/// programs), or Wine's version under Wine.
pub fn os_release() -> String {
    if let Some(v) = wine_version() {
        return v.to_string();
    }
    // SAFETY: RtlGetVersion fills an OSVERSIONINFOW whose size we set.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        if let Some(f) = GetProcAddress(ntdll, c"RtlGetVersion".as_ptr().cast()) {
            let f: extern "system" fn(*mut OSVERSIONINFOW) -> i32 = std::mem::transmute(f);
            let mut info: OSVERSIONINFOW = std::mem::zeroed();
            info.dwOSVersionInfoSize = std::mem::size_of::<OSVERSIONINFOW>() as u32;
            if f(&mut info) == 0 {
                return format!(
                    "{}.{}.{}",
                    info.dwMajorVersion, info.dwMinorVersion, info.dwBuildNumber
                );
            }
        }
    }
    "unknown".into()
}

/// A longer description: the Windows version and build.
pub fn os_detail() -> String {
    match wine_version() {
        Some(v) => format!("Wine {v} (an emulation of Windows)"),
        None => format!("Windows {}", os_release()),
    }
}

/// Ends the process with `code` (sockspec's allocator is the system's
/// here: nothing to skip).
pub fn exit_now(code: i32) -> ! {
    std::process::exit(code)
}

/// Whether the process runs elevated (Administrator).
pub fn is_privileged() -> bool {
    // SAFETY: a token handle we open and close, and a TOKEN_ELEVATION buffer.
    unsafe {
        let mut token: HANDLE = std::ptr::null_mut();
        if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
            return false;
        }
        let mut elevation = TOKEN_ELEVATION { TokenIsElevated: 0 };
        let mut len = 0u32;
        let ok = GetTokenInformation(
            token,
            TokenElevation,
            (&mut elevation as *mut TOKEN_ELEVATION).cast(),
            std::mem::size_of::<TOKEN_ELEVATION>() as u32,
            &mut len,
        );
        CloseHandle(token);
        ok != 0 && elevation.TokenIsElevated != 0
    }
}

/// WSA codes → portable names (https://learn.microsoft.com/windows/win32/winsock/windows-sockets-error-codes-2).
pub fn error_name(raw: i32) -> ErrName {
    use ErrName::*;
    let table: &[(i32, ErrName)] = &[
        (ws::WSAEACCES, EACCES),
        (ws::WSAEADDRINUSE, EADDRINUSE),
        (ws::WSAEADDRNOTAVAIL, EADDRNOTAVAIL),
        (ws::WSAEAFNOSUPPORT, EAFNOSUPPORT),
        (ws::WSAEALREADY, EALREADY),
        (ws::WSAEBADF, EBADF),
        (ws::WSAECONNABORTED, ECONNABORTED),
        (ws::WSAECONNREFUSED, ECONNREFUSED),
        (ws::WSAECONNRESET, ECONNRESET),
        (ws::WSAEFAULT, EFAULT),
        (ws::WSAEHOSTUNREACH, EHOSTUNREACH),
        (ws::WSAEINPROGRESS, EINPROGRESS),
        (ws::WSAEINTR, EINTR),
        (ws::WSAEINVAL, EINVAL),
        (ws::WSAEISCONN, EISCONN),
        (ws::WSAEMFILE, EMFILE),
        (ws::WSAEMSGSIZE, EMSGSIZE),
        (ws::WSAENETDOWN, ENETDOWN),
        (ws::WSAENETUNREACH, ENETUNREACH),
        (ws::WSAENOBUFS, ENOBUFS),
        (ws::WSAENOPROTOOPT, ENOPROTOOPT),
        (ws::WSAENOTCONN, ENOTCONN),
        (ws::WSAENOTSOCK, ENOTSOCK),
        (ws::WSAEOPNOTSUPP, EOPNOTSUPP),
        (ws::WSAEPROTONOSUPPORT, EPROTONOSUPPORT),
        (ws::WSAEPROTOTYPE, EPROTOTYPE),
        (ws::WSAESHUTDOWN, ESHUTDOWN),
        (ws::WSAETIMEDOUT, ETIMEDOUT),
        (ws::WSAEWOULDBLOCK, EWOULDBLOCK),
    ];
    table
        .iter()
        .find(|(code, _)| *code == raw)
        .map(|(_, n)| *n)
        .unwrap_or(Other(raw))
}

fn last_wsa_error() -> io::Error {
    // SAFETY: no arguments.
    io::Error::from_raw_os_error(unsafe { ws::WSAGetLastError() })
}

fn setsockopt_int(sock: &Socket, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: a valid socket and a pointer to an int of the size we pass.
    let r = unsafe {
        ws::setsockopt(
            sock.as_raw_socket() as ws::SOCKET,
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as i32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(last_wsa_error())
    }
}

fn getsockopt_int(sock: &Socket, level: i32, name: i32) -> io::Result<i32> {
    let mut v = 0i32;
    let mut len = std::mem::size_of::<i32>() as i32;
    // SAFETY: a valid socket, and `v`/`len` describe a writable int.
    let r = unsafe {
        ws::getsockopt(
            sock.as_raw_socket() as ws::SOCKET,
            level,
            name,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if r == 0 { Ok(v) } else { Err(last_wsa_error()) }
}

/// SO_EXCLUSIVEADDRUSE is Windows' own; SO_REUSEPORT, SO_REUSEPORT_LB and
/// SO_EXCLBIND do not exist here.
/// <https://learn.microsoft.com/windows/win32/winsock/so-exclusiveaddruse>
pub fn set_special(sock: &Socket, opt: Opt, on: bool) -> io::Result<()> {
    match opt {
        Opt::ExclusiveAddrUse => {
            setsockopt_int(sock, ws::SOL_SOCKET, ws::SO_EXCLUSIVEADDRUSE, on as i32)
        }
        _ => Err(super::unsupported(opt.c_name())),
    }
}

/// Windows has no option that ties a socket to an interface by name
/// (IP_UNICAST_IF only picks the outgoing interface).
pub fn bind_device(
    _sock: &Socket,
    _family: crate::model::Family,
    opt: Opt,
    _iface: &str,
) -> io::Result<()> {
    Err(super::unsupported(opt.c_name()))
}

/// IP_MULTICAST_ALL is Linux's alone.
pub fn set_multicast_all(
    _sock: &Socket,
    _family: crate::model::Family,
    _on: bool,
) -> io::Result<()> {
    Err(super::unsupported(Opt::MulticastAll.c_name()))
}

/// IP_MULTICAST_ALL is Linux's: unsupported here.
pub fn multicast_all(_sock: &Socket, _family: crate::model::Family) -> io::Result<bool> {
    Err(super::unsupported(Opt::MulticastAll.c_name()))
}

/// Reads an option of [`set_special`]'s (SO_EXCLUSIVEADDRUSE) where Windows has it.
pub fn get_special(sock: &Socket, opt: Opt) -> io::Result<bool> {
    match opt {
        Opt::ExclusiveAddrUse => {
            getsockopt_int(sock, ws::SOL_SOCKET, ws::SO_EXCLUSIVEADDRUSE).map(|v| v != 0)
        }
        _ => Err(super::unsupported(opt.c_name())),
    }
}

/// closesocket, returning its result: with SO_LINGER {1, n} on a non-blocking
/// socket it fails with WSAEWOULDBLOCK when the close cannot complete at once,
/// and then the socket is *still open*: "the application can call closesocket
/// again" (https://learn.microsoft.com/windows/win32/api/winsock/nf-winsock-closesocket,
/// and the linger table in https://learn.microsoft.com/windows/win32/winsock/graceful-shutdown-linger-options-and-socket-closure-2).
/// That result is what the test sees; the socket is then finished as a
/// program would: made blocking and closed again, which waits at most the
/// linger time and resets the connection if the data is still unsent by
/// then. Leaving it open would keep its port and connection for the rest of
/// the run, where other tests would meet them.
///
/// Behind the child gate ([`crate::sys::closing`]) for the whole close.
pub fn close(sock: Socket) -> io::Result<()> {
    crate::sys::closing(|| close_socket(sock))
}

fn close_socket(sock: Socket) -> io::Result<()> {
    let s = sock.into_raw_socket() as ws::SOCKET;
    // SAFETY: we own the socket (taken from Socket) and close it once.
    if unsafe { ws::closesocket(s) } == 0 {
        return Ok(());
    }
    let e = last_wsa_error();
    if e.raw_os_error() == Some(ws::WSAEWOULDBLOCK) {
        let mut nonblocking: u32 = 0;
        // SAFETY: the socket is still ours (closesocket did not complete);
        // FIONBIO takes a u32 flag; the second closesocket releases it.
        unsafe {
            ws::ioctlsocket(s, ws::FIONBIO, &mut nonblocking);
            ws::closesocket(s);
        }
    }
    Err(e)
}

/// WSAPoll on `socks` for `events`: which became ready.
fn poll(socks: &[&Socket], events: i16, timeout: Duration) -> io::Result<Vec<bool>> {
    Ok(poll_revents(socks, events, timeout)?
        .into_iter()
        .map(|r| r != 0)
        .collect())
}

/// WSAPoll on `socks` for `events`: what each reported.
fn poll_revents(socks: &[&Socket], events: i16, timeout: Duration) -> io::Result<Vec<i16>> {
    let mut fds: Vec<ws::WSAPOLLFD> = socks
        .iter()
        .map(|s| ws::WSAPOLLFD {
            fd: s.as_raw_socket() as ws::SOCKET,
            events,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid array of the length we pass.
    let r = unsafe { ws::WSAPoll(fds.as_mut_ptr(), fds.len() as u32, ms) };
    if r < 0 {
        return Err(last_wsa_error());
    }
    Ok(fds.iter().map(|f| f.revents).collect())
}

/// Whether the socket becomes readable (or has an error or EOF) within `timeout`.
pub fn wait_readable(sock: &Socket, timeout: Duration) -> io::Result<bool> {
    poll(&[sock], ws::POLLRDNORM, timeout).map(|r| r[0])
}

/// Whether the socket becomes writable (or has an error) within `timeout`.
pub fn wait_writable(sock: &Socket, timeout: Duration) -> io::Result<bool> {
    poll(&[sock], ws::POLLWRNORM, timeout).map(|r| r[0])
}

/// Which of `socks` are readable within `timeout` (all false on timeout).
pub fn poll_readable(socks: &[&Socket], timeout: Duration) -> io::Result<Vec<bool>> {
    poll(socks, ws::POLLRDNORM, timeout)
}

/// How many bytes the TCP socket has written that its peer has not
/// acknowledged. SIO_TCP_INFO (Windows 10 1703 and later,
/// https://learn.microsoft.com/windows/win32/winsock/sio-tcp-info) gives
/// `BytesInFlight`, "sent bytes that are unacknowledged"
/// (https://learn.microsoft.com/windows/win32/api/mstcpip/ns-mstcpip-tcp_info_v0);
/// bytes still in the socket's buffer are in no count, so what the
/// connection has sent (`BytesOut`) must also have reached `sent`, the bytes
/// sockspec wrote on it, counted without retransmissions (`BytesRetrans`: if
/// `BytesOut` counts them, a loss must not pass for the rest being sent; if
/// not, the wait only runs out). A socket passed from another process
/// arrives with nothing counted as written, so there only the bytes in flight
/// count. Where the control code is refused with WSAEOPNOTSUPP (as Wine 8
/// refuses it), `Unsupported`.
pub fn unacked(sock: &Socket, sent: u64) -> io::Result<u64> {
    let version: u32 = 0;
    // SAFETY: plain data; all zeroes is a valid TCP_INFO_v0.
    let mut info: ws::TCP_INFO_v0 = unsafe { std::mem::zeroed() };
    let mut got = 0u32;
    // SAFETY: a valid socket, a DWORD version in, and an out buffer of the
    // size we pass; no overlapped I/O.
    let r = unsafe {
        ws::WSAIoctl(
            sock.as_raw_socket() as ws::SOCKET,
            ws::SIO_TCP_INFO,
            (&version as *const u32).cast(),
            std::mem::size_of::<u32>() as u32,
            (&mut info as *mut ws::TCP_INFO_v0).cast(),
            std::mem::size_of::<ws::TCP_INFO_v0>() as u32,
            &mut got,
            std::ptr::null_mut(),
            None,
        )
    };
    if r != 0 {
        let e = last_wsa_error();
        return Err(match e.raw_os_error() {
            Some(code @ ws::WSAEOPNOTSUPP) => io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "SIO_TCP_INFO is refused here ({}), so no count of unacknowledged bytes",
                    crate::outcome::Outcome::Error(error_name(code))
                ),
            ),
            _ => e,
        });
    }
    let first_sent = info.BytesOut.saturating_sub(info.BytesRetrans.into());
    Ok(u64::from(info.BytesInFlight) + sent.saturating_sub(first_sent))
}

/// Whether the connection has failed under the socket (a reset): WSAPoll
/// reports POLLERR or POLLHUP ("disconnected or aborted",
/// https://learn.microsoft.com/windows/win32/api/winsock2/ns-winsock2-wsapollfd).
pub fn connection_failed(sock: &Socket) -> io::Result<bool> {
    Ok(
        poll_revents(&[sock], ws::POLLWRNORM, Duration::ZERO)?[0] & (ws::POLLHUP | ws::POLLERR)
            != 0,
    )
}

/// Interface index of an interface name (IPv6 multicast).
pub fn if_index(name: &str) -> io::Result<u32> {
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated name.
    match unsafe { if_nametoindex(c.as_ptr().cast()) } {
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface `{name}`"),
        )),
        i => Ok(i),
    }
}

/// Nothing to set up for IPv6 multicast here: loopback carries it.
pub fn prepare_v6_multicast() -> Result<(), String> {
    Err(
        "sockspec sets up an IPv6 multicast interface only on Linux (a veth pair in a namespace)"
            .into(),
    )
}

/// Windows has no network namespaces: every worker shares the host's stack.
pub fn isolate_thread() -> Result<Isolation, String> {
    match isolation_mode() {
        IsolationMode::Netns => Err("network namespaces exist only on Linux".into()),
        _ => Ok(Isolation::Host),
    }
}

/// The settings of `settings::KNOWN` for Windows. One stack for the whole
/// machine (no namespaces), so they are read once. Under Wine only what Wine
/// itself reports is recorded: its sockets are the host's, so Windows'
/// defaults say nothing about them; what does govern them, the host's own
/// Linux sysctls, is recorded under their Linux names.
pub fn stack_settings() -> BTreeMap<String, String> {
    static SETTINGS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| {
            let mut out = if wine_version().is_some() {
                wine_host_sysctls()
            } else {
                BTreeMap::new()
            };
            for ip in ["ipv4", "ipv6"] {
                for proto in ["tcp", "udp"] {
                    if let Some(v) = dynamic_port_range(ip, proto) {
                        out.insert(format!("{ip}.dynamicport.{proto}"), v);
                    }
                }
            }
            match tcpip_parameter("TcpTimedWaitDelay") {
                Ok(Some(v)) => {
                    out.insert("TcpTimedWaitDelay".into(), v.to_string());
                }
                // Absent: the default, 0x78 = 120 s per the Server 2003
                // registry reference (https://technet.microsoft.com/library/cc757512,
                // cases/sources.toml `ms-tcptimedwaitdelay-2003`; claim W8
                // notes the pages that say 240 s). Not under Wine, whose
                // TIME_WAIT is the host kernel's.
                Ok(None) if wine_version().is_none() => {
                    out.insert("TcpTimedWaitDelay".into(), "120".into());
                }
                _ => {}
            }
            out
        })
        .clone()
}

/// Under Wine, the host's Linux sysctls that `settings::KNOWN` lists, read
/// from /proc through Wine's `\\?\unix\` path prefix (ntdll takes what
/// follows `\??\unix\` as a Unix path: nt_to_unix_file_name in Wine's
/// dlls/ntdll/unix/file.c). The tests' sockets are the host's, in the host's
/// namespace. Nothing on a host without /proc (Wine on macOS).
fn wine_host_sysctls() -> BTreeMap<String, String> {
    crate::sys::settings::known_keys(OsFamily::Linux)
        .into_iter()
        .filter_map(|k| {
            let path = format!(r"\\?\unix\proc\sys\{}", k.replace('.', r"\"));
            let v = std::fs::read_to_string(path).ok()?;
            Some((k.to_string(), crate::sys::settings::normal(&v)))
        })
        .collect()
}

/// A REG_DWORD under HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters;
/// `None` when the value is absent.
/// https://learn.microsoft.com/windows/win32/api/winreg/nf-winreg-reggetvaluew
fn tcpip_parameter(name: &str) -> io::Result<Option<u32>> {
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD, RegGetValueW,
    };
    let wide = |s: &str| s.encode_utf16().chain([0]).collect::<Vec<u16>>();
    let key = wide(r"SYSTEM\CurrentControlSet\Services\Tcpip\Parameters");
    let value = wide(name);
    let mut data = 0u32;
    let mut size = std::mem::size_of::<u32>() as u32;
    // SAFETY: NUL-terminated UTF-16 names, and a DWORD buffer of the size we pass.
    let r = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_DWORD,
            std::ptr::null_mut(),
            (&mut data as *mut u32).cast(),
            &mut size,
        )
    };
    match r {
        ERROR_SUCCESS => Ok(Some(data)),
        ERROR_FILE_NOT_FOUND => Ok(None),
        e => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

/// The dynamic port range as `netsh int <ip> show dynamicport <proto>` shows
/// it. Windows documents no API or registry value for it besides netsh and
/// the WMI class MSFT_NetTCPSetting (KB 929851,
/// https://learn.microsoft.com/troubleshoot/windows-server/networking/default-dynamic-port-range-tcpip-chang;
/// netsh keeps it in an undocumented NSI store), so netsh it is, waited for
/// at most 10 s. `None` when netsh fails or prints no range (Wine's netsh
/// prints nothing).
fn dynamic_port_range(ip: &str, proto: &str) -> Option<String> {
    use std::io::Read;
    use std::os::windows::process::CommandExt;
    use std::process::{Command, Stdio};
    use windows_sys::Win32::System::Threading::CREATE_NO_WINDOW;
    let mut child = crate::sys::spawning(|| {
        Command::new("netsh")
            .args(["int", ip, "show", "dynamicport", proto])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .creation_flags(CREATE_NO_WINDOW)
            .spawn()
    })
    .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if std::time::Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = reader.join().ok()?;
    if !status?.success() {
        return None;
    }
    // netsh writes in the console's code page; the lines it is read for are
    // digits and ASCII punctuation.
    crate::sys::settings::parse_netsh_dynamicport(&String::from_utf8_lossy(&text))
}

/// MIB_TCP_STATE → TcpState (https://learn.microsoft.com/windows/win32/api/tcpmib/ns-tcpmib-mib_tcprow_lh).
fn state(s: u32) -> TcpState {
    match s {
        1 => TcpState::Closed,
        2 => TcpState::Listen,
        3 => TcpState::SynSent,
        4 => TcpState::SynReceived,
        5 => TcpState::Established,
        6 => TcpState::FinWait1,
        7 => TcpState::FinWait2,
        8 => TcpState::CloseWait,
        9 => TcpState::Closing,
        10 => TcpState::LastAck,
        11 => TcpState::TimeWait,
        _ => TcpState::Closed,
    }
}

fn port(p: u32) -> u16 {
    u16::from_be((p & 0xffff) as u16)
}

/// Calls an IP Helper table function until the buffer is big enough; returns
/// the table's bytes (a row count, then the rows).
fn table(call: impl Fn(*mut u8, &mut u32) -> u32) -> io::Result<Vec<u8>> {
    let mut size = 0u32;
    let mut buf: Vec<u8> = Vec::new();
    for _ in 0..8 {
        let ptr = if buf.is_empty() {
            std::ptr::null_mut()
        } else {
            buf.as_mut_ptr()
        };
        match call(ptr, &mut size) {
            0 => return Ok(buf),
            // ERROR_INSUFFICIENT_BUFFER
            122 => buf = vec![0u8; size as usize + 1024],
            // ERROR_NO_DATA and ERROR_NOT_SUPPORTED (no IPv6): an empty table.
            232 | 50 => return Ok(Vec::new()),
            e => return Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
    Err(io::Error::other("the TCP table kept growing"))
}

/// Reads `n` rows of `T` that follow a u32 count at the start of `buf`.
fn rows<T>(buf: &[u8]) -> Vec<T> {
    if buf.len() < 4 {
        return Vec::new();
    }
    let n = u32::from_ne_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
    // Rows start at the first field after the count, aligned as the table
    // structure aligns them (every field is 4-byte aligned).
    let rows = buf[4..].as_ptr().cast::<T>();
    (0..n)
        .filter(|i| 4 + (i + 1) * std::mem::size_of::<T>() <= buf.len())
        // SAFETY: the API wrote `n` rows of T after the count, inside `buf`;
        // read_unaligned because the byte buffer gives no alignment guarantee.
        .map(|i| unsafe { rows.add(i).read_unaligned() })
        .collect()
}

/// GetTcpTable is one call: cheap enough to do after every implicit bind.
pub const CHEAP_TCP_TABLE: bool = true;

/// A bind without options succeeds on a port whose only use is a TIME_WAIT
/// entry (only SO_EXCLUSIVEADDRUSE sockets wait for it:
/// https://learn.microsoft.com/windows/win32/winsock/using-so-reuseaddr-and-so-exclusiveaddruse),
/// so a lease's probe binds cannot see an earlier test's TIME_WAIT.
pub const BIND_IGNORES_TIME_WAIT: bool = true;

/// The kernel's TCP table through the IP Helper API. The plain tables, not
/// GetExtendedTcpTable's owner-PID ones: nothing here needs the PID, and
/// finding it is slow (Wine scans every process for it).
/// https://learn.microsoft.com/windows/win32/api/iphlpapi/nf-iphlpapi-gettcptable
///
/// The table is the host's, so concurrent workers share reads
/// (`SharedRead`): under Wine one read takes tens of milliseconds.
pub fn tcp_table() -> io::Result<Vec<TcpEntry>> {
    static TABLE: super::shared_read::SharedRead<Vec<TcpEntry>> =
        super::shared_read::SharedRead::new();
    TABLE.get(read_tcp_table)
}

fn read_tcp_table() -> io::Result<Vec<TcpEntry>> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetTcp6Table, GetTcpTable, MIB_TCP6ROW, MIB_TCP6TABLE, MIB_TCPROW_LH, MIB_TCPTABLE,
    };
    let mut out = Vec::new();
    // SAFETY: the buffer is `size` bytes (or null with size 0, a size query).
    let v4 = table(|p, size| unsafe { GetTcpTable(p.cast::<MIB_TCPTABLE>(), size, 0) })?;
    for r in rows::<MIB_TCPROW_LH>(&v4) {
        // SAFETY: both union members are the same u32.
        let st = unsafe { r.Anonymous.dwState };
        out.push(TcpEntry {
            local: SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(r.dwLocalAddr.to_ne_bytes())),
                port(r.dwLocalPort),
            ),
            remote: SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(r.dwRemoteAddr.to_ne_bytes())),
                port(r.dwRemotePort),
            ),
            state: state(st),
        });
    }
    // SAFETY: as above.
    let v6 = table(|p, size| unsafe { GetTcp6Table(p.cast::<MIB_TCP6TABLE>(), size, 0) })?;
    for r in rows::<MIB_TCP6ROW>(&v6) {
        // SAFETY: IN6_ADDR's byte view covers the whole union.
        let (l, rem) = unsafe { (r.LocalAddr.u.Byte, r.RemoteAddr.u.Byte) };
        out.push(TcpEntry {
            local: canonical(SocketAddr::new(
                Ipv6Addr::from(l).into(),
                port(r.dwLocalPort),
            )),
            remote: canonical(SocketAddr::new(
                Ipv6Addr::from(rem).into(),
                port(r.dwRemotePort),
            )),
            state: state(r.State as u32),
        });
    }
    Ok(out)
}

// --- helper processes -------------------------------------------------------

/// No separate channel on Windows: a socket travels as a WSADuplicateSocket
/// blob inside the request.
pub struct DescriptorChannel;

/// One job object for the whole run, with KILL_ON_JOB_CLOSE: when the harness
/// ends, however it ends, Windows ends every agent in it.
fn job() -> Option<HANDLE> {
    use windows_sys::Win32::System::JobObjects::{
        CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JobObjectExtendedLimitInformation, SetInformationJobObject,
    };
    static JOB: OnceLock<usize> = OnceLock::new();
    let h = *JOB.get_or_init(|| {
        // SAFETY: creating an unnamed job object and setting its limits.
        unsafe {
            let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if job.is_null() {
                return 0;
            }
            let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            SetInformationJobObject(
                job,
                JobObjectExtendedLimitInformation,
                (&info as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            );
            job as usize
        }
    });
    (h != 0).then_some(h as HANDLE)
}

/// Starts `program` as an agent: stdin and stdout piped for requests, sockets passed by WSADuplicateSocketW blobs;
/// with `env` added to our environment and `unset` taken out.
pub fn spawn_agent(
    program: &std::path::Path,
    args: &[String],
    env: &[(String, String)],
    unset: &[String],
    _fd3: bool,
) -> io::Result<(std::process::Child, DescriptorChannel)> {
    use std::os::windows::io::AsRawHandle;
    use std::process::{Command, Stdio};
    use windows_sys::Win32::System::JobObjects::AssignProcessToJobObject;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for k in unset {
        cmd.env_remove(k);
    }
    let child = crate::sys::spawn_child(&mut cmd)?;
    if let Some(job) = job() {
        // SAFETY: both handles are valid; the child stays in the job until it ends.
        unsafe {
            AssignProcessToJobObject(job, child.as_raw_handle() as HANDLE);
        }
    }
    Ok((child, DescriptorChannel))
}

/// The agent's side of the channel (sockets arrive as blobs on stdin).
pub fn agent_channel() -> DescriptorChannel {
    DescriptorChannel
}

fn winsock() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        // SAFETY: WSAStartup fills the WSADATA we give it; the count it keeps
        // is never released, as for the rest of the process.
        unsafe {
            let mut data: ws::WSADATA = std::mem::zeroed();
            ws::WSAStartup(0x0202, &mut data);
        }
    });
}

/// Duplicates a socket for process `to_pid`; the blob is the hex of its
/// WSAPROTOCOL_INFOW. https://learn.microsoft.com/windows/win32/api/winsock2/nf-winsock2-wsaduplicatesocketw
pub fn send_socket(
    _chan: &DescriptorChannel,
    sock: &Socket,
    to_pid: u32,
) -> io::Result<Option<String>> {
    winsock();
    // SAFETY: WSADuplicateSocketW fills the zeroed structure.
    let info: ws::WSAPROTOCOL_INFOW = unsafe {
        let mut info = std::mem::zeroed();
        if ws::WSADuplicateSocketW(sock.as_raw_socket() as ws::SOCKET, to_pid, &mut info) != 0 {
            return Err(last_wsa_error());
        }
        info
    };
    // SAFETY: a plain C structure viewed as its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&info as *const ws::WSAPROTOCOL_INFOW).cast::<u8>(),
            std::mem::size_of::<ws::WSAPROTOCOL_INFOW>(),
        )
    };
    Ok(Some(bytes.iter().map(|b| format!("{b:02x}")).collect()))
}

/// A socket another process duplicated for this one (WSASocketW from its blob).
pub fn receive_socket(_chan: &DescriptorChannel, blob: Option<&str>) -> io::Result<Socket> {
    use std::os::windows::io::FromRawSocket;
    winsock();
    let blob = blob.ok_or_else(|| io::Error::other("no WSAPROTOCOL_INFO came with the socket"))?;
    let bytes: Vec<u8> = (0..blob.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(blob.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| io::Error::other("a malformed WSAPROTOCOL_INFO"))?;
    if bytes.len() != std::mem::size_of::<ws::WSAPROTOCOL_INFOW>() {
        return Err(io::Error::other("a WSAPROTOCOL_INFO of the wrong size"));
    }
    // SAFETY: the bytes are a WSAPROTOCOL_INFOW another process filled in.
    unsafe {
        let info = bytes
            .as_ptr()
            .cast::<ws::WSAPROTOCOL_INFOW>()
            .read_unaligned();
        let s = ws::WSASocketW(
            ws::FROM_PROTOCOL_INFO,
            ws::FROM_PROTOCOL_INFO,
            ws::FROM_PROTOCOL_INFO,
            &info,
            0,
            // Not inheritable, like every socket socket2 makes: a child that
            // sockspec starts must not keep it (and its port) open.
            // https://learn.microsoft.com/windows/win32/api/winsock2/nf-winsock2-wsasocketw
            ws::WSA_FLAG_OVERLAPPED | ws::WSA_FLAG_NO_HANDLE_INHERIT,
        );
        if s == ws::INVALID_SOCKET {
            return Err(last_wsa_error());
        }
        Ok(Socket::from_raw_socket(s as _))
    }
}

/// Becoming another user needs that account's credentials on Windows: refused.
pub fn become_user(_uid: u32) -> Result<String, String> {
    Err("running an agent as another user is implemented on Unix only".into())
}

/// The job object ends agents with the harness.
pub fn die_with_parent(_parent: u32) {}

/// Windows leaves no zombies: a killed process needs no reaping.
pub fn reap_pid(_pid: u32, _deadline: std::time::Instant) -> bool {
    true
}

/// What a helper's wrapper started is left to the job, which ends it with
/// the harness: Windows has no process groups to signal.
pub fn end_group_if_exited(_pid: u32) -> Option<bool> {
    None
}

/// TerminateProcess on a helper the caller holds (`Ok` if it had ended).
pub fn kill_helper(child: &mut std::process::Child) -> io::Result<()> {
    child.kill()
}

/// TerminateProcess, for helpers of an attempt that hung.
pub fn kill_pid(pid: u32) {
    use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_TERMINATE, TerminateProcess};
    // SAFETY: a handle we open and close around one call.
    unsafe {
        let h = OpenProcess(PROCESS_TERMINATE, 0, pid);
        if !h.is_null() {
            TerminateProcess(h, 1);
            CloseHandle(h);
        }
    }
}

/// How many sockets a process holds: not readable here (Linux only).
pub fn open_sockets(_pid: u32) -> Option<usize> {
    None
}

/// The sockets this process holds: Windows lists no such thing (sockets
/// are handles among all the others), so a helper here cannot say.
pub fn open_sockets_here(_chan: &DescriptorChannel) -> Option<u32> {
    None
}

/// Windows creates a process without a copy of our handles unless they
/// are inheritable: nothing to wait for ([`crate::sys::spawn_child`]).
pub fn exec_marker() -> Option<String> {
    None
}

/// See [`exec_marker`].
pub fn exec_settled(_pid: u32, _before: Option<&str>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Type};
    use std::io::Read;

    fn pair() -> (Socket, Socket) {
        let l = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        l.listen(1).unwrap();
        let c = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        c.connect(&l.local_addr().unwrap()).unwrap();
        let (a, _) = l.accept().unwrap();
        (c, a)
    }

    /// A lingering close that cannot complete at once (the peer reads
    /// nothing, the send buffer is full) still ends the connection: the peer
    /// gets everything up to end of file or a reset, not a socket left open.
    #[test]
    fn a_lingering_nonblocking_close_does_not_leak_the_socket() {
        let (c, mut peer) = pair();
        c.set_linger(Some(Duration::from_secs(1))).unwrap();
        c.set_nonblocking(true).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..10_000 {
            match c.send(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        let closed = close(c);
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match peer.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(ws::WSAECONNRESET) => break,
                Err(e) => panic!("the closed socket is still open ({e}); close said {closed:?}"),
            }
        }
    }

    /// A socket that arrives from another process is not inheritable.
    #[test]
    fn received_sockets_are_not_inheritable() {
        use windows_sys::Win32::Foundation::{GetHandleInformation, HANDLE_FLAG_INHERIT};
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        let blob = send_socket(&DescriptorChannel, &s, std::process::id()).unwrap();
        let r = receive_socket(&DescriptorChannel, blob.as_deref()).unwrap();
        let mut flags = 0u32;
        // SAFETY: a socket handle we own, and a u32 to fill.
        let ok = unsafe { GetHandleInformation(r.as_raw_socket() as HANDLE, &mut flags) };
        assert_ne!(ok, 0, "{}", io::Error::last_os_error());
        assert_eq!(flags & HANDLE_FLAG_INHERIT, 0, "flags {flags:#x}");
    }
}
