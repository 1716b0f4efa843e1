//! Stage 2: expand each case's parameter grid into tests, resolving every step
//! into a typed [`Action`] and checking that the test makes sense (sockets and
//! actors exist before they are used, labels are unique, ...).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use toml::Value;

use crate::error::InputError;
use crate::load::{LoadedCase, StepTemplate, selector_labels};
use crate::model::{
    Action, Band, Family, How, Location, Need, Observe, Opt, OptValue, OsFamily, ParamValue,
    PortRef, Proto, Step, Test,
};
use crate::outcome::{Outcome, is_ident};

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

/// Defaults for steps that wait.
pub const DEFAULT_RECV_WAIT: Duration = Duration::from_millis(1000);
pub const DEFAULT_STATE_WAIT: Duration = Duration::from_millis(1000);
pub const DEFAULT_FANOUT_WAIT: Duration = Duration::from_millis(200);

pub fn parse_addr(s: &str) -> Option<IpAddr> {
    ADDRESS_ALIASES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, a)| a.parse().expect("alias table holds addresses"))
        .or_else(|| s.parse().ok())
}

/// Expand every loaded case. Errors are pushed; tests of erroneous cases are dropped.
pub fn expand_all(cases: &[LoadedCase], errors: &mut Vec<InputError>) -> Vec<Test> {
    let mut tests = Vec::new();
    for case in cases {
        tests.extend(expand(case, errors));
    }
    let mut seen: HashMap<&str, &Test> = HashMap::new();
    let mut dups = Vec::new();
    for t in &tests {
        if let Some(first) = seen.insert(&t.name, t) {
            dups.push(
                InputError::file(
                    &t.case.file,
                    format!(
                        "test name `{}` is also produced by {}",
                        t.name,
                        first.case.file.display()
                    ),
                )
                .help("rename one of the cases or its parameters"),
            );
        }
    }
    errors.extend(dups);
    tests
}

