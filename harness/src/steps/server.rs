//! Servers made the way a runtime's high-level API makes them.

use std::fmt;
use std::net::IpAddr;

use super::{StepKind, endpoint};
use crate::expand::fields::Fields;
use crate::model::{PortRef, Proto};

/// Every `api` some runtime knows: `default` (each runtime's usual API) and
/// Python's `asyncio` (helpers/python/agent.py; docs/agent-protocol.md). A
/// runtime that lacks one skips the step at run time; a name none knows is
/// a mistake, refused when the case loads.
pub const APIS: &[&str] = &["default", "asyncio"];

/// `server`: a TCP listener or a bound UDP socket created through the
/// runtime's high-level API with its defaults, no explicit option: Rust
/// `std::net::TcpListener::bind` / `UdpSocket::bind` in the built-in agent,
/// Python `socketserver.TCPServer` / `UDPServer` (or `asyncio` with
/// `api = "asyncio"`), Node `net.createServer().listen` /
/// `dgram.createSocket().bind`. Whatever options the API sets by itself are
/// what the case is about. The result is a socket like any other (`accept`,
/// `close`, `recv` work on it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Server {
    /// The name the server's socket goes by in later steps.
    pub name: String,
    /// TCP (a listener) or UDP (a bound socket).
    pub proto: Proto,
    /// The address the server binds.
    pub addr: IpAddr,
    /// The port the server binds: 0, a lease, or another socket's port.
    pub port: PortRef,
    /// Which of the runtime's high-level APIs, where it has several
    /// (`"default"`, or e.g. `"asyncio"` in Python).
    pub api: String,
}

impl StepKind for Server {
    const NAME: &'static str = "server";
    const REQUIRED: &'static [&'static str] = &["name", "type", "addr", "port"];
    const OPTIONAL: &'static [&'static str] = &["api", "actor"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let name = f.ident("name");
        let proto = f.parse("type", "\"tcp\" or \"udp\"", |v| match v.as_str()? {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        });
        let addr = f.addr("addr");
        let port = f.port("port");
        let api = f.or("api", "default".to_string(), |f| {
            f.parse("api", &format!("one of {}", APIS.join(", ")), |v| {
                v.as_str().filter(|a| APIS.contains(a)).map(str::to_string)
            })
        })?;
        Some(Server {
            name: name?,
            proto: proto?,
            addr: addr?,
            port: port?,
            api,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server {} {} {}",
            self.name,
            self.proto.as_str(),
            endpoint(&self.addr, &self.port)
        )?;
        if self.api != "default" {
            write!(f, " via {}", self.api)?;
        }
        Ok(())
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.name)
    }
}
