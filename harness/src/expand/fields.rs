//! Reading a step's fields, parameters bound, into typed values: names,
//! addresses, ports, durations, option lists. Each mistake is an error at
//! the field's position, naming the grid combination.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use toml::Value;

use super::template::Ctx;
use crate::error::InputError;
use crate::load::StepTemplate;
use crate::model::{Location, Opt, OptValue, OsFamily, PortRef};
use crate::outcome::is_ident;

/// Named addresses usable wherever a case takes an address.
pub const ADDRESS_ALIASES: &[(&str, &str)] = &[
    ("any4", "0.0.0.0"),
    ("lo4", "127.0.0.1"),
    ("lo4b", "127.0.0.2"),
    ("any6", "::"),
    ("lo6", "::1"),
    ("mapped_any", "::ffff:0.0.0.0"),
    ("mapped_lo", "::ffff:127.0.0.1"),
    ("mapped_lo4b", "::ffff:127.0.0.2"),
    // Administratively scoped (RFC 2365): never leaves the host on loopback.
    ("group4", "239.255.42.1"),
    // Site-local scope (RFC 4291): binding it needs no scope id (link-local
    // ff12:: would: EINVAL), and it stays on the private namespace's veth.
    ("group6", "ff15::5eed"),
];

/// An address or one of [`ADDRESS_ALIASES`].
pub fn parse_addr(s: &str) -> Option<IpAddr> {
    ADDRESS_ALIASES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, a)| a.parse().expect("alias table holds addresses"))
        .or_else(|| s.parse().ok())
}

/// One template's fields, resolved for a combination.
pub struct Fields<'a> {
    /// The step as written, with its fields before substitution.
    pub t: &'a StepTemplate,
    /// The grid combination the step is resolved for: its parameter values.
    pub ctx: &'a Ctx<'a>,
    /// Errors found while reading the fields, each marked with the combination.
    pub errors: Vec<InputError>,
}

impl<'a> Fields<'a> {
    /// Whether the step has this field.
    pub fn has(&self, name: &str) -> bool {
        self.t.field(name).is_some()
    }

    /// An error about the step as a whole (at its `{`).
    pub fn err_at_step(&mut self, msg: &str) {
        let at = self.t.at.clone();
        self.err(&at, msg.to_string());
    }

    /// An option name out of `allowed`; the error lists them.
    pub fn opt(&mut self, name: &str, allowed: &[Opt]) -> Option<Opt> {
        let keys: Vec<&str> = allowed.iter().map(|o| o.key()).collect();
        self.parse(name, &format!("one of: {}", keys.join(", ")), |v| {
            v.as_str()
                .and_then(Opt::from_key)
                .filter(|o| allowed.contains(o))
        })
    }

    /// Records an error at `at`, marked with the current combination.
    pub fn err(&mut self, at: &Location, msg: String) {
        self.errors
            .push(InputError::at(at, msg).in_combo(self.ctx.combo()));
    }

    /// The field `name` with the combination's parameters substituted; `None` if it is absent
    /// or does not resolve (an error is recorded).
    pub fn raw(&mut self, name: &str) -> Option<(Location, Value)> {
        let (at, v) = self.t.field(name)?;
        match self.ctx.subst(v) {
            Ok(v) => Some((at.clone(), v)),
            Err(msg) => {
                let at = at.clone();
                self.err(&at, format!("`{name}`: {msg}"));
                None
            }
        }
    }

    /// The field `name` read by `f`; when `f` gives `None`, records an error saying it must be
    /// `what`.
    pub fn parse<T>(
        &mut self,
        name: &str,
        what: &str,
        f: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        let (at, v) = self.raw(name)?;
        match f(&v) {
            Some(x) => Some(x),
            None => {
                self.err(&at, format!("`{name}` must be {what}, not {v}"));
                None
            }
        }
    }