/// Expand one case.
pub fn expand(lc: &LoadedCase, errors: &mut Vec<InputError>) -> Vec<Test> {
    let case = &lc.case;
    let mut combos: Vec<Vec<(String, ParamValue)>> = vec![Vec::new()];
    for (name, values) in &case.grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((name.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let mut used_excludes = vec![false; lc.excludes.len()];
    combos.retain(|combo| {
        let mut keep = true;
        for (i, ex) in lc.excludes.iter().enumerate() {
            let hit = ex.select.iter().all(|(name, labels)| {
                combo
                    .iter()
                    .any(|(n, v)| n == name && labels.contains(&v.label))
            });
            if hit {
                used_excludes[i] = true;
                keep = false;
            }
        }
        keep
    });
    let before = errors.len();
    for (ex, used) in lc.excludes.iter().zip(&used_excludes) {
        if !used {
            errors.push(
                InputError::at(&ex.at, "this `exclude` matches no combination of the grid")
                    .help("check its parameter values, or remove it"),
            );
        }
    }
    if combos.is_empty() {
        let at = lc.grid_at.clone().unwrap_or(Location {
            file: case.file.clone(),
            line: 1,
            col: 1,
        });
        errors.push(
            InputError::at(
                &at,
                "the grid expands to nothing: every combination is excluded",
            )
            .help("loosen the `exclude` entries"),
        );
    }
    if errors.len() > before {
        return Vec::new();
    }

    let mut tests = Vec::new();
    let mut case_errors = Vec::new();
    for combo in combos {
        let mut name = case.id.clone();
        for (k, v) in &combo {
            name.push_str(&format!("::{k}={}", v.label));
        }
        match resolve_test(lc, &combo) {
            Ok((steps, needs)) => tests.push(Test {
                name,
                case: case.clone(),
                params: combo
                    .iter()
                    .map(|(k, v)| (k.clone(), v.label.clone()))
                    .collect(),
                steps,
                needs,
            }),
            Err(errs) => case_errors.extend(errs),
        }
    }
    case_errors.sort();
    case_errors.dedup();
    if !case_errors.is_empty() {
        errors.extend(case_errors);
        return Vec::new();
    }
    tests
}

struct Ctx<'a> {
    params: &'a [(String, ParamValue)],
}

impl Ctx<'_> {
    fn describe(&self) -> String {
        if self.params.is_empty() {
            return String::new();
        }
        let p: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.label))
            .collect();
        format!(" (with {})", p.join(", "))
    }

    fn subst(&self, v: &Value) -> Result<Value, String> {
        match v {
            Value::String(s) => {
                if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'))
                    && name.split('.').all(is_ident)
                {
                    return self.lookup(name);
                }
                if !s.contains('{') {
                    return Ok(v.clone());
                }
                let mut out = String::new();
                let mut rest = s.as_str();
                while let Some(start) = rest.find('{') {
                    out.push_str(&rest[..start]);
                    let end = rest[start..]
                        .find('}')
                        .ok_or_else(|| format!("unclosed `{{` in \"{s}\""))?;
                    let name = &rest[start + 1..start + end];
                    match self.lookup(name)? {
                        Value::String(x) => out.push_str(&x),
                        other => out.push_str(&other.to_string()),
                    }
                    rest = &rest[start + end + 1..];
                }
                out.push_str(rest);
                Ok(Value::String(out))
            }
            Value::Array(items) => items
                .iter()
                .map(|i| self.subst(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Table(t) => {
                let mut out = toml::Table::new();
                for (k, v) in t {
                    out.insert(k.clone(), self.subst(v)?);
                }
                Ok(Value::Table(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// A parameter's value; `{p.field}` reads a field of a table value.
    fn lookup(&self, path: &str) -> Result<Value, String> {
        let mut parts = path.split('.');
        let name = parts.next().unwrap_or_default();
        let p = self.param(name)?;
        let mut v = &p.value;
        for field in parts {
            v = v.get(field).ok_or_else(|| {
                format!(
                    "`{{{path}}}`: the value of `{name}` ({name}={}) has no field `{field}`",
                    p.label
                )
            })?;
        }
        Ok(v.clone())
    }

    fn param(&self, name: &str) -> Result<&ParamValue, String> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                let known: Vec<&str> = self.params.iter().map(|(k, _)| k.as_str()).collect();
                if known.is_empty() {
                    format!("`{{{name}}}` refers to a parameter, but this case has no grid")
                } else {
                    format!(
                        "`{{{name}}}` is not a grid parameter (this case has: {})",
                        known.join(", ")
                    )
                }
            })
    }
}

/// One template's fields, resolved for a combination.
struct Fields<'a> {
    t: &'a StepTemplate,
    ctx: &'a Ctx<'a>,
    errors: Vec<InputError>,
}

impl<'a> Fields<'a> {
    fn err(&mut self, at: &Location, msg: String) {
        self.errors
            .push(InputError::at(at, format!("{msg}{}", self.ctx.describe())));
    }

    fn raw(&mut self, name: &str) -> Option<(Location, Value)> {
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

    fn parse<T>(
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

    fn ident(&mut self, name: &str) -> Option<String> {
        self.parse(name, "a name (lower-case letters, digits, `_`)", |v| {
            v.as_str().filter(|s| is_ident(s)).map(str::to_string)
        })
    }

    fn addr(&mut self, name: &str) -> Option<IpAddr> {
        self.parse(
            name,
            "an IP address or one of any4, lo4, lo4b, any6, lo6, mapped_any, mapped_lo, mapped_lo4b, group4, group6",
            |v| v.as_str().and_then(parse_addr),
        )
    }

    fn port(&mut self, name: &str) -> Option<PortRef> {
        self.parse(
            name,
            "0 (the kernel chooses), \"@name\" (a fresh leased port) or a socket name (that socket's port); port numbers are never written",
            |v| match v {
                Value::Integer(0) => Some(PortRef::Zero),
                Value::String(s) => match s.strip_prefix('@') {
                    Some(l) if is_ident(l) => Some(PortRef::Lease(l.to_string())),
                    Some(_) => None,
                    None if is_ident(s) => Some(PortRef::Of(s.clone())),
                    None => None,
                },
                _ => None,
            },
        )
    }

    fn uint(&mut self, name: &str, max: i64) -> Option<u64> {
        self.parse(name, &format!("an integer from 0 to {max}"), |v| {
            v.as_integer()
                .filter(|i| (0..=max).contains(i))
                .map(|i| i as u64)
        })
    }

    /// An optional field: `default` when it is absent, else what `read`
    /// makes of it (`None` once an error is recorded).
    fn or<T>(
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

    fn ms(&mut self, name: &str, default: Duration) -> Duration {
        self.or(name, default, |f| {
            f.uint(name, 60_000).map(Duration::from_millis)
        })
        .unwrap_or(default)
    }

    fn idents(&mut self, name: &str) -> Option<Vec<String>> {
        self.parse(name, "a non-empty list of socket names", |v| {
            let a = v.as_array()?;
            let out: Option<Vec<String>> = a
                .iter()
                .map(|i| i.as_str().filter(|s| is_ident(s)).map(str::to_string))
                .collect();
            out.filter(|o| !o.is_empty())
        })
    }

    fn flag_opts(&mut self, name: &str) -> Option<Vec<Opt>> {
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

/// What the expansion knows about a socket while it walks the steps.
struct SockInfo {
    actor: Option<String>,
    proto: Proto,
    family: Family,
    open: bool,
    /// Has a local port: bound, or bound implicitly by connect, listen or send.
    bound: bool,
}

#[derive(Default)]
struct Scope {
    socks: BTreeMap<String, SockInfo>,
    actors: BTreeMap<String, bool>,
    labels: BTreeSet<String>,
    leases: BTreeSet<String>,
}

fn resolve_test(
    lc: &LoadedCase,
    combo: &[(String, ParamValue)],
) -> Result<(Vec<Step>, Vec<Need>), Vec<InputError>> {
    let ctx = Ctx { params: combo };
    let mut errors = Vec::new();
    let mut scope = Scope::default();
    let mut steps = Vec::new();
    let mut needs = BTreeSet::new();
    if let Some(only) = &lc.case.only {
        needs.insert(Need::Os(only.clone()));
    }
    if lc.case.requires_root {
        needs.insert(Need::Root);
    }
    for t in &lc.steps {
        if !step_applies(t, &ctx, &lc.case.grid, &mut errors) {
            continue;
        }
        let mut f = Fields {
            t,
            ctx: &ctx,
            errors: Vec::new(),
        };
        let action = resolve_action(&mut f);
        let check = match t.field("check") {
            Some((_, Value::Boolean(true))) => action.as_ref().map(|a| match a.sock() {
                Some(s) => format!("{}_{s}", t.kind),
                None => match a {
                    Action::SamePort { a, .. } => format!("same_port_{a}"),
                    Action::Spawn { actor, .. }
                    | Action::Kill { actor }
                    | Action::Exit { actor } => format!("{}_{actor}", t.kind),
                    _ => t.kind.to_string(),
                },
            }),
            Some((_, Value::String(s))) => Some(s.clone()),
            _ => None,
        };
        let actor = if t.kind == "socket" {
            f.raw("actor").and_then(|_| f.ident("actor"))
        } else {
            None
        };
        let require = f.raw("require").and_then(|(at, v)| match v.as_str() {
            Some(s) => match s.parse::<Outcome>() {
                Ok(o) => Some(o),
                Err(e) => {
                    f.err(&at, format!("`require`: {e}"));
                    None
                }
            },
            None => {
                f.err(&at, "`require` must be an outcome string".into());
                None
            }
        });
        let os = step_os(&mut f);
        let probe = match f.t.field("probe") {
            Some(_) => f
                .parse("probe", "true or false", Value::as_bool)
                .unwrap_or(false),
            None => false,
        };
        if probe && t.field("check").is_none() {
            let at = t.at.clone();
            f.err(
                &at,
                "a `probe` step asks whether an option exists: give it a `check`".into(),
            );
        }
        errors.append(&mut f.errors);
        let Some(action) = action else { continue };
        if let Some(o) = &require
            && !action.accepts(o)
        {
            errors.push(InputError::at(
                &t.at,
                format!("a `{}` step cannot have the outcome `{o}`", t.kind),
            ));
        }
        if let Some(label) = &check
            && !scope.labels.insert(label.clone())
        {
            errors.push(
                InputError::at(
                    &t.at,
                    format!(
                        "check label `{label}` is used twice in one test{}",
                        ctx.describe()
                    ),
                )
                .help("give one of the steps its own label: `check = \"name\"`"),
            );
        }
        let opt_scope = OptScope {
            os: os.clone(),
            probe,
        };
        check_semantics(
            &action,
            actor.as_deref(),
            &t.at,
            &opt_scope,
            &mut scope,
            &mut needs,
            &mut errors,
        );
        steps.push(Step {
            index: t.index,
            at: t.at.clone(),
            actor,
            action,
            check,
            os,
            require,
        });
    }
    if errors.is_empty() {
        Ok((steps, needs.into_iter().collect()))
    } else {
        Err(errors)
    }
}

fn step_applies(
    t: &StepTemplate,
    ctx: &Ctx<'_>,
    grid: &[(String, Vec<ParamValue>)],
    errors: &mut Vec<InputError>,
) -> bool {
    let Some((at, when)) = t.field("when") else {
        return true;
    };
    let Value::Table(sel) = when else {
        errors.push(
            InputError::at(at, "`when` must be a table of grid parameters and values")
                .help("e.g. `when = { listen = true }` or `when = { proto = [\"tcp\"] }`"),
        );
        return false;
    };
    let mut applies = true;
    for (name, v) in sel {
        let Some((_, axis)) = grid.iter().find(|(n, _)| n == name) else {
            errors.push(InputError::at(
                at,
                format!("`when` names `{name}`, which is not a grid parameter"),
            ));
            return false;
        };
        match selector_labels(v, axis) {
            Ok(labels) => {
                let current = ctx
                    .params
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| &p.label);
                if !current.is_some_and(|c| labels.contains(c)) {
                    applies = false;
                }
            }
            Err(msg) => {
                errors.push(InputError::at(at, format!("`when.{name}`: {msg}")));
                return false;
            }
        }
    }
    applies
}

fn resolve_action(f: &mut Fields<'_>) -> Option<Action> {
    let kind = f.t.kind;
    Some(match kind {
        "socket" => {
            let name = f.ident("name");
            let proto = f.parse("type", "\"tcp\" or \"udp\"", |v| match v.as_str()? {
                "tcp" => Some(Proto::Tcp),
                "udp" => Some(Proto::Udp),
                _ => None,
            });
            let family = f.parse(
                "family",
                "\"v4\", \"v6\" or an address of the family",
                |v| match v.as_str()? {
                    "v4" => Some(Family::V4),
                    "v6" => Some(Family::V6),
                    s => parse_addr(s).map(|a| Family::of(&a)),
                },
            );
            let opts = f.or("opts", Vec::new(), |f| f.flag_opts("opts"))?;
            Action::Socket {
                name: name?,
                proto: proto?,
                family: family?,
                opts,
            }
        }
        "setopt" => {
            let sock = f.ident("sock");
            let opt = f.parse("opt", "an option name", |v| {
                v.as_str().and_then(Opt::from_key)
            });
            let opt = opt?;
            let value = opt_value(f, opt)?;
            Action::SetOpt {
                sock: sock?,
                opt,
                value,
            }
        }
        "getopt" => {
            let sock = f.ident("sock");
            let opt = f.parse("opt", "an on/off option name", |v| {
                v.as_str()
                    .and_then(Opt::from_key)
                    .filter(|o| o.is_flag() || *o == Opt::Linger)
            });
            Action::GetOpt {
                sock: sock?,
                opt: opt?,
            }
        }
        "bind" | "connect" => {
            let sock = f.ident("sock");
            let addr = f.addr("addr");
            let port = f.port("port");
            let (sock, addr, port) = (sock?, addr?, port?);
            if kind == "bind" {
                Action::Bind { sock, addr, port }
            } else {
                Action::Connect { sock, addr, port }
            }
        }
        "listen" => {
            let sock = f.ident("sock");
            let backlog = f.or("backlog", 128, |f| {
                f.uint("backlog", 4096).map(|n| n as i32)
            })?;
            Action::Listen {
                sock: sock?,
                backlog,
            }
        }
        "accept" => Action::Accept {
            sock: f.ident("sock")?,
            name: f.ident("name")?,
        },
        "send" => {
            let sock = f.ident("sock");
            let bytes = f.or("bytes", 8, |f| {
                f.uint("bytes", 16 << 20).map(|n| n as usize)
            })?;
            let to = match (
                f.t.field("to_addr").is_some(),
                f.t.field("to_port").is_some(),
            ) {
                (false, false) => None,
                (true, true) => Some((f.addr("to_addr")?, f.port("to_port")?)),
                _ => {
                    let at = f.t.at.clone();
                    f.err(&at, "`to_addr` and `to_port` go together".into());
                    return None;
                }
            };
            Action::Send {
                sock: sock?,
                bytes,
                to,
            }
        }
        "recv" => Action::Recv {
            sock: f.ident("sock")?,
            wait: f.ms("wait_ms", DEFAULT_RECV_WAIT),
        },
        "shutdown" => Action::Shutdown {
            sock: f.ident("sock")?,
            how: f.parse("how", "\"read\", \"write\" or \"both\"", |v| {
                match v.as_str()? {
                    "read" => Some(How::Read),
                    "write" => Some(How::Write),
                    "both" => Some(How::Both),
                    _ => None,
                }
            })?,
        },
        "close" => {
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
            Action::Close { sock: sock?, bands }
        }
        "tcp_state" => {
            let sock = f.ident("sock");
            let want = f.or("want", None, |f| {
                f.parse(
                    "want",
                    "a TCP state name (TIME_WAIT, none, ...)",
                    |v| match v.as_str()?.parse::<Outcome>().ok()? {
                        Outcome::State(s) => Some(s),
                        _ => None,
                    },
                )
                .map(Some)
            })?;
            Action::TcpState {
                sock: sock?,
                want,
                wait: f.ms("wait_ms", DEFAULT_STATE_WAIT),
            }
        }
        "fanout" => {
            let sender = f.ident("sock");
            let addr = f.addr("addr");
            let port = f.port("port");
            let receivers = f.idents("receivers");
            let count = f.or("count", 10, |f| f.uint("count", 1000).map(|n| n as u32))?;
            let observe = f.or("observe", Observe::Each, |f| {
                f.parse("observe", "\"each\" or \"who\"", |v| match v.as_str()? {
                    "each" => Some(Observe::Each),
                    "who" => Some(Observe::Who),
                    _ => None,
                })
            })?;
            Action::Fanout {
                sender: sender?,
                addr: addr?,
                port: port?,
                receivers: receivers?,
                count: count.max(1),
                observe,
                wait: f.ms("wait_ms", DEFAULT_FANOUT_WAIT),
            }
        }
        "spread" => {
            let addr = f.addr("addr");
            let port = f.port("port");
            let listeners = f.idents("listeners");
            let count = f.or("count", 32, |f| f.uint("count", 4096).map(|n| n as u32))?;
            let observe = f.or("observe", Observe::Each, |f| {
                f.parse("observe", "\"count\" or \"who\"", |v| match v.as_str()? {
                    "count" => Some(Observe::Each),
                    "who" => Some(Observe::Who),
                    _ => None,
                })
            })?;
            Action::Spread {
                addr: addr?,
                port: port?,
                listeners: listeners?,
                count: count.max(1),
                observe,
            }
        }
        "fill" => Action::Fill {
            sock: f.ident("sock")?,
        },
        "drain" => Action::Drain {
            sock: f.ident("sock")?,
            wait: f.ms("wait_ms", DEFAULT_RECV_WAIT),
        },
        "same_port" => Action::SamePort {
            a: f.ident("a")?,
            b: f.ident("b")?,
        },
        "sleep" => Action::Sleep {
            ms: f.uint("ms", 10_000)?,
        },
        "spawn" => {
            let actor = f.ident("actor");
            let user = f.or("user", None, |f| {
                f.parse("user", "a numeric uid or \"nobody\" (65534)", |v| match v {
                    Value::String(s) if s == "nobody" => Some(65534),
                    Value::Integer(i) if (1..=u32::MAX as i64).contains(i) => Some(*i as u32),
                    _ => None,
                })
                .map(Some)
            })?;
            Action::Spawn {
                actor: actor?,
                user,
            }
        }
        "pass" => {
            let sock = f.ident("sock");
            let to = f.ident("to");
            Action::Pass {
                sock: sock?,
                to: to?,
            }
        }
        "kill" => Action::Kill {
            actor: f.ident("actor")?,
        },
        "exit" => Action::Exit {
            actor: f.ident("actor")?,
        },
        other => unreachable!("load accepted unknown step kind {other}"),
    })
}

fn opt_value(f: &mut Fields<'_>, opt: Opt) -> Option<OptValue> {
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

/// How a step's options count as needs: only on the families it runs on, and
/// not at all for a probe (which asks whether the option exists).
struct OptScope {
    os: Option<Vec<OsFamily>>,
    probe: bool,
}

impl OptScope {
    fn need(&self, opt: Opt) -> Option<Need> {
        (!self.probe).then(|| Need::Opt(opt, self.os.clone()))
    }
}

/// The `os` / `not_os` filter of a step, as the set of families it runs on.
fn step_os(f: &mut Fields<'_>) -> Option<Vec<OsFamily>> {
    let list = |f: &mut Fields<'_>, name: &str| -> Option<Vec<OsFamily>> {
        f.parse(
            name,
            "a list of OS families (linux, macos, windows, freebsd, openbsd, netbsd, illumos, wine)",
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

fn check_semantics(
    action: &Action,
    actor: Option<&str>,
    at: &Location,
    opt_scope: &OptScope,
    scope: &mut Scope,
    needs: &mut BTreeSet<Need>,
    errors: &mut Vec<InputError>,
) {
    let mut err = |msg: String, help: Option<&str>| {
        let mut e = InputError::at(at, msg);
        if let Some(h) = help {
            e = e.help(h);
        }
        errors.push(e);
    };
    // Sockets the step needs open, and those it may use after close (for their
    // remembered endpoint).
    let (open_needed, remembered): (Vec<&str>, Vec<&str>) = match action {
        Action::Socket { .. } => (vec![], vec![]),
        Action::TcpState { sock, .. } => (vec![], vec![sock]),
        Action::SamePort { a, b } => (vec![], vec![a, b]),
        other => (other.socks(), vec![]),
    };
    for s in open_needed.iter().chain(&remembered) {
        match scope.socks.get(*s) {
            None => err(
                format!("socket `{s}` is used before a `socket` step creates it"),
                Some(
                    "create it first: `{ do = \"socket\", name = ..., type = ..., family = ... }`",
                ),
            ),
            Some(info) if !info.open && open_needed.contains(s) => {
                err(format!("socket `{s}` is used after it was closed"), None)
            }
            _ => {}
        }
    }
    let mut port_ref = |p: &PortRef, scope: &mut Scope| match p {
        PortRef::Of(s) if !scope.socks.contains_key(s) => err(
            format!("port of `{s}`: no socket `{s}` exists at this point"),
            Some("a port is \"@lease\", 0, or the name of an earlier socket"),
        ),
        PortRef::Of(s) if !scope.socks[s].bound => err(
            format!("port of `{s}`: `{s}` has no port yet at this point (it is not bound)"),
            Some("bind it first, or use a leased port (\"@p\") for both"),
        ),
        PortRef::Lease(l) => {
            scope.leases.insert(l.clone());
        }
        _ => {}
    };
    match action {
        Action::Bind { port, .. } | Action::Connect { port, .. } => port_ref(port, scope),
        Action::Send {
            to: Some((_, p)), ..
        }
        | Action::Fanout { port: p, .. }
        | Action::Spread { port: p, .. } => port_ref(p, scope),
        _ => {}
    }
    // Multi-socket steps run inside one actor.
    let socks = action.socks();
    if socks.len() > 1 && !matches!(action, Action::SamePort { .. }) {
        let actors: BTreeSet<Option<&str>> = socks
            .iter()
            .filter_map(|s| scope.socks.get(*s).map(|i| i.actor.as_deref()))
            .collect();
        if actors.len() > 1 {
            err(
                format!(
                    "a `{}` step needs all its sockets in one actor",
                    action.kind()
                ),
                None,
            );
        }
    }
    let fam_of = |scope: &Scope, s: &str| scope.socks.get(s).map(|i| (i.family, i.proto));
    match action {
        Action::Socket {
            name,
            proto,
            family,
            opts,
        } => {
            if scope.socks.contains_key(name) {
                err(
                    format!("socket `{name}` is created twice"),
                    Some("give the new socket its own name"),
                );
            }
            if let Some(a) = actor {
                match scope.actors.get(a) {
                    None => err(
                        format!("actor `{a}` is used before a `spawn` step starts it"),
                        None,
                    ),
                    Some(false) => err(format!("actor `{a}` is used after it ended"), None),
                    _ => {}
                }
            }
            for o in opts {
                needs.extend(opt_scope.need(*o));
                if *o == Opt::V6Only && *family == Family::V4 {
                    err("`v6only` is an IPv6 option".into(), None);
                }
            }
            scope.socks.insert(
                name.clone(),
                SockInfo {
                    actor: actor.map(str::to_string),
                    proto: *proto,
                    family: *family,
                    open: true,
                    bound: false,
                },
            );
        }
        Action::SetOpt { sock, opt, value } => {
            needs.extend(opt_scope.need(*opt));
            let fp = fam_of(scope, sock);
            match (opt, value) {
                (Opt::V6Only, OptValue::Bool(false)) => {
                    needs.insert(Need::DualStack);
                }
                (Opt::Join | Opt::Leave, OptValue::Group { group, .. }) => {
                    if group.is_ipv6() {
                        needs.insert(Need::Ipv6Multicast);
                        needs.insert(Need::Root);
                    }
                    if let Some((fam, proto)) = fp
                        && (fam != Family::of(group) || proto != Proto::Udp)
                    {
                        err(
                            format!("`{}` needs a UDP socket of the group's family", opt.key()),
                            None,
                        );
                    }
                }
                _ => {}
            }
            if *opt == Opt::V6Only && fp.is_some_and(|(f, _)| f == Family::V4) {
                err("`v6only` is an IPv6 option".into(), None);
            }
        }
        Action::GetOpt { opt, .. } => {
            needs.extend(opt_scope.need(*opt));
        }
        Action::Bind { sock, addr, .. } | Action::Connect { sock, addr, .. } => {
            if let Some((fam, _)) = fam_of(scope, sock) {
                if fam == Family::V4 && addr.is_ipv6() {
                    err(
                        format!("socket `{sock}` is IPv4 but the address {addr} is IPv6"),
                        None,
                    );
                }
                if fam == Family::V6 && addr.is_ipv4() {
                    err(
                        format!("socket `{sock}` is IPv6 but the address {addr} is IPv4"),
                        Some(
                            "write IPv4 addresses for IPv6 sockets as mapped (mapped_lo, ::ffff:127.0.0.1)",
                        ),
                    );
                }
            }
        }
        Action::Listen { sock, .. } | Action::Accept { sock, .. }
            if fam_of(scope, sock).is_some_and(|(_, p)| p == Proto::Udp) =>
        {
            err(format!("`{}` needs a TCP socket", action.kind()), None);
        }
        Action::Close { sock, .. } => {
            if let Some(i) = scope.socks.get_mut(sock) {
                i.open = false;
            }
        }
        Action::Spawn { actor, user } => {
            if scope.actors.insert(actor.clone(), true).is_some() {
                err(format!("actor `{actor}` is spawned twice"), None);
            }
            needs.insert(Need::Actors);
            if user.is_some() {
                needs.insert(Need::Root);
                needs.insert(Need::OtherUser);
            }
        }
        Action::Kill { actor: a } | Action::Exit { actor: a } => match scope.actors.get_mut(a) {
            Some(alive @ true) => {
                *alive = false;
                for info in scope.socks.values_mut() {
                    if info.actor.as_deref() == Some(a.as_str()) {
                        info.open = false;
                    }
                }
            }
            Some(false) => err(format!("actor `{a}` has already ended"), None),
            None => err(format!("actor `{a}` is never spawned"), None),
        },
        Action::Pass { sock, to } => {
            if *to != "main" && scope.actors.get(to) != Some(&true) {
                err(
                    format!("`pass` to `{to}`: no running actor has that name"),
                    Some("spawn it first, or pass to \"main\""),
                );
            }
            if let Some(i) = scope.socks.get_mut(sock) {
                i.actor = (to != "main").then(|| to.clone());
            }
        }
        _ => {}
    }
    if let Action::Accept { sock, name } = action {
        if scope.socks.contains_key(name) {
            err(format!("socket `{name}` is created twice"), None);
        }
        let info = scope.socks.get(sock).map(|i| SockInfo {
            actor: i.actor.clone(),
            proto: i.proto,
            family: i.family,
            open: true,
            bound: true,
        });
        if let Some(info) = info {
            scope.socks.insert(name.clone(), info);
        }
    }
    // Steps that give a socket a local port.
    if let Action::Bind { sock, .. }
    | Action::Connect { sock, .. }
    | Action::Listen { sock, .. }
    | Action::Send { sock, .. }
    | Action::Fanout { sender: sock, .. } = action
        && let Some(i) = scope.socks.get_mut(sock)
    {
        i.bound = true;
    }
    // 127.0.0.2 and kin exist on loopback only on some systems.
    let addr = match action {
        Action::Bind { addr, .. }
        | Action::Connect { addr, .. }
        | Action::Fanout { addr, .. }
        | Action::Spread { addr, .. }
        | Action::Send {
            to: Some((addr, _)),
            ..
        } => Some(addr),
        _ => None,
    };
    if addr.is_some_and(|a| is_extra_loopback(*a)) {
        needs.insert(Need::SecondLoopback);
    }
    // Addresses of IPv6 groups need the namespace interface.
    if let Action::Fanout {
        addr: IpAddr::V6(a),
        ..
    } = action
        && a.is_multicast()
    {
        needs.insert(Need::Ipv6Multicast);
        needs.insert(Need::Root);
    }
}

/// A loopback address other than 127.0.0.1 (also v4-mapped).
fn is_extra_loopback(a: IpAddr) -> bool {
    let v4 = match a {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return false,
        },
    };
    v4.is_loopback() && v4 != std::net::Ipv4Addr::LOCALHOST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse() {
        for (name, addr) in ADDRESS_ALIASES {
            assert_eq!(parse_addr(name), Some(addr.parse().unwrap()));
        }
        assert_eq!(parse_addr("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(parse_addr("loopback"), None);
    }
}
