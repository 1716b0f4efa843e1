//! The text of `netstat` on macOS, FreeBSD and illumos, read into TCP table
//! rows. A pure function over the text, so the formats are tested on any OS
//! (fixtures: `harness/tests/fixtures/netstat/`).
//!
//! What each system prints, from its source:
//!
//! - macOS (`netstat -anl -p tcp`, network_cmds netstat.tproj/inet.c):
//!   `tcp4`, `tcp6` or `tcp46` and two queue columns, then the addresses as
//!   `address.port`, then the state. A row with INP_IPV4 set is printed by
//!   `inetprint` even when INP_IPV6 is set too, so a dual-stack socket (`tcp46`)
//!   shows IPv4's `*` for its `[::]`. IPv6 addresses are cut to 16 characters
//!   unless `-l` is given (`-W` widens only IPv4's). Link-local addresses
//!   carry their scope: `fe80::1%lo0`.
//! - FreeBSD (`netstat -anW -p tcp`, usr.bin/netstat/inet.c and inet6.c): the
//!   same columns; `-W` keeps IPv6 addresses whole (39 characters). The state
//!   gets a `*` appended when TF_NEEDSYN or TF_NEEDFIN is set (`SYN_SENT*`).
//!   A TCP-offloaded socket's protocol column reads `toe` instead of `tcp`.
//! - illumos (`netstat -an -P tcp`, usr/src/cmd/cmd-inet/usr.bin/netstat/
//!   netstat.c): no protocol column; a `TCP: IPv4` and a `TCP: IPv6` section,
//!   each with its own header. The wildcard is `      *` (padded), IPv6
//!   rows end with an `If` column (empty unless the connection has an
//!   interface index: that is where a link-local address's scope is), and
//!   bound sockets show as `BOUND` or `IDLE`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::{TcpEntry, canonical};
use crate::outcome::TcpState;

/// Which family a row's `*` stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// Parses netstat's TCP listing. `scope` turns an interface name (from
/// `fe80::1%lo0` or illumos' `If` column) into its index, so that rows
/// compare equal to the addresses the sockets report.
pub fn parse_netstat(text: &str, scope: &dyn Fn(&str) -> Option<u32>) -> Vec<TcpEntry> {
    // illumos' section, when the listing has them.
    let mut section: Option<Family> = None;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(family) = section_title(line.trim()) {
            section = family;
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = cols.first() else { continue };
        let row = if let Some(vchar) = first
            .strip_prefix("tcp")
            .or_else(|| first.strip_prefix("toe"))
        {
            // BSD and macOS: proto recv-q send-q local foreign state
            let family = match vchar {
                "46" | "6" => Family::V6,
                _ => Family::V4,
            };
            (cols.len() >= 6).then(|| (cols[3], cols[4], cols[5], None, family))
        } else if let Some(family) = section {
            // illumos: local remote swind send-q rwind recv-q state [if]
            (cols.len() >= 7).then(|| (cols[0], cols[1], cols[6], cols.get(7).copied(), family))
        } else {
            None
        };
        let Some((local, remote, st, iface, family)) = row else {
            continue;
        };
        let Some(state) = state(st) else { continue };
        let (Some(local), Some(remote)) = (
            endpoint(local, family, iface, scope),
            endpoint(remote, family, iface, scope),
        ) else {
            continue;
        };
        out.push(TcpEntry {
            local: canonical(local),
            remote: canonical(remote),
            state,
        });
    }
    out
}

/// illumos' section titles: `TCP: IPv4`, `TCP: IPv6`, `TCP` (the v4-compat
/// format), `UDP: IPv4`, `SCTP:` ...; with the family of a TCP section's `*`
/// (`None` for sections that are not TCP).
fn section_title(line: &str) -> Option<Option<Family>> {
    let word = line.split(':').next()?;
    if !matches!(word, "TCP" | "UDP" | "SCTP" | "RAWIP") {
        return None;
    }
    Some(match line {
        "TCP: IPv6" => Some(Family::V6),
        "TCP: IPv4" | "TCP" => Some(Family::V4),
        _ => None,
    })
}

/// A state column. FreeBSD appends `*` for TF_NEEDSYN / TF_NEEDFIN (the
/// state is still the one named). illumos' BOUND and IDLE are sockets that
/// are bound or not even that: not in the table elsewhere, so left out.
fn state(s: &str) -> Option<TcpState> {
    Some(match s.strip_suffix('*').unwrap_or(s) {
        "LISTEN" => TcpState::Listen,
        "SYN_SENT" => TcpState::SynSent,
        "SYN_RCVD" | "SYN_RECEIVED" => TcpState::SynReceived,
        "ESTABLISHED" => TcpState::Established,
        "FIN_WAIT_1" => TcpState::FinWait1,
        "FIN_WAIT_2" => TcpState::FinWait2,
        "CLOSE_WAIT" => TcpState::CloseWait,
        "CLOSING" => TcpState::Closing,
        "LAST_ACK" => TcpState::LastAck,
        "TIME_WAIT" => TcpState::TimeWait,
        "CLOSED" => TcpState::Closed,
        _ => return None,
    })
}