    /// A name field (a socket, actor or lease name: lower-case letters, digits, `_`).
    pub fn ident(&mut self, name: &str) -> Option<String> {
        self.parse(name, "a name (lower-case letters, digits, `_`)", |v| {
            v.as_str().filter(|s| is_ident(s)).map(str::to_string)
        })
    }

    /// An address field: an IP address literal or an alias (`lo4`, `any6`, `group4`, ...).
    pub fn addr(&mut self, name: &str) -> Option<IpAddr> {
        self.parse(
            name,
            "an IP address or one of any4, lo4, lo4b, any6, lo6, mapped_any, mapped_lo, mapped_lo4b, group4, group6",
            |v| v.as_str().and_then(parse_addr),
        )
    }

    /// A port field: 0, a lease (`"@p"`, `"@p!low"`), or a socket's name for that socket's
    /// port.
    pub fn port(&mut self, name: &str) -> Option<PortRef> {
        self.parse(
            name,
            "0 (the kernel chooses), \"@name\" (a fresh leased port), \"@name!low\" (a fresh leased port below 1024, the privileged range) or a socket name (that socket's port); port numbers are never written",
            |v| match v {
                Value::Integer(0) => Some(PortRef::Zero),
                Value::String(s) => match s.strip_prefix('@') {
                    Some(l) if is_ident(l) => Some(PortRef::Lease(l.to_string())),
                    Some(l)
                        if l
                            .strip_suffix(crate::exec::ports::LOW_SUFFIX)
                            .is_some_and(is_ident) =>
                    {
                        Some(PortRef::Lease(l.to_string()))
                    }
                    Some(_) => None,
                    None if is_ident(s) => Some(PortRef::Of(s.clone())),
                    None => None,
                },
                _ => None,
            },
        )
    }

    /// An integer field from 0 to `max`.
    pub fn uint(&mut self, name: &str, max: i64) -> Option<u64> {
        self.parse(name, &format!("an integer from 0 to {max}"), |v| {
            v.as_integer()
                .filter(|i| (0..=max).contains(i))
                .map(|i| i as u64)
        })
    }

    /// An optional field: `default` when it is absent, else what `read`
    /// makes of it (`None` once an error is recorded).
    pub fn or<T>(
        &mut self,
        name: &str,
        default: T,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        if self.t.field(name).is_none() {
            Some(default)
        } else {
            read(self)
        }
    }

    /// A duration field in milliseconds (0 to 60000), `default` when it is absent.
    pub fn ms(&mut self, name: &str, default: Duration) -> Duration {
        self.or(name, default, |f| {
            f.uint(name, 60_000).map(Duration::from_millis)
        })
        .unwrap_or(default)
    }

    /// A non-empty list of socket names.
    pub fn idents(&mut self, name: &str) -> Option<Vec<String>> {
        self.parse(name, "a non-empty list of socket names", |v| {
            let a = v.as_array()?;
            let out: Option<Vec<String>> = a
                .iter()
                .map(|i| i.as_str().filter(|s| is_ident(s)).map(str::to_string))
                .collect();
            out.filter(|o| !o.is_empty())
        })
    }

