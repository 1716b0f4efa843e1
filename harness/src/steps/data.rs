//! Moving data and closing: send, acked, readable, recv, shutdown, close, fill, drain.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::{StepKind, endpoint};
use crate::expand::fields::Fields;
use crate::model::{Band, How, PortRef};
use crate::outcome::{Outcome, is_ident};

/// How long `recv` and `drain` wait for data by default.
pub const DEFAULT_RECV_WAIT: Duration = Duration::from_millis(1000);

/// `send` some bytes (UDP: optionally to an address).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Send {
    /// The socket that sends.
    pub sock: String,
    /// How many bytes to send (default 8, at most 16 MiB).
    pub bytes: usize,
    /// For UDP, the destination (`to_addr`, `to_port`); `None`: the connected peer.
    pub to: Option<(IpAddr, PortRef)>,
}

impl StepKind for Send {
    const NAME: &'static str = "send";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["bytes", "to_addr", "to_port"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let bytes = f.or("bytes", 8, |f| {
            f.uint("bytes", 16 << 20).map(|n| n as usize)
        })?;
        let to = match (f.has("to_addr"), f.has("to_port")) {
            (false, false) => None,
            (true, true) => Some((f.addr("to_addr")?, f.port("to_port")?)),
            _ => {
                f.err_at_step("`to_addr` and `to_port` go together");
                return None;
            }
        };
        Some(Send {
            sock: sock?,
            bytes,
            to,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "send {} {} bytes", self.sock, self.bytes)?;
        if let Some((a, p)) = &self.to {
            write!(f, " to {}", endpoint(a, p))?;
        }
        Ok(())
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `acked`: waits until the peer's TCP has taken every byte this socket
/// sent (acknowledged them, or reset the connection), so that what a later
/// step on the peer sees is the kernel's answer to that data, not a race with
/// its delivery: `ok`, or `timeout` after `wait_ms`. Where the OS cannot tell
/// (no count of unacknowledged bytes), the test is skipped.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Acked {
    /// The socket that sent.
    pub sock: String,
    /// How long to wait for the acknowledgements (`wait_ms`; default 1 s).
    pub wait: Duration,
}

impl StepKind for Acked {
    const NAME: &'static str = "acked";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["wait_ms"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Acked {
            sock: f.ident("sock")?,
            wait: f.ms("wait_ms", DEFAULT_RECV_WAIT),
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wait until {}'s data is acknowledged", self.sock)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `readable`: waits until the socket has something to read (data, end of
/// stream or an error) without reading it: `ok`, or `timeout` after
/// `wait_ms`. On a socket that nothing else makes readable, proof that the
/// peer's data has arrived, on every OS.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Readable {
    /// The socket to watch.
    pub sock: String,
    /// How long to wait (`wait_ms`; default 1 s).
    pub wait: Duration,
}

impl StepKind for Readable {
    const NAME: &'static str = "readable";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["wait_ms"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Readable {
            sock: f.ident("sock")?,
            wait: f.ms("wait_ms", DEFAULT_RECV_WAIT),
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wait until {} is readable", self.sock)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `recv`: data, end of stream or an error; `timeout` after `wait_ms`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recv {
    /// The socket to read from.
    pub sock: String,
    /// How long to wait for something to read (`wait_ms`; default 1 s).
    pub wait: Duration,
}

impl StepKind for Recv {
    const NAME: &'static str = "recv";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["wait_ms"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Recv {
            sock: f.ident("sock")?,
            wait: f.ms("wait_ms", DEFAULT_RECV_WAIT),
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "recv {}", self.sock)
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::Data | Outcome::Eof | Outcome::Error(_))
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `shutdown` one or both directions.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shutdown {
    /// The socket to shut down.
    pub sock: String,
    /// Which direction to shut: read, write or both.
    pub how: How,
}

impl StepKind for Shutdown {
    const NAME: &'static str = "shutdown";
    const REQUIRED: &'static [&'static str] = &["sock", "how"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let how = f.parse("how", "\"read\", \"write\" or \"both\"", |v| {
            match v.as_str()? {
                "read" => Some(How::Read),
                "write" => Some(How::Write),
                "both" => Some(How::Both),
                _ => None,
            }
        });
        Some(Shutdown {
            sock: sock?,
            how: how?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shutdown {} {}", self.sock, self.how.as_str())
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `close`; with `bands`, how long the call blocked is reported as a band
/// (`ok@quick`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Close {
    /// The socket to close.
    pub sock: String,
    /// Named time bands the close's duration is matched against; empty: the close is not timed.
    pub bands: Vec<Band>,
}

impl StepKind for Close {
    const NAME: &'static str = "close";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["bands"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let bands = f.or("bands", Vec::new(), |f| {
            f.parse(
                "bands",
                "a table of band names to [min_ms, max_ms], e.g. { quick = [0, 300] }",
                |v| {
                    let t = v.as_table()?;
                    let mut out = Vec::new();
                    for (name, r) in t {
                        let r = r.as_array()?;
                        let (lo, hi) = (r.first()?.as_integer()?, r.get(1)?.as_integer()?);
                        if !is_ident(name) || r.len() != 2 || lo < 0 || hi < lo {
                            return None;
                        }
                        out.push(Band {
                            name: name.clone(),
                            min: Duration::from_millis(lo as u64),
                            max: Duration::from_millis(hi as u64),
                        });
                    }
                    (!out.is_empty()).then_some(out)
                },
            )
        })?;
        Some(Close { sock: sock?, bands })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "close {}", self.sock)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `fill`: queue data until the send buffer is full (the peer does not read).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fill {
    /// The socket that writes; its peer never reads.
    pub sock: String,
}

impl StepKind for Fill {
    const NAME: &'static str = "fill";
    const REQUIRED: &'static [&'static str] = &["sock"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Fill {
            sock: f.ident("sock")?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fill {}'s send buffer", self.sock)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `drain`: read until end of stream, an error, or `wait_ms` without data.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Drain {
    /// The socket to read from until end of stream.
    pub sock: String,
    /// How long to wait without data before giving up (`wait_ms`; default 1 s).
    pub wait: Duration,
}

impl StepKind for Drain {
    const NAME: &'static str = "drain";
    const REQUIRED: &'static [&'static str] = &["sock"];
    const OPTIONAL: &'static [&'static str] = &["wait_ms"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Drain {
            sock: f.ident("sock")?,
            wait: f.ms("wait_ms", DEFAULT_RECV_WAIT),
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drain {}", self.sock)
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::Eof | Outcome::Error(_))
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}
