//! The data model shared by every stage: OS families, options, steps, expanded tests.
//!
//! `load` parses case files into [`Case`]s, `expand` turns each case into
//! [`Test`]s whose [`Step`]s are fully resolved (no parameters left), `exec`
//! runs them, `judge` compares against expectations, `report` renders results.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::outcome::Outcome;
pub use crate::steps::Action;

/// The OS families sockspec keeps expectation files for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OsFamily {
    /// Linux (`linux`), the one family whose workers can get network namespaces of their own.
    Linux,
    /// macOS (`macos`).
    Macos,
    /// Windows (`windows`), on native Winsock.
    Windows,
    /// FreeBSD (`freebsd`).
    Freebsd,
    /// OpenBSD (`openbsd`), whose IPv6 sockets are never dual-stack.
    Openbsd,
    /// NetBSD (`netbsd`).
    Netbsd,
    /// illumos (`illumos`).
    Illumos,
    /// Windows binaries under Wine: an emulation, never reported as Windows.
    Wine,
}

impl OsFamily {
    /// Every family, in the order help texts and reports list them.
    pub const ALL: &'static [OsFamily] = &[
        OsFamily::Linux,
        OsFamily::Macos,
        OsFamily::Windows,
        OsFamily::Freebsd,
        OsFamily::Openbsd,
        OsFamily::Netbsd,
        OsFamily::Illumos,
        OsFamily::Wine,
    ];

    /// The family's lowercase name, as used in `only`, `os`, expectation file names and
    /// results.
    pub fn as_str(&self) -> &'static str {
        match self {
            OsFamily::Linux => "linux",
            OsFamily::Macos => "macos",
            OsFamily::Windows => "windows",
            OsFamily::Freebsd => "freebsd",
            OsFamily::Openbsd => "openbsd",
            OsFamily::Netbsd => "netbsd",
            OsFamily::Illumos => "illumos",
            OsFamily::Wine => "wine",
        }
    }

    /// Every family's name, for help texts: `linux, macos, ...`.
    pub fn names() -> String {
        let names: Vec<&str> = OsFamily::ALL.iter().map(|o| o.as_str()).collect();
        names.join(", ")
    }

    /// The family whose name is `s` (`linux`, `wine`, ...), if any.
    pub fn from_name(s: &str) -> Option<OsFamily> {
        OsFamily::ALL.iter().copied().find(|f| f.as_str() == s)
    }

    /// Whether an option exists on this family at all. Tests that use an
    /// option the family lacks are skipped there with that reason; whether the
    /// option exists is itself checked by the `options::exists` case.
    pub fn has_opt(&self, opt: Opt) -> bool {
        use OsFamily::*;
        match opt {
            Opt::ReusePort => !matches!(self, Windows | Wine | Illumos),
            // FreeBSD 12+ only: https://man.freebsd.org/cgi/man.cgi?getsockopt(2)
            Opt::ReusePortLb => matches!(self, Freebsd),
            // https://learn.microsoft.com/windows/win32/winsock/so-exclusiveaddruse
            Opt::ExclusiveAddrUse => matches!(self, Windows | Wine),
            // illumos getsockopt(3SOCKET)
            Opt::ExclBind => matches!(self, Illumos),
            // socket(7): SO_BINDTODEVICE is Linux's own.
            Opt::BindToDevice => matches!(self, Linux),
            // ip(4P) on illumos; netinet/in.h on macOS (IP_BOUND_IF, 10.7+).
            Opt::BoundIf => matches!(self, Macos | Illumos),
            // ip(7) IP_MULTICAST_ALL, ipv6(7) IPV6_MULTICAST_ALL: Linux's own.
            Opt::MulticastAll => matches!(self, Linux),
            // SO_BROADCAST is everywhere (POSIX, Winsock).
            _ => true,
        }
    }

    /// Whether an IPv6 socket can be made dual-stack (IPV6_V6ONLY = 0).
    /// OpenBSD fixes IPV6_V6ONLY at 1 (inet6(4)).
    pub fn dual_stack(&self) -> bool {
        !matches!(self, OsFamily::Openbsd)
    }
}