    /// A list of on/off options (`["reuseaddr", "reuseport"]`, `"reuseaddr+reuseport"` or
    /// `"none"`); options that take a value are errors.
    pub fn flag_opts(&mut self, name: &str) -> Option<Vec<Opt>> {
        let (at, v) = self.raw(name)?;
        let words: Vec<String> = match &v {
            Value::String(s) if s == "none" || s.is_empty() => Vec::new(),
            Value::String(s) => s.split('+').map(str::to_string).collect(),
            Value::Array(a) if a.iter().all(Value::is_str) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => {
                self.err(
                    &at,
                    format!(
                        "`{name}` must be a list of options or \"opt+opt\" or \"none\", not {v}"
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for w in words {
            match Opt::from_key(&w) {
                Some(o) if o.is_flag() => out.push(o),
                Some(o) => self.err(
                    &at,
                    format!("`{}` takes a value; set it with a `setopt` step", o.key()),
                ),
                None => self.err(&at, format!("unknown option `{w}`{}", opt_help())),
            }
        }
        Some(out)
    }
}

fn opt_help() -> String {
    let names: Vec<&str> = Opt::ALL.iter().map(|o| o.key()).collect();
    format!(" (options: {})", names.join(", "))
}

/// The `value` field of a `setopt` step, read as `opt` takes it (a flag, SO_LINGER's pair, a
/// group, an interface).
pub fn opt_value(f: &mut Fields<'_>, opt: Opt) -> Option<OptValue> {
    match opt {
        Opt::Linger => f.parse(
            "value",
            "[on, seconds] (e.g. [1, 0]) or false",
            |v| match v {
                Value::Boolean(false) => Some(OptValue::Linger(None)),
                Value::Array(a) if a.len() == 2 => {
                    let on = a[0].as_integer().or(a[0].as_bool().map(i64::from))?;
                    let secs = a[1].as_integer().filter(|s| (0..=3600).contains(s))?;
                    Some(OptValue::Linger((on != 0).then_some(secs as u32)))
                }
                _ => None,
            },
        ),
        Opt::Join | Opt::Leave => {
            let group = f.parse("value", "a multicast group address", |v| {
                v.as_str().and_then(parse_addr).filter(IpAddr::is_multicast)
            })?;
            let iface = match f.t.field("iface") {
                Some(_) => f.parse("iface", "an IPv4 address or an interface name", |v| {
                    v.as_str().map(str::to_string)
                })?,
                None => default_iface(&group),
            };
            Some(OptValue::Group { group, iface })
        }
        Opt::MulticastIf => f
            .parse("value", "an IPv4 address or an interface name", |v| {
                v.as_str().map(|s| {
                    parse_addr(s)
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| s.to_string())
                })
            })
            .map(OptValue::Iface),
        Opt::BindToDevice | Opt::BoundIf => f
            .parse(
                "value",
                "an interface name (`lo` on Linux, `lo0` on macOS)",
                |v| {
                    v.as_str()
                        .filter(|s| !s.is_empty() && s.len() < 16)
                        .map(str::to_string)
                },
            )
            .map(OptValue::Iface),
        _ => f.parse("value", "true or false (or 1 or 0)", |v| match v {
            Value::Boolean(b) => Some(OptValue::Bool(*b)),
            Value::Integer(0) => Some(OptValue::Bool(false)),
            Value::Integer(1) => Some(OptValue::Bool(true)),
            _ => None,
        }),
    }
}

/// Multicast stays on loopback for IPv4 and on the namespace's veth for IPv6.
fn default_iface(group: &IpAddr) -> String {
    match group {
        IpAddr::V4(_) => Ipv4Addr::LOCALHOST.to_string(),
        IpAddr::V6(_) => crate::sys::V6_MCAST_IFACE.to_string(),
    }
}

/// The `os` / `not_os` filter of a step, as the set of families it runs on.
pub fn step_os(f: &mut Fields<'_>) -> Option<Vec<OsFamily>> {
    let list = |f: &mut Fields<'_>, name: &str| -> Option<Vec<OsFamily>> {
        f.parse(
            name,
            &format!("a list of OS families ({})", OsFamily::names()),
            |v| {
                v.as_array()?
                    .iter()
                    .map(|x| x.as_str().and_then(OsFamily::from_name))
                    .collect::<Option<Vec<_>>>()
                    .filter(|l| !l.is_empty())
            },
        )
    };
    match (f.t.field("os").is_some(), f.t.field("not_os").is_some()) {
        (false, false) => None,
        (true, false) => list(f, "os"),
        (false, true) => {
            let not = list(f, "not_os")?;
            Some(
                OsFamily::ALL
                    .iter()
                    .copied()
                    .filter(|o| !not.contains(o))
                    .collect(),
            )
        }
        (true, true) => {
            let at = f.t.at.clone();
            f.err(&at, "give `os` or `not_os`, not both".into());
            None
        }
    }
}
