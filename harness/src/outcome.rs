//! The outcome vocabulary: what a step did, or what an expectation says it should do.
//!
//! Outcomes are written as short strings in expectation files and results
//! (`ok`, `EADDRINUSE`, `TIME_WAIT`, `each=one`, `ok@quick` ...). Every OS's
//! native error code is mapped to a portable name by the sys layer; the raw code
//! travels beside the outcome in results, never inside it.

use std::fmt;
use std::str::FromStr;

/// Portable error names. The sys layer maps each OS's own codes (errno values,
/// WSA codes) onto these; codes with no portable name stay [`ErrName::Other`].
macro_rules! err_names {
    ($($name:ident),* $(,)?) => {
        /// A failed call's error, by its portable name (`EADDRINUSE`); the OS's
        /// own code travels beside it in results (`raw`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum ErrName {
            $(
                #[doc = concat!("The errno `", stringify!($name), "`, or the code an OS maps onto it (a Winsock `WSAE...` code).")]
                $name,
            )*
            /// A code the sys layer has no portable name for (shown as `ERRNO_<n>`).
            Other(i32),
        }

        impl ErrName {
            /// Every portable name, for documentation and error messages.
            pub const ALL: &'static [ErrName] = &[$(ErrName::$name,)*];

            /// The name as outcomes spell it: `EADDRINUSE`, or `ERRNO_<n>` for [`ErrName::Other`].
            pub fn as_str(&self) -> std::borrow::Cow<'static, str> {
                match self {
                    $(ErrName::$name => std::borrow::Cow::Borrowed(stringify!($name)),)*
                    ErrName::Other(n) => std::borrow::Cow::Owned(format!("ERRNO_{n}")),
                }
            }

            fn from_name(s: &str) -> Option<ErrName> {
                match s {
                    $(stringify!($name) => Some(ErrName::$name),)*
                    _ => s.strip_prefix("ERRNO_").and_then(|n| n.parse().ok()).map(ErrName::Other),
                }
            }
        }
    };
}

err_names!(
    EACCES,
    EADDRINUSE,
    EADDRNOTAVAIL,
    EAFNOSUPPORT,
    EALREADY,
    EBADF,
    ECONNABORTED,
    ECONNREFUSED,
    ECONNRESET,
    EFAULT,
    EHOSTUNREACH,
    EINPROGRESS,
    EINTR,
    EINVAL,
    EISCONN,
    EMFILE,
    EMSGSIZE,
    ENETDOWN,
    ENETUNREACH,
    ENOBUFS,
    ENODEV,
    ENOMEM,
    ENOPROTOOPT,
    ENOTCONN,
    ENOTSOCK,
    EOPNOTSUPP,
    EPERM,
    EPIPE,
    EPROTONOSUPPORT,
    EPROTOTYPE,
    ESHUTDOWN,
    ETIMEDOUT,
    EWOULDBLOCK,
);

/// TCP states as the kernel's own socket table reports them, with BSD/Linux names.
/// `None` means the kernel holds no entry for the endpoint.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[allow(clippy::upper_case_acronyms)]
pub enum TcpState {
    /// `none`: the kernel's table holds no entry for the endpoint (never connected, or fully
    /// gone).
    None,
    /// `LISTEN`: a listening socket.
    Listen,
    /// `SYN_SENT`: a connect is waiting for the peer's SYN-ACK.
    SynSent,
    /// `SYN_RECEIVED`: a connection request was answered and awaits the final ACK.
    SynReceived,
    /// `ESTABLISHED`: the connection is open in both directions.
    Established,
    /// `FIN_WAIT_1`: this side closed and its FIN is not yet acknowledged.
    FinWait1,
    /// `FIN_WAIT_2`: this side's FIN was acknowledged; waiting for the peer's.
    FinWait2,
    /// `CLOSE_WAIT`: the peer closed; this side has not yet.
    CloseWait,
    /// `CLOSING`: both sides closed at once; waiting for the ACK of this side's FIN.
    Closing,
    /// `LAST_ACK`: this side closed after the peer; waiting for the last ACK.
    LastAck,
    /// `TIME_WAIT`: closed, with the endpoint held for 2*MSL so late segments cannot reach a
    /// new connection.
    TimeWait,
    /// `CLOSED`: the kernel lists an entry for the endpoint, in the closed state.
    Closed,
}