impl fmt::Display for OsFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A case socket's transport protocol (`type = "tcp"` or `"udp"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Proto {
    /// A TCP stream socket.
    Tcp,
    /// A UDP datagram socket.
    Udp,
}

impl Proto {
    /// The protocol's name in case files and step lines (`tcp`, `udp`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A socket's address family (`family = "v4"` or `"v6"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// IPv4 (AF_INET).
    V4,
    /// IPv6 (AF_INET6).
    V6,
}

impl Family {
    /// The family an address belongs to.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The family's name in case files and step lines (`v4`, `v6`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// Socket options the case language knows. Each has a short key used in case
/// files and the C name used in explanations.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Opt {
    /// SO_REUSEADDR.
    ReuseAddr,
    /// SO_REUSEPORT (BSDs, macOS, Linux).
    ReusePort,
    /// SO_REUSEPORT_LB (FreeBSD 12+): load-balancing port sharing.
    ReusePortLb,
    /// SO_EXCLUSIVEADDRUSE (Windows): no other socket may bind the address.
    ExclusiveAddrUse,
    /// SO_EXCLBIND (illumos): exclusive binding.
    ExclBind,
    /// SO_LINGER: whether and how long a close waits for unsent data.
    Linger,
    /// IPV6_V6ONLY: an IPv6 socket takes IPv6 traffic only, not IPv4-mapped.
    V6Only,
    /// O_NONBLOCK (FIONBIO on Windows): calls return at once instead of waiting.
    NonBlocking,
    /// IP_ADD_MEMBERSHIP (IPv6: IPV6_JOIN_GROUP): join a multicast group on an interface.
    Join,
    /// IP_DROP_MEMBERSHIP (IPv6: IPV6_LEAVE_GROUP): leave a joined multicast group.
    Leave,
    /// IP_MULTICAST_IF / IPV6_MULTICAST_IF: the interface multicast datagrams are sent from.
    MulticastIf,
    /// IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP: whether the sender's host gets its own
    /// multicast datagrams.
    MulticastLoop,
    /// IP_MULTICAST_ALL / IPV6_MULTICAST_ALL (Linux): whether a socket bound to
    /// a group's port receives every group any socket of the host joined (on,
    /// Linux's default) or only those it joined itself. ip(7), ipv6(7).
    MulticastAll,
    /// SO_BROADCAST: may send to a broadcast address.
    Broadcast,
    /// SO_BINDTODEVICE (Linux): the socket uses one interface only.
    BindToDevice,
    /// IP_BOUND_IF / IPV6_BOUND_IF (macOS, illumos): the same, by index.
    BoundIf,
}