/// `address.port`, `*.port`, `*.*`, `fe80::1%lo0.port`.
fn endpoint(
    s: &str,
    family: Family,
    iface: Option<&str>,
    scope: &dyn Fn(&str) -> Option<u32>,
) -> Option<SocketAddr> {
    let (host, port) = s.rsplit_once('.')?;
    let port: u16 = if port == "*" { 0 } else { port.parse().ok()? };
    let (host, zone) = match host.split_once('%') {
        Some((h, z)) => (h, Some(z)),
        None => (host, None),
    };
    let ip: IpAddr = if host == "*" {
        match family {
            Family::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Family::V6 => Ipv6Addr::UNSPECIFIED.into(),
        }
    } else {
        host.parse().ok()?
    };
    Some(match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => {
            // An unknown interface name leaves the row unmatched rather
            // than matching the wrong one.
            let id = match zone.or(iface) {
                Some(name) => scope(name)?,
                None => 0,
            };
            SocketAddrV6::new(v6, port, 0, id).into()
        }
        ip => SocketAddr::new(ip, port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture without its leading `#` comment: the rest is netstat's
    /// output byte for byte.
    fn fixture(text: &str) -> String {
        text.lines()
            .skip_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn parse(text: &str) -> Vec<TcpEntry> {
        parse_netstat(&fixture(text), &|name| (name == "lo0").then_some(1))
    }

    fn row(local: &str, remote: &str, state: TcpState) -> TcpEntry {
        TcpEntry {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
        }
    }

    /// Rows every fixture has: a dual-stack or v6-only wildcard listener,
    /// IPv4 TIME_WAIT, a long IPv6 address and a link-local one with scope.
    fn common() -> Vec<TcpEntry> {
        use TcpState::*;
        vec![
            row("127.0.0.1:52100", "127.0.0.1:40000", TimeWait),
            row(
                "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:40001",
                "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:2]:52101",
                Established,
            ),
            row("[fe80::1%1]:40002", "[fe80::1%1]:52102", Established),
            row("[::]:40003", "[::]:0", Listen),
        ]
    }

    fn assert_has(rows: &[TcpEntry], want: &[TcpEntry]) {
        for w in want {
            assert!(rows.contains(w), "{w:?} missing from {rows:#?}");
        }
    }

    #[test]
    fn macos_rows() {
        use TcpState::*;
        let rows = parse(include_str!("../../tests/fixtures/netstat/macos-anl.txt"));
        assert_has(&rows, &common());
        assert_has(
            &rows,
            &[
                // tcp46 `*`: a dual-stack socket on [::], not 0.0.0.0.
                row("[::]:40000", "[::]:0", Listen),
                row("127.0.0.2:40004", "0.0.0.0:0", Listen),
                row("[::1]:52103", "[::1]:40005", FinWait2),
                row("127.0.0.1:52106", "127.0.0.1:40006", SynSent),
            ],
        );
        assert_eq!(rows.len(), 8, "{rows:#?}");
    }

    #[test]
    fn macos_without_l_loses_long_ipv6_addresses() {
        // Why tcp_table passes -l: without it the address is cut short and
        // the row cannot match any socket.
        let rows = parse(include_str!(
            "../../tests/fixtures/netstat/macos-an-truncated.txt"
        ));
        assert_eq!(
            rows,
            [row(
                "127.0.0.1:52100",
                "127.0.0.1:40000",
                TcpState::TimeWait
            )]
        );
    }

    #[test]
    fn freebsd_rows() {
        use TcpState::*;
        let rows = parse(include_str!("../../tests/fixtures/netstat/freebsd-anW.txt"));
        assert_has(&rows, &common());
        assert_has(
            &rows,
            &[
                row("[::]:40000", "[::]:0", Listen),
                // TF_NEEDSYN / TF_NEEDFIN: the `*` is not part of the state.
                row("127.0.0.1:52106", "127.0.0.1:40006", SynSent),
                row("127.0.0.1:40007", "127.0.0.1:52107", SynReceived),
                row("127.0.0.1:52108", "127.0.0.1:40008", FinWait2),
                // A TCP-offloaded connection.
                row("127.0.0.1:52109", "127.0.0.1:40009", Established),
            ],
        );
        assert_eq!(rows.len(), 9, "{rows:#?}");
    }

    #[test]
    fn illumos_rows() {
        use TcpState::*;
        let rows = parse(include_str!("../../tests/fixtures/netstat/illumos-an.txt"));
        assert_has(&rows, &common());
        assert_has(
            &rows,
            &[
                // The IPv4 section's `*` is IPv4's.
                row("0.0.0.0:40000", "0.0.0.0:0", Listen),
                row("127.0.0.2:40004", "0.0.0.0:0", Listen),
                // Mapped addresses in the IPv6 section come back as IPv4.
                row("127.0.0.1:40009", "127.0.0.1:52109", CloseWait),
                row("[::1]:52103", "[::1]:40005", FinWait2),
            ],
        );
        // BOUND is left out, as other systems' tables leave bound sockets out.
        assert_eq!(rows.len(), 8, "{rows:#?}");
    }

    #[test]
    fn an_unknown_scope_leaves_the_row_out() {
        let text =
            "tcp6       0      0 fe80::1%nope0.40002    fe80::1%nope0.52102    ESTABLISHED\n";
        assert!(parse_netstat(text, &|_| None).is_empty());
    }
}
