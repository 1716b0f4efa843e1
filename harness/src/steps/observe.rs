//! Looking at what the kernel did: TCP states, datagram fan-out, connection
//! spread, shared ports; and waiting.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use toml::Value;

use super::{StepKind, endpoint};
use crate::expand::fields::Fields;
use crate::model::{Observe, PortRef};
use crate::outcome::{Outcome, TcpState as State};

/// How long `tcp_state` waits for the wanted state by default.
pub const DEFAULT_STATE_WAIT: Duration = Duration::from_millis(1000);
/// How long `fanout` waits for datagrams by default.
pub const DEFAULT_FANOUT_WAIT: Duration = Duration::from_millis(200);

/// `tcp_state`: the socket's endpoint in the kernel's own TCP table; with
/// `want`, wait up to `wait_ms` for that state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TcpState {
    /// The socket whose endpoint is looked up (its last known addresses, even after it is
    /// closed).
    pub sock: String,
    /// The state to wait for (`want`); `None`: report the state at once.
    pub want: Option<State>,
    /// How long to wait for `want` (`wait_ms`; default 1 s).
    pub wait: Duration,
}

impl StepKind for TcpState {
    const NAME: &'static str = "tcp_state";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["want", "wait_ms"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let want = f.or("want", None, |f| {
            let names: Vec<&str> = crate::outcome::TcpState::ALL
                .iter()
                .map(|s| s.as_str())
                .collect();
            f.parse(
                "want",
                &format!("a TCP state: one of {}", names.join(", ")),
                |v| match v.as_str()?.parse::<Outcome>().ok()? {
                    Outcome::State(s) => Some(s),
                    _ => None,
                },
            )
            .map(Some)
        })?;
        Some(TcpState {
            sock: sock?,
            want,
            wait: f.ms("wait_ms", DEFAULT_STATE_WAIT),
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp_state {}", self.sock)
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::State(_))
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// Reads `observe`: `each` (how each datagram was delivered), `who` (which
/// receivers got any) or, for `spread`, `count` (how many got any).
fn observe(f: &mut Fields<'_>, names: &[(&str, Observe)]) -> Option<Observe> {
    let default = names[0].1;
    let what: Vec<String> = names.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    f.or("observe", default, |f| {
        f.parse("observe", &what.join(" or "), |v: &Value| {
            let s = v.as_str()?;
            names.iter().find(|(n, _)| *n == s).map(|(_, o)| *o)
        })
    })
}

/// `fanout`: send `count` datagrams from `sock` and see who received them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fanout {
    /// The socket that sends the datagrams (`sock`).
    pub sender: String,
    /// The destination address: unicast, broadcast or a multicast group.
    pub addr: IpAddr,
    /// The destination port.
    pub port: PortRef,
    /// The sockets whose deliveries are counted.
    pub receivers: Vec<String>,
    /// How many datagrams to send (default 10).
    pub count: u32,
    /// What the step reports: each datagram's delivery (`each`) or which receivers got any
    /// (`who`).
    pub observe: Observe,
    /// How long to wait for the datagrams to arrive (`wait_ms`; default 200 ms).
    pub wait: Duration,
}

impl StepKind for Fanout {
    const NAME: &'static str = "fanout";
    const REQUIRED: &'static [&'static str] = &["sock", "addr", "port", "receivers"];
    const OPTIONAL: &'static [&'static str] = &["count", "observe", "wait_ms"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sender = f.ident("sock");
        let addr = f.addr("addr");
        let port = f.port("port");
        let receivers = f.idents("receivers");
        let count = f.or("count", 10, |f| f.uint("count", 1000).map(|n| n as u32))?;
        let observe = observe(f, &[("each", Observe::Each), ("who", Observe::Who)])?;
        Some(Fanout {
            sender: sender?,
            addr: addr?,
            port: port?,
            receivers: receivers?,
            count: count.max(1),
            observe,
            wait: f.ms("wait_ms", DEFAULT_FANOUT_WAIT),
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fanout {} datagrams {} -> {} to {}",
            self.count,
            self.sender,
            endpoint(&self.addr, &self.port),
            self.receivers.join(",")
        )
    }

    fn accepts(&self, o: &Outcome) -> bool {
        match self.observe {
            Observe::Who => matches!(o, Outcome::Who(_)),
            _ => matches!(o, Outcome::Each(_)),
        }
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sender)
    }

    fn socks(&self) -> Vec<&str> {
        std::iter::once(self.sender.as_str())
            .chain(self.receivers.iter().map(String::as_str))
            .collect()
    }
}