impl Opt {
    /// Every option, in the order help texts and schemas list them.
    pub const ALL: &'static [Opt] = &[
        Opt::ReuseAddr,
        Opt::ReusePort,
        Opt::ReusePortLb,
        Opt::ExclusiveAddrUse,
        Opt::ExclBind,
        Opt::Linger,
        Opt::V6Only,
        Opt::NonBlocking,
        Opt::Join,
        Opt::Leave,
        Opt::MulticastIf,
        Opt::MulticastLoop,
        Opt::MulticastAll,
        Opt::Broadcast,
        Opt::BindToDevice,
        Opt::BoundIf,
    ];

    /// The option's short key in case files (`reuseaddr`, `multicast_if`, ...).
    pub fn key(&self) -> &'static str {
        match self {
            Opt::ReuseAddr => "reuseaddr",
            Opt::ReusePort => "reuseport",
            Opt::ReusePortLb => "reuseport_lb",
            Opt::ExclusiveAddrUse => "exclusiveaddruse",
            Opt::ExclBind => "exclbind",
            Opt::Linger => "linger",
            Opt::V6Only => "v6only",
            Opt::NonBlocking => "nonblocking",
            Opt::Join => "join",
            Opt::Leave => "leave",
            Opt::MulticastIf => "multicast_if",
            Opt::MulticastLoop => "multicast_loop",
            Opt::MulticastAll => "multicast_all",
            Opt::Broadcast => "broadcast",
            Opt::BindToDevice => "bindtodevice",
            Opt::BoundIf => "bound_if",
        }
    }

    /// The option's C name (`SO_REUSEADDR`), used in explanations and skip reasons.
    pub fn c_name(&self) -> &'static str {
        match self {
            Opt::ReuseAddr => "SO_REUSEADDR",
            Opt::ReusePort => "SO_REUSEPORT",
            Opt::ReusePortLb => "SO_REUSEPORT_LB",
            Opt::ExclusiveAddrUse => "SO_EXCLUSIVEADDRUSE",
            Opt::ExclBind => "SO_EXCLBIND",
            Opt::Linger => "SO_LINGER",
            Opt::V6Only => "IPV6_V6ONLY",
            Opt::NonBlocking => "O_NONBLOCK",
            Opt::Join => "IP_ADD_MEMBERSHIP",
            Opt::Leave => "IP_DROP_MEMBERSHIP",
            Opt::MulticastIf => "IP_MULTICAST_IF",
            Opt::MulticastLoop => "IP_MULTICAST_LOOP",
            Opt::MulticastAll => "IP_MULTICAST_ALL",
            Opt::Broadcast => "SO_BROADCAST",
            Opt::BindToDevice => "SO_BINDTODEVICE",
            Opt::BoundIf => "IP_BOUND_IF",
        }
    }

    /// The option a case file names, by its key or its C name.
    pub fn from_key(s: &str) -> Option<Opt> {
        Opt::ALL
            .iter()
            .copied()
            .find(|o| o.key() == s || o.c_name() == s)
    }

    /// Options whose value is a plain on/off switch (usable in `opts = [...]`).
    pub fn is_flag(&self) -> bool {
        matches!(
            self,
            Opt::ReuseAddr
                | Opt::ReusePort
                | Opt::ReusePortLb
                | Opt::ExclusiveAddrUse
                | Opt::ExclBind
                | Opt::V6Only
                | Opt::NonBlocking
                | Opt::MulticastLoop
                | Opt::MulticastAll
                | Opt::Broadcast
        )
    }
}

/// The value a `setopt` step sets, or a `getopt` step reads.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OptValue {
    /// An on/off switch (1 or 0), for the options where [`Opt::is_flag`] holds.
    Bool(bool),
    /// SO_LINGER: `None` is off, `Some(secs)` is {1, secs}.
    Linger(Option<u32>),
    /// A multicast group, with the local interface: an IPv4 address, or an
    /// IPv6 interface name.
    Group {
        /// The multicast group address to join or leave.
        group: IpAddr,
        /// The local interface: an IPv4 address, or an IPv6 interface name.
        iface: String,
    },
    /// IP_MULTICAST_IF: an IPv4 address or an IPv6 interface name.
    Iface(String),
}

impl fmt::Display for OptValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptValue::Bool(b) => write!(f, "{}", if *b { 1 } else { 0 }),
            OptValue::Linger(None) => f.write_str("{0, 0}"),
            OptValue::Linger(Some(s)) => write!(f, "{{1, {s}}}"),
            OptValue::Group { group, iface } => write!(f, "{group} on {iface}"),
            OptValue::Iface(i) => f.write_str(i),
        }
    }
}

