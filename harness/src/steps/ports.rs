//! Giving sockets addresses: bind, listen, connect, accept.

use std::fmt;
use std::net::IpAddr;

use super::{StepKind, endpoint};
use crate::expand::fields::Fields;
use crate::model::PortRef;

/// `bind`: a local address and port.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bind {
    /// The socket to bind.
    pub sock: String,
    /// The local address to bind to.
    pub addr: IpAddr,
    /// The local port: 0, a lease (`@p`), or another socket's port.
    pub port: PortRef,
}

impl StepKind for Bind {
    const NAME: &'static str = "bind";
    const REQUIRED: &'static [&'static str] = &["sock", "addr", "port"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let addr = f.addr("addr");
        let port = f.port("port");
        Some(Bind {
            sock: sock?,
            addr: addr?,
            port: port?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bind {} {}", self.sock, endpoint(&self.addr, &self.port))
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `listen`, with a backlog (default 128).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Listen {
    /// The socket to put in listening mode.
    pub sock: String,
    /// The backlog passed to listen (default 128).
    pub backlog: i32,
}

impl StepKind for Listen {
    const NAME: &'static str = "listen";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["backlog"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let backlog = f.or("backlog", 128, |f| {
            f.uint("backlog", 4096).map(|n| n as i32)
        })?;
        Some(Listen {
            sock: sock?,
            backlog,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listen {}", self.sock)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `connect` (TCP: the handshake; UDP: the default peer).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Connect {
    /// The socket that connects.
    pub sock: String,
    /// The address to connect to.
    pub addr: IpAddr,
    /// The port to connect to: usually a lease or another socket's port.
    pub port: PortRef,
}

impl StepKind for Connect {
    const NAME: &'static str = "connect";
    const REQUIRED: &'static [&'static str] = &["sock", "addr", "port"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let addr = f.addr("addr");
        let port = f.port("port");
        Some(Connect {
            sock: sock?,
            addr: addr?,
            port: port?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connect {} {}",
            self.sock,
            endpoint(&self.addr, &self.port)
        )
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `accept`: the accepted connection becomes socket `name`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accept {
    /// The listening socket to accept from.
    pub sock: String,
    /// The name the accepted socket goes by in later steps.
    pub name: String,
}

impl StepKind for Accept {
    const NAME: &'static str = "accept";
    const REQUIRED: &'static [&'static str] = &["sock", "name"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let name = f.ident("name");
        Some(Accept {
            sock: sock?,
            name: name?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "accept {} -> {}", self.sock, self.name)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}
