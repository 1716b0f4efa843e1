//! Step kinds, each defined once: its keyword in case files, its fields and
//! how they are read, how the step reads in explanations, and the outcomes
//! it can report. [`Action`], the kind table the loader checks steps
//! against, and the dispatch below are derived from the list in
//! `step_kinds!`; the executor (`exec`) performs them.
//!
//! Adding a kind: a struct implementing [`StepKind`] in one of these files,
//! its name in the `step_kinds!` list, and an arm in the executor.

mod actors;
mod data;
mod observe;
mod ports;
mod server;
mod sockets;
mod stack;

use std::fmt;
use std::net::IpAddr;

pub use actors::{Exit, Kill, Pass, Spawn, User};
pub use data::{Acked, Close, Drain, Fill, Readable, Recv, Send, Shutdown};
pub use observe::{Fanout, GetSockName, SamePort, Sleep, Spread, TcpState};
pub use ports::{Accept, Bind, Connect, Listen};
pub use server::Server;
pub use sockets::{GetOpt, SetOpt, Socket};
pub use stack::Sysctl;

use crate::expand::fields::Fields;
use crate::model::PortRef;
use crate::outcome::Outcome;

/// Fields every step may carry, whatever its kind.
pub const COMMON: &[&str] = &["do", "check", "require", "when", "os", "not_os"];

/// One step kind.
pub trait StepKind: Sized {
    /// The keyword in case files: `do = "bind"`.
    const NAME: &'static str;
    /// Fields the step must have.
    const REQUIRED: &'static [&'static str];
    /// Fields the step may have.
    const OPTIONAL: &'static [&'static str] = &[];

    /// Reads the step from its fields (parameters already bound); `None`
    /// once an error is recorded in `f`.
    fn read(f: &mut Fields<'_>) -> Option<Self>;

    /// One line for explanations and failures: `bind b 127.0.0.1:port(a)`.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// Whether the step can report `o` (never a band, `unknown`, `not_run`
    /// or `timeout`: [`Action::accepts`] handles those). By default: ok or
    /// an error.
    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::Ok | Outcome::Error(_))
    }

    /// The socket the step acts on, if it acts on exactly one.
    fn sock(&self) -> Option<&str> {
        None
    }

    /// Every socket the step touches.
    fn socks(&self) -> Vec<&str> {
        self.sock().into_iter().collect()
    }

    /// The check label of `check = true`: the kind and its socket.
    fn label(&self) -> String {
        match self.sock() {
            Some(s) => format!("{}_{s}", Self::NAME),
            None => Self::NAME.to_string(),
        }
    }
}

/// What the loader knows of a step kind, derived from its [`StepKind`].
pub struct Kind {
    /// The keyword in case files ([`StepKind::NAME`]): `do = "bind"`.
    pub name: &'static str,
    /// Fields a step of this kind must have ([`StepKind::REQUIRED`]).
    pub required: &'static [&'static str],
    /// Fields a step of this kind may have ([`StepKind::OPTIONAL`]).
    pub optional: &'static [&'static str],
    /// [`StepKind::read`], wrapped into an [`Action`].
    pub read: fn(&mut Fields<'_>) -> Option<Action>,
}

impl Kind {
    /// The kind named `name` in a case file.
    pub fn named(name: &str) -> Option<&'static Kind> {
        KINDS.iter().find(|k| k.name == name)
    }

    /// Every field a step of this kind may carry.
    pub fn takes(&self, field: &str) -> bool {
        COMMON.contains(&field) || self.required.contains(&field) || self.optional.contains(&field)
    }
}

macro_rules! step_kinds {
    ($($kind:ident),* $(,)?) => {
        /// One resolved step: which kind, with its fields. Socket names refer
        /// to sockets created earlier in the test.
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub enum Action {
            $(
                #[doc = concat!("A step of kind [`", stringify!($kind), "`], with its fields.")]
                $kind($kind),
            )*
        }

        /// Every step kind, in the order the README lists them.
        pub static KINDS: &[Kind] = &[$(
            Kind {
                name: <$kind as StepKind>::NAME,
                required: <$kind as StepKind>::REQUIRED,
                optional: <$kind as StepKind>::OPTIONAL,
                read: |f| <$kind as StepKind>::read(f).map(Action::$kind),
            },
        )*];

        impl Action {
            /// The action's keyword in case files.
            pub fn kind(&self) -> &'static str {
                match self { $(Action::$kind(_) => <$kind as StepKind>::NAME,)* }
            }

            /// The socket the step acts on, if it acts on exactly one.
            pub fn sock(&self) -> Option<&str> {
                match self { $(Action::$kind(s) => s.sock(),)* }
            }

            /// Every socket the step touches.
            pub fn socks(&self) -> Vec<&str> {
                match self { $(Action::$kind(s) => s.socks(),)* }
            }

            /// The check label of `check = true`.
            pub fn label(&self) -> String {
                match self { $(Action::$kind(s) => s.label(),)* }
            }

            fn accepts_plain(&self, o: &Outcome) -> bool {
                matches!(o, Outcome::Unknown | Outcome::NotRun | Outcome::Timeout)
                    || match self { $(Action::$kind(s) => s.accepts(o),)* }
            }
        }

        impl fmt::Display for Action {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self { $(Action::$kind(s) => s.describe(f),)* }
            }
        }

        $(impl From<$kind> for Action {
            fn from(k: $kind) -> Action {
                Action::$kind(k)
            }
        })*
    };
}