/// Where a step's port comes from. Literal port numbers do not exist in the
/// case language: every port is one the kernel handed out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PortRef {
    /// Port 0: the kernel chooses.
    Zero,
    /// A fresh port leased for this test (`"@p"`): free on every address, in
    /// both families and both protocols, when the test first uses it.
    Lease(String),
    /// The local port of a socket of this test.
    Of(String),
    /// A port number, once the engine has resolved the above (never written in cases).
    Number(u16),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Zero => f.write_str("0"),
            PortRef::Lease(l) => write!(f, "@{l}"),
            PortRef::Of(s) => write!(f, "port({s})"),
            PortRef::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Which direction a `shutdown` step shuts (`how = "read"`, `"write"` or `"both"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum How {
    /// SHUT_RD: no more receiving.
    Read,
    /// SHUT_WR: no more sending (TCP sends a FIN).
    Write,
    /// SHUT_RDWR: both directions.
    Both,
}

impl From<How> for std::net::Shutdown {
    fn from(how: How) -> Self {
        match how {
            How::Read => std::net::Shutdown::Read,
            How::Write => std::net::Shutdown::Write,
            How::Both => std::net::Shutdown::Both,
        }
    }
}

impl How {
    /// The direction's name in case files and step lines.
    pub fn as_str(&self) -> &'static str {
        match self {
            How::Read => "read",
            How::Write => "write",
            How::Both => "both",
        }
    }
}

/// A named time band for a measured step (`ok@quick`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Band {
    /// The band's name, the suffix of the outcome (`quick` in `ok@quick`).
    pub name: String,
    /// Shortest time, inclusive, a step may take to fall in this band.
    pub min: Duration,
    /// Longest time, inclusive, a step may take to fall in this band.
    pub max: Duration,
}

/// What a `fanout` or `spread` step reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Observe {
    /// How each datagram was delivered: `each=one|all|none|mixed` (fanout).
    Each,
    /// Which receivers got anything: `who=a+b`.
    Who,
    /// How many listeners got at least one connection (spread).
    Count,
}

/// Where something is in an input file (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file, shared by every location in it.
    pub file: Arc<PathBuf>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One resolved step of a test.
#[derive(Clone, Debug)]
pub struct Step {
    /// Position in the case's step list (stable across parameter values).
    pub index: usize,
    /// Where the step is written in its case file.
    pub at: Location,
    /// The actor a `socket` step creates its socket in (None: the main process).
    pub actor: Option<String>,
    /// What the step does, with every field resolved.
    pub action: Action,
    /// The label under which expectations give this step's outcome.
    pub check: Option<String>,
    /// The OS families the step runs on (None: all). Elsewhere it is skipped,
    /// which lets a case spell out a portable recipe.
    pub os: Option<Vec<OsFamily>>,
    /// A precondition: if the step's outcome is not this, the test cannot
    /// show what it claims and fails without judging later steps.
    pub require: Option<Outcome>,
}

/// One line for a step: `bind b 127.0.0.1:port(a)`, `socket s tcp v4 in child`.
impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if let Some(a) = &self.actor {
            write!(f, " in {a}")?;
        }
        Ok(())
    }
}

/// A parameter value of a grid axis, with the label used in test names.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamValue {
    /// The label that stands for the value in test names and `where` selectors.
    pub label: String,
    /// The value substituted for `{param}` in the case's steps.
    pub value: toml::Value,
}

/// What a test needs from the machine it runs on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Root (or Administrator): actors as other users, network namespaces.
    Root,
    /// Runs only on these families (the case's `only`).
    Os(Vec<OsFamily>),
    /// Uses an option the family may lack (on these families only, when the
    /// step that uses it runs only there).
    Opt(Opt, Option<Vec<OsFamily>>),
    /// Uses an IPv6 socket with IPV6_V6ONLY off.
    DualStack,
    /// Joins an IPv6 multicast group: needs an interface that carries it
    /// (on Linux, a veth pair in a namespace of our own).
    Ipv6Multicast,
    /// Runs steps in helper processes.
    Actors,
    /// Runs an actor as another user.
    OtherUser,
    /// Uses a loopback address other than 127.0.0.1: Linux and Windows
    /// answer on all of 127.0.0.0/8, macOS and the BSDs only on what lo0 has.
    SecondLoopback,
}

/// One case as loaded from its file.
#[derive(Clone, Debug)]
pub struct Case {
    /// `topic::name`, from the file's path under the cases directory.
    pub id: String,
    /// The case's topic: the directory under the cases root its file is in.
    pub topic: String,
    /// Path of the case file.
    pub file: Arc<PathBuf>,
    /// One line: what the case shows (the file's `title`).
    pub title: String,
    /// Where the case's claim comes from: seed files, documents with section ids (the file's
    /// `source`).
    pub source: Vec<String>,
    /// The claim under test, in prose (the file's optional `claim`).
    pub claim: Option<String>,
    /// How long an attempt of each test may take before it is abandoned as hung (`deadline_ms`,
    /// else the default).
    pub deadline: Duration,
    /// The OS families where the case means anything (`only`); None: all.
    pub only: Option<Vec<OsFamily>>,
    /// Whether the case states `requires = ["root"]`.
    pub requires_root: bool,
    /// Grid axes in declaration order.
    pub grid: Vec<(String, Vec<ParamValue>)>,
    /// Check labels in step order, with the step's action kind.
    pub checks: Vec<(String, &'static str)>,
    /// Ids of the claims (cases/claims.toml) this case checks.
    pub claims: Vec<String>,
    /// For a case that tries a recipe: the outcomes under which it works.
    pub recipe: Option<Recipe>,
    /// What the case's claim predicts (`[[holds]]`): the claim holds on a
    /// test where every listed check gives one of its outcomes.
    pub holds: Vec<Holds>,
}

/// One `[[holds]]` entry of a case: for the tests `select` picks (on the
/// families `os` names, all when None), the outcomes the claim predicts.
#[derive(Clone, Debug, PartialEq)]
pub struct Holds {
    /// The `where` selector: grid parameter name → the value labels it picks.
    pub select: Vec<(String, Vec<String>)>,
    /// The OS families the prediction is for (None: all).
    pub os: Option<Vec<OsFamily>>,
    /// The claim ids (of the case's `claims`) this prediction is for; empty:
    /// all of them.
    pub claims: Vec<String>,
    /// Per check label, the outcomes under which the claim holds.
    pub outcomes: Vec<(String, Vec<Outcome>)>,
}

impl Holds {
    /// Whether this entry predicts for `claim` (None: the case's claim as a whole).
    pub fn is_for(&self, claim: Option<&str>) -> bool {
        self.claims.is_empty() || claim.is_some_and(|c| self.claims.iter().any(|x| x == c))
    }

    /// Whether this entry's `os` picks `os` (absent: every OS).
    pub fn is_on(&self, os: OsFamily) -> bool {
        self.os.as_ref().is_none_or(|o| o.contains(&os))
    }

    /// Whether this entry covers `test` when it runs on `os`: its `os` and `where` both pick
    /// it.
    pub fn applies(&self, test: &Test, os: OsFamily) -> bool {
        self.is_on(os)
            && self
                .select
                .iter()
                .all(|(k, labels)| test.param(k).is_some_and(|v| labels.iter().any(|l| l == v)))
    }
}

impl Case {
    /// How many combinations the grid has, before `exclude`.
    pub fn combinations(&self) -> u64 {
        self.grid
            .iter()
            .fold(1u64, |n, (_, values)| n.saturating_mul(values.len() as u64))
    }
}

/// When a recipe "works": each listed check gives one of its outcomes.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Per check label, the outcomes under which the recipe works (`recipe.works`).
    pub works: Vec<(String, Vec<Outcome>)>,
}

/// Whether a recipe works, judged from one set of outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipeVerdict {
    /// Every listed check gave one of its allowed outcomes.
    Works,
    /// Which check broke it, and what it gave.
    Fails(String),
    /// Some outcome is unknown or missing.
    Unknown(String),
}

impl Recipe {
    /// Judges the recipe from `outcome(label)`.
    pub fn verdict(&self, outcome: impl Fn(&str) -> Option<Outcome>) -> RecipeVerdict {
        for (label, allowed) in &self.works {
            match outcome(label) {
                None | Some(Outcome::Unknown) => {
                    return RecipeVerdict::Unknown(format!("{label} is not known"));
                }
                Some(o) if !allowed.contains(&o) => {
                    return RecipeVerdict::Fails(format!("{label} = {o}"));
                }
                Some(_) => {}
            }
        }
        RecipeVerdict::Works
    }
}

impl fmt::Display for RecipeVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipeVerdict::Works => f.write_str("works"),
            RecipeVerdict::Fails(why) => write!(f, "fails ({why})"),
            RecipeVerdict::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// One expanded test: a case with every parameter bound.
#[derive(Clone, Debug)]
pub struct Test {
    /// `topic::case` followed by `::param=label` for each grid axis.
    pub name: String,
    /// The case the test was expanded from.
    pub case: Arc<Case>,
    /// Parameter name → label, in grid order.
    pub params: Vec<(String, String)>,
    /// The test's steps, with parameters substituted and the steps whose `when` is false left
    /// out; tests whose combinations resolve a step alike share it.
    pub steps: Vec<Arc<Step>>,
    /// What the test needs from the machine; decides whether it runs or is skipped here.
    pub needs: Vec<Need>,
}

impl Test {
    /// The label of the test's value for grid parameter `name`, if it has that parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A rough guess of how long the test takes: see
    /// [`Action::expected_wait`](crate::steps::Action::expected_wait).
    pub fn expected_wait(&self) -> Duration {
        self.steps.iter().map(|s| s.action.expected_wait()).sum()
    }

    /// The runtimes other than sockspec's own whose helpers its `spawn`
    /// steps start (`python`, `node`), sorted, each once.
    pub fn helper_runtimes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Spawn(crate::steps::Spawn {
                    runtime: Some(r), ..
                }) if r != "rust" => Some(r.as_str()),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The parameters as a sorted map, as written in the results' `params`.
    pub fn params_map(&self) -> BTreeMap<String, String> {
        self.params.iter().cloned().collect()
    }

    /// Why this test cannot run on `os` at all (whatever the machine), if so.
    pub fn not_applicable(&self, os: OsFamily) -> Option<String> {
        Some(match self.blocker(os)? {
            Need::Os(list) => {
                let names: Vec<_> = list.iter().map(|o| o.as_str()).collect();
                format!("only meaningful on {}", names.join(", "))
            }
            Need::Opt(opt, _) => format!("{os} has no {}", opt.c_name()),
            Need::Ipv6Multicast => {
                "sockspec builds an IPv6 multicast interface only on Linux (a veth pair in a namespace)".into()
            }
            Need::DualStack => {
                format!("{os} has no dual-stack sockets (IPV6_V6ONLY is fixed at 1)")
            }
            // Needs of the machine, not of the OS: never a blocker.
            other => format!("{os} cannot meet {other:?}"),
        })
    }

    /// Whether this test can run on `os` at all ([`not_applicable`](Self::not_applicable)
    /// without its reason, for the claims table and the expectation checks,
    /// which ask it of every test and OS).
    pub fn runs_on(&self, os: OsFamily) -> bool {
        self.blocker(os).is_none()
    }

    /// The first need that `os` cannot meet whatever the machine, if any.
    fn blocker(&self, os: OsFamily) -> Option<&Need> {
        self.needs.iter().find(|need| match need {
            Need::Os(list) => !list.contains(&os),
            Need::Opt(opt, on) => {
                !os.has_opt(*opt) && on.as_ref().is_none_or(|on| on.contains(&os))
            }
            Need::Ipv6Multicast => os != OsFamily::Linux,
            Need::DualStack => !os.dual_stack(),
            _ => false,
        })
    }
}