impl TcpState {
    /// Every state, in the order of a connection's life.
    pub const ALL: &'static [TcpState] = &[
        TcpState::None,
        TcpState::Listen,
        TcpState::SynSent,
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Closed,
    ];

    /// The state's name as outcomes spell it (`TIME_WAIT`, `none`).
    pub fn as_str(&self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::Listen => "LISTEN",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynReceived => "SYN_RECEIVED",
            TcpState::Established => "ESTABLISHED",
            TcpState::FinWait1 => "FIN_WAIT_1",
            TcpState::FinWait2 => "FIN_WAIT_2",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::Closing => "CLOSING",
            TcpState::LastAck => "LAST_ACK",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Closed => "CLOSED",
        }
    }

    /// States a connection only passes through: an observation keeps polling
    /// while it sees one of these (up to its wait). FIN_WAIT_2 counts: it ends
    /// when the peer's FIN arrives, which on loopback is a moment later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            TcpState::SynSent
                | TcpState::SynReceived
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::Closing
                | TcpState::LastAck
                | TcpState::Closed
        )
    }

    fn from_name(s: &str) -> Option<TcpState> {
        TcpState::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

/// How a set of datagrams reached a set of receivers (the `fanout` step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Each {
    /// Every datagram reached exactly one receiver.
    One,
    /// Every datagram reached every receiver.
    All,
    /// No datagram reached any receiver.
    None,
    /// Anything else.
    Mixed,
}

impl Each {
    fn as_str(&self) -> &'static str {
        match self {
            Each::One => "one",
            Each::All => "all",
            Each::None => "none",
            Each::Mixed => "mixed",
        }
    }
}

/// One step's outcome, observed or expected.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The call succeeded.
    Ok,
    /// `recv` returned data.
    Data,
    /// `recv` returned end of stream.
    Eof,
    /// The step did not finish before its wait or the test's deadline.
    Timeout,
    /// The option does not exist on this OS.
    Unsupported,
    /// Not run, because an earlier step on the same socket failed (observed only).
    NotRun,
    /// Nobody knows yet (expected only): never passes.
    Unknown,
    /// The call failed with this error.
    Error(ErrName),
    /// The TCP state the kernel's table reports for the endpoint (`tcp_state` steps).
    State(TcpState),
    /// A yes/no answer: a flag option's value (`getopt`), `same_port`, `getsockname`.
    Bool(bool),
    /// A number: an option's value (`getopt` of `linger`) or a count (`spread`).
    Int(i64),
    /// How a `fanout` step's datagrams reached its receivers.
    Each(Each),
    /// The receivers that got anything, sorted; empty means none did.
    Who(Vec<String>),
    /// An outcome together with the named time band the step took.
    Band(Box<Outcome>, String),
}

impl Outcome {
    /// Whether the outcome counts as success: `ok` or `data`, with or without a time band.
    pub fn is_ok(&self) -> bool {
        match self {
            Outcome::Ok | Outcome::Data => true,
            Outcome::Band(inner, _) => inner.is_ok(),
            _ => false,
        }
    }

    /// The outcome without its time band.
    pub fn base(&self) -> &Outcome {
        match self {
            Outcome::Band(inner, _) => inner.base(),
            other => other,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Data => f.write_str("data"),
            Outcome::Eof => f.write_str("eof"),
            Outcome::Timeout => f.write_str("timeout"),
            Outcome::Unsupported => f.write_str("unsupported"),
            Outcome::NotRun => f.write_str("not_run"),
            Outcome::Unknown => f.write_str("unknown"),
            Outcome::Error(e) => f.write_str(&e.as_str()),
            Outcome::State(s) => f.write_str(s.as_str()),
            Outcome::Bool(b) => write!(f, "{b}"),
            Outcome::Int(i) => write!(f, "{i}"),
            Outcome::Each(e) => write!(f, "each={}", e.as_str()),
            Outcome::Who(w) if w.is_empty() => f.write_str("who=none"),
            Outcome::Who(w) => write!(f, "who={}", w.join("+")),
            Outcome::Band(inner, band) => write!(f, "{inner}@{band}"),
        }
    }
}

