//! Just enough rtnetlink to make a veth pair in the calling thread's network
//! namespace, so no `ip` binary is needed (guests have none).
//!
//! One RTM_NEWLINK request over a NETLINK_ROUTE socket, acknowledged:
//! ifinfomsg (flags IFF_UP) + IFLA_IFNAME + IFLA_LINKINFO { IFLA_INFO_KIND
//! "veth", IFLA_INFO_DATA { VETH_INFO_PEER: ifinfomsg + IFLA_IFNAME } }, which
//! is what `ip link add NAME up type veth peer name PEER` sends. The peer
//! cannot be created up: the kernel configures it before the pair is joined,
//! and opening a veth without its peer fails (ENOTCONN); the caller brings
//! it up afterwards.
//! <https://man7.org/linux/man-pages/man7/rtnetlink.7.html>,
//! <https://docs.kernel.org/userspace-api/netlink/intro.html>,
//! include/uapi/linux/{netlink,rtnetlink,if_link,veth}.h.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFF_UP: u32 = 0x1;
/// sizeof(struct nlmsghdr).
const NLMSG_HDRLEN: usize = 16;

/// A netlink message under construction: attributes are appended, nested
/// ones are opened and closed (their length patched in when closed).
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32) -> Msg {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched in finish()
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel's
        Msg(b)
    }

    /// struct ifinfomsg { family, pad, type, index, flags, change }.
    fn ifinfomsg(&mut self, flags: u32, change: u32) {
        self.0.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
        self.0.extend_from_slice(&0u16.to_ne_bytes());
        self.0.extend_from_slice(&0i32.to_ne_bytes());
        self.0.extend_from_slice(&flags.to_ne_bytes());
        self.0.extend_from_slice(&change.to_ne_bytes());
    }

    fn align(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        self.0
            .extend_from_slice(&u16::try_from(4 + data.len()).unwrap_or(0).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.align();
    }

    /// A NUL-terminated string attribute.
    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data);
    }

    /// Opens a nested attribute; returns where its length goes.
    fn open(&mut self, kind: u16) -> usize {
        let at = self.0.len();
        self.0.extend_from_slice(&0u16.to_ne_bytes());
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn close(&mut self, at: usize) {
        let len = u16::try_from(self.0.len() - at).unwrap_or(0);
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.0.len()).unwrap_or(0);
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// The RTM_NEWLINK request for a veth pair NAME (up) / PEER (down).
fn new_veth_request(name: &str, peer: &str, seq: u32) -> Vec<u8> {
    let mut m = Msg::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
    );
    m.ifinfomsg(IFF_UP, IFF_UP);
    m.attr_str(IFLA_IFNAME, name);
    let linkinfo = m.open(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, "veth");
    let data = m.open(IFLA_INFO_DATA);
    let peer_info = m.open(VETH_INFO_PEER);
    m.ifinfomsg(0, 0);
    m.attr_str(IFLA_IFNAME, peer);
    m.close(peer_info);
    m.close(data);
    m.close(linkinfo);
    m.finish()
}

/// The kernel's answer to request `seq`: Ok for an acknowledgement (error 0),
/// the error it carries otherwise; None when the buffer holds no answer to it.
fn parse_ack(buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let word = |o: usize| u32::from_ne_bytes(buf[at + o..at + o + 4].try_into().unwrap());
        let len = word(0) as usize;
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink answer",
            )));
        }
        if kind == NLMSG_ERROR && word(8) == seq && len >= NLMSG_HDRLEN + 4 {
            let err = i32::from_ne_bytes(
                buf[at + NLMSG_HDRLEN..at + NLMSG_HDRLEN + 4]
                    .try_into()
                    .unwrap(),
            );
            return Some(if err == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-err))
            });
        }
        at += (len + 3) & !3;
    }
    None
}

/// Creates the veth pair NAME (up) / PEER (down), in the calling thread's network
/// namespace (a netlink socket belongs to its creator's namespace).
pub fn create_veth(name: &str, peer: &str) -> io::Result<()> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Never wait on the kernel for long: it answers at once or not at all.
    let tv = libc::timeval {
        tv_sec: 3,
        tv_usec: 0,
    };
    // SAFETY: valid fd, option value of the size given.
    if unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let seq = 1;
    let req = new_veth_request(name, peer, seq);
    // SAFETY: all-zero sockaddr_nl is valid; nl_pid 0 addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: valid fd, buffer and address of the sizes given.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: valid fd and buffer of the size given.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if let Some(r) = parse_ack(&buf[..n as usize], seq) {
            return r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_request_layout() {
        let m = new_veth_request("sockspec0", "sockspec0p", 7);
        // Header: length, RTM_NEWLINK, flags, seq.
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), 0x605);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        // ifinfomsg: flags and change IFF_UP.
        assert_eq!(u32::from_ne_bytes(m[24..28].try_into().unwrap()), IFF_UP);
        assert_eq!(u32::from_ne_bytes(m[28..32].try_into().unwrap()), IFF_UP);
        // IFLA_IFNAME "sockspec0\0" (14 bytes, padded to 16).
        assert_eq!(u16::from_ne_bytes([m[32], m[33]]), 14);
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), IFLA_IFNAME);
        assert_eq!(&m[36..46], b"sockspec0\0");
        // IFLA_LINKINFO spans the rest, nested.
        assert_eq!(u16::from_ne_bytes([m[48], m[49]]) as usize, m.len() - 48);
        assert_eq!(
            u16::from_ne_bytes([m[50], m[51]]),
            IFLA_LINKINFO | NLA_F_NESTED
        );
        assert_eq!(&m[52..64], b"\x09\x00\x01\x00veth\x00\x00\x00\x00");
        assert!(m.windows(11).any(|w| w == b"sockspec0p\0"));
        assert!(m.len().is_multiple_of(4));
    }

    #[test]
    fn parses_acks_and_errors() {
        let ack = |seq: u32, err: i32| {
            let mut b = Vec::new();
            b.extend_from_slice(&36u32.to_ne_bytes());
            b.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            b.extend_from_slice(&0u16.to_ne_bytes());
            b.extend_from_slice(&seq.to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes());
            b.extend_from_slice(&err.to_ne_bytes());
            b.extend_from_slice(&[0; 16]);
            b
        };
        assert!(parse_ack(&ack(3, 0), 3).unwrap().is_ok());
        let e = parse_ack(&ack(3, -libc::EEXIST), 3).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(parse_ack(&ack(2, 0), 3).is_none());
        assert!(parse_ack(&[1, 0, 0, 0], 3).is_none());
    }
}