/// `spread`: make `count` connections and see which listeners accepted
/// them: how many got at least one (`count`), or who (`who`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    /// The address the connections are made to.
    pub addr: IpAddr,
    /// The port the connections are made to.
    pub port: PortRef,
    /// The listening sockets whose accepts are counted.
    pub listeners: Vec<String>,
    /// How many connections to make (default 32).
    pub count: u32,
    /// What the step reports: how many listeners accepted any (`count`) or which (`who`).
    pub observe: Observe,
}

impl StepKind for Spread {
    const NAME: &'static str = "spread";
    const REQUIRED: &'static [&'static str] = &["addr", "port", "listeners"];
    const OPTIONAL: &'static [&'static str] = &["count", "observe"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let addr = f.addr("addr");
        let port = f.port("port");
        let listeners = f.idents("listeners");
        let count = f.or("count", 32, |f| f.uint("count", 4096).map(|n| n as u32))?;
        let observe = observe(f, &[("count", Observe::Count), ("who", Observe::Who)])?;
        Some(Spread {
            addr: addr?,
            port: port?,
            listeners: listeners?,
            count: count.max(1),
            observe,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spread {} connections to {} over {}",
            self.count,
            endpoint(&self.addr, &self.port),
            self.listeners.join(",")
        )
    }

    fn accepts(&self, o: &Outcome) -> bool {
        match self.observe {
            Observe::Who => matches!(o, Outcome::Who(_) | Outcome::Error(_)),
            _ => matches!(o, Outcome::Int(_) | Outcome::Error(_)),
        }
    }

    fn socks(&self) -> Vec<&str> {
        self.listeners.iter().map(String::as_str).collect()
    }
}

/// `same_port`: whether two sockets have the same local port.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamePort {
    /// The first socket.
    pub a: String,
    /// The socket whose local port is compared with `a`'s.
    pub b: String,
}

impl StepKind for SamePort {
    const NAME: &'static str = "same_port";
    const REQUIRED: &'static [&'static str] = &["a", "b"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let a = f.ident("a");
        let b = f.ident("b");
        Some(SamePort { a: a?, b: b? })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "same_port {} {}", self.a, self.b)
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::Bool(_))
    }

    fn socks(&self) -> Vec<&str> {
        vec![&self.a, &self.b]
    }

    fn label(&self) -> String {
        format!("same_port_{}", self.a)
    }
}

/// `sleep`: wait a fixed time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sleep {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

impl StepKind for Sleep {
    const NAME: &'static str = "sleep";
    const REQUIRED: &'static [&'static str] = &["ms"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Sleep {
            ms: f.uint("ms", 10_000)?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sleep {} ms", self.ms)
    }
}

/// `getsockname`: whether the socket's local address is `addr` (the port
/// is not compared: it is the kernel's or a lease's).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetSockName {
    /// The socket whose local address is read.
    pub sock: String,
    /// The address it is compared with (an IPv4-mapped address is not the IPv4 one).
    pub addr: IpAddr,
}

impl StepKind for GetSockName {
    const NAME: &'static str = "getsockname";
    const REQUIRED: &'static [&'static str] = &["sock", "addr"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let addr = f.addr("addr");
        Some(GetSockName {
            sock: sock?,
            addr: addr?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "getsockname {} is {}", self.sock, self.addr)
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::Bool(_) | Outcome::Error(_))
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}