/// Why a string is not an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadOutcome(pub String);

impl fmt::Display for BadOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Outcome {
    type Err = BadOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((inner, band)) = s.rsplit_once('@') {
            if !is_ident(band) {
                return Err(BadOutcome(format!("`{band}` is not a band name")));
            }
            let inner: Outcome = inner.parse()?;
            return Ok(Outcome::Band(Box::new(inner), band.to_string()));
        }
        let simple = match s {
            "ok" => Some(Outcome::Ok),
            "data" => Some(Outcome::Data),
            "eof" => Some(Outcome::Eof),
            "timeout" => Some(Outcome::Timeout),
            "unsupported" => Some(Outcome::Unsupported),
            "not_run" => Some(Outcome::NotRun),
            "unknown" => Some(Outcome::Unknown),
            "true" => Some(Outcome::Bool(true)),
            "false" => Some(Outcome::Bool(false)),
            _ => None,
        };
        if let Some(o) = simple {
            return Ok(o);
        }
        if let Some(e) = s.strip_prefix("each=") {
            return match e {
                "one" => Ok(Outcome::Each(Each::One)),
                "all" => Ok(Outcome::Each(Each::All)),
                "none" => Ok(Outcome::Each(Each::None)),
                "mixed" => Ok(Outcome::Each(Each::Mixed)),
                _ => Err(BadOutcome(format!(
                    "`{s}`: `each=` takes one, all, none or mixed"
                ))),
            };
        }
        if let Some(w) = s.strip_prefix("who=") {
            if w == "none" {
                return Ok(Outcome::Who(Vec::new()));
            }
            let mut names: Vec<String> = w.split('+').map(str::to_string).collect();
            if names.iter().any(|n| !is_ident(n)) {
                return Err(BadOutcome(format!(
                    "`{s}`: `who=` takes socket names joined by `+`, or `none`"
                )));
            }
            names.sort();
            return Ok(Outcome::Who(names));
        }
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Outcome::Int(i));
        }
        if let Some(st) = TcpState::from_name(s) {
            return Ok(Outcome::State(st));
        }
        if let Some(e) = ErrName::from_name(s) {
            return Ok(Outcome::Error(e));
        }
        Err(BadOutcome(format!(
            "`{s}` is not an outcome: expected ok, data, eof, timeout, unsupported, unknown, \
             an error name (EADDRINUSE, EADDRNOTAVAIL, EACCES, EINVAL, ...), a TCP state \
             (TIME_WAIT, none, ...), true/false, a number, each=..., who=..., or OUTCOME@BAND"
        )))
    }
}

/// Longest name (a socket, a checked step, a topic, ...): each test holds
/// its own copies, and 34,000-character socket names took `check` to
/// 690 MiB.
pub const MAX_IDENT: usize = 64;

/// Lower-case identifiers of at most [`MAX_IDENT`] characters: socket,
/// actor, label, band and parameter names.
pub fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IDENT
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "ok",
            "data",
            "eof",
            "timeout",
            "unsupported",
            "unknown",
            "EADDRINUSE",
            "ERRNO_10050",
            "TIME_WAIT",
            "none",
            "true",
            "3",
            "each=one",
            "who=a+b",
            "who=none",
            "ok@quick",
            "ECONNRESET@lingered",
        ] {
            let o: Outcome = s.parse().unwrap();
            assert_eq!(o.to_string(), s);
        }
    }

    #[test]
    fn who_is_sorted() {
        let o: Outcome = "who=b+a".parse().unwrap();
        assert_eq!(o.to_string(), "who=a+b");
    }

    #[test]
    fn rejects_nonsense() {
        assert!("EADDRINUS".parse::<Outcome>().is_err());
        assert!("each=two".parse::<Outcome>().is_err());
        assert!("ok@".parse::<Outcome>().is_err());
        assert!("who=A".parse::<Outcome>().is_err());
    }
}