step_kinds!(
    Socket,
    SetOpt,
    GetOpt,
    Bind,
    Listen,
    Connect,
    Accept,
    Send,
    Acked,
    Readable,
    Recv,
    Shutdown,
    Close,
    TcpState,
    Fanout,
    Spread,
    Fill,
    Drain,
    SamePort,
    Sleep,
    Sysctl,
    Spawn,
    Pass,
    Kill,
    Exit,
    GetSockName,
    Server,
);

impl Action {
    /// Whether `outcome` is something this kind of step can produce. A
    /// measured close (one with bands) always reports its band.
    pub fn accepts(&self, outcome: &Outcome) -> bool {
        let base = match outcome {
            Outcome::Band(inner, band) => {
                return matches!(self, Action::Close(c) if c.bands.iter().any(|b| &b.name == band))
                    && !matches!(**inner, Outcome::Band(..))
                    && self.accepts_plain(inner);
            }
            o => o,
        };
        if let Action::Close(c) = self
            && !c.bands.is_empty()
            && !matches!(base, Outcome::Unknown | Outcome::NotRun | Outcome::Timeout)
        {
            return false;
        }
        self.accepts_plain(base)
    }

    /// How long the step waits by itself before it gives `timeout`; `None`
    /// for steps that wait as long as the test's deadline allows.
    pub fn own_wait(&self) -> Option<std::time::Duration> {
        match self {
            Action::Recv(Recv { wait, .. })
            | Action::Acked(Acked { wait, .. })
            | Action::Readable(Readable { wait, .. })
            | Action::Drain(Drain { wait, .. })
            | Action::TcpState(TcpState { wait, .. })
            | Action::Fanout(Fanout { wait, .. }) => Some(*wait),
            _ => None,
        }
    }

    /// Whether the step sets its sockets up: when such a checked step fails,
    /// the engine runs no later step on those sockets (they are `not_run`).
    pub fn establishes(&self) -> bool {
        matches!(
            self,
            Action::Socket(_)
                | Action::SetOpt(_)
                | Action::Bind(_)
                | Action::Listen(_)
                | Action::Connect(_)
        )
    }

    /// Whether the step can give a socket an address: it makes, binds,
    /// connects or sends from one (steps that only set or read options,
    /// receive, shut down or wait cannot).
    pub fn may_address(&self) -> bool {
        !matches!(
            self,
            Action::SetOpt(_)
                | Action::GetOpt(_)
                | Action::GetSockName(_)
                | Action::TcpState(_)
                | Action::SamePort(_)
                | Action::Shutdown(_)
                | Action::Recv(_)
                | Action::Acked(_)
                | Action::Readable(_)
                | Action::Drain(_)
                | Action::Sleep(_)
                | Action::Sysctl(_)
        )
    }

    /// The socket the step makes, named by it (`socket`, `server`, `accept`).
    pub fn makes(&self) -> Option<&str> {
        match self {
            Action::Socket(Socket { name, .. })
            | Action::Server(Server { name, .. })
            | Action::Accept(Accept { name, .. }) => Some(name),
            _ => None,
        }
    }

    /// A rough guess of how long the step takes, for scheduling only (the
    /// longest tests start first, so that they overlap the rest instead of
    /// running alone at the end): fixed waits, a close judged in bands (it
    /// may block for the longest band's lower bound), a process start.
    pub fn expected_wait(&self) -> std::time::Duration {
        use std::time::Duration;
        match self {
            Action::Sleep(s) => Duration::from_millis(s.ms),
            // Counting deliveries takes the whole window.
            Action::Fanout(Fanout { wait, .. }) => *wait,
            // A recv that gets nothing (what many cases check) waits its
            // window out; a long wait is a bound on something that comes
            // (an end of file), so at most a short window counts.
            Action::Recv(Recv { wait, .. }) => (*wait).min(Duration::from_millis(200)),
            Action::Close(c) => c.bands.iter().map(|b| b.min).max().unwrap_or_default(),
            // An interpreter (Python, Node) starts far slower than sockspec.
            Action::Spawn(Spawn {
                runtime: Some(r), ..
            }) if r != "rust" => Duration::from_millis(100),
            Action::Spawn(_) => Duration::from_millis(5),
            _ => Duration::ZERO,
        }
    }

    /// The address the step sends to or binds, if any.
    pub fn addr(&self) -> Option<&IpAddr> {
        match self {
            Action::Bind(Bind { addr, .. })
            | Action::Server(Server { addr, .. })
            | Action::Connect(Connect { addr, .. })
            | Action::Fanout(Fanout { addr, .. })
            | Action::Spread(Spread { addr, .. })
            | Action::Send(Send {
                to: Some((addr, _)),
                ..
            }) => Some(addr),
            _ => None,
        }
    }

    /// The port the step names, if any.
    pub fn port(&self) -> Option<&PortRef> {
        match self {
            Action::Bind(Bind { port, .. })
            | Action::Server(Server { port, .. })
            | Action::Connect(Connect { port, .. })
            | Action::Fanout(Fanout { port, .. })
            | Action::Spread(Spread { port, .. })
            | Action::Send(Send {
                to: Some((_, port)),
                ..
            }) => Some(port),
            _ => None,
        }
    }
}

/// `addr:port`, bracketed for IPv6.
fn endpoint(addr: &IpAddr, port: &PortRef) -> String {
    match addr {
        IpAddr::V6(_) => format!("[{addr}]:{port}"),
        _ => format!("{addr}:{port}"),
    }
}
