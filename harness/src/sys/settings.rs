//! Network-stack settings: which ones sockspec records, their default on each
//! OS (one table, with sources), and stack profiles (a tree's `profiles.toml`)
//! applied inside the network namespaces sockspec creates, never on the host.
//!
//! Compiled on every OS: bless reads any OS's results and needs that OS's
//! defaults to decide which settings condition an observation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{InputError, LineIndex};
use crate::load::{read_input, toml_error};
use crate::model::OsFamily;

/// A setting sockspec records on one OS.
#[derive(Clone, Copy, Debug)]
pub struct Known {
    /// The OS family that has the setting.
    pub os: OsFamily,
    /// The name as sysctl(8) spells it (Linux: `net.ipv4.tcp_tw_reuse`, read
    /// from /proc/sys/net/ipv4/tcp_tw_reuse), a registry value name, or
    /// netsh's words for the setting (`ipv4.dynamicport.tcp`).
    pub key: &'static str,
    /// The OS's default. A run whose value differs makes bless condition its
    /// observations on it. `None`: recorded for the reader, never a condition.
    pub default: Option<&'static str>,
    /// Releases before this one had `older_default` instead.
    pub changed_in: Option<(&'static str, &'static str)>,
    /// Where the default is stated (a key of cases/sources.toml).
    pub source: &'static str,
}

const fn k(
    os: OsFamily,
    key: &'static str,
    default: Option<&'static str>,
    source: &'static str,
) -> Known {
    Known {
        os,
        key,
        default,
        changed_in: None,
        source,
    }
}

/// Every recorded setting and its default. Sources are keys of
/// cases/sources.toml (a test checks they exist there).
pub const KNOWN: &[Known] = &[
    // https://docs.kernel.org/networking/ip-sysctl.html
    k(
        OsFamily::Linux,
        "net.ipv4.ip_local_port_range",
        Some("32768 60999"),
        "linux-ip-sysctl",
    ),
    k(
        OsFamily::Linux,
        "net.ipv4.ip_unprivileged_port_start",
        Some("1024"),
        "linux-ip-sysctl",
    ),
    k(
        OsFamily::Linux,
        "net.ipv4.ip_autobind_reuse",
        Some("0"),
        "linux-ip-sysctl",
    ),
    k(
        OsFamily::Linux,
        "net.ipv4.tcp_tw_reuse",
        Some("2"),
        "linux-ip-sysctl",
    ),
    k(
        OsFamily::Linux,
        "net.ipv4.tcp_timestamps",
        Some("1"),
        "linux-ip-sysctl",
    ),
    k(
        OsFamily::Linux,
        "net.ipv6.bindv6only",
        Some("0"),
        "linux-ip-sysctl",
    ),
    // FreeBSD: tcp(4), ip(4), inet6(4); nolocaltimewait defaults to 1 since
    // 14.0 (release notes; commit 92b3e07229ba).
    Known {
        os: OsFamily::Freebsd,
        key: "net.inet.tcp.nolocaltimewait",
        default: Some("1"),
        changed_in: Some(("14.0", "0")),
        source: "freebsd-14-relnotes",
    },
    k(OsFamily::Freebsd, "net.inet.tcp.msl", None, "freebsd-tcp-4"),
    k(
        OsFamily::Freebsd,
        "net.inet.ip.portrange.first",
        Some("10000"),
        "freebsd-ip4",
    ),
    k(
        OsFamily::Freebsd,
        "net.inet.ip.portrange.last",
        Some("65535"),
        "freebsd-ip4",
    ),
    k(
        OsFamily::Freebsd,
        "net.inet6.ip6.v6only",
        Some("1"),
        "freebsd-inet6-4",
    ),
    // macOS: XNU's defaults (bsd/netinet/in_pcb.c, bsd/netinet6/in6_proto.c).
    k(
        OsFamily::Macos,
        "net.inet.ip.portrange.first",
        Some("49152"),
        "xnu-portrange",
    ),
    k(
        OsFamily::Macos,
        "net.inet.ip.portrange.last",
        Some("65535"),
        "xnu-portrange",
    ),
    k(
        OsFamily::Macos,
        "net.inet6.ip6.v6only",
        Some("0"),
        "xnu-in6-proto",
    ),
    k(OsFamily::Macos, "net.inet.tcp.msl", None, "xnu-tcp-timer-h"),
    // Windows: the dynamic (ephemeral) port range, set per IP version and
    // transport (`netsh int ipv4 show dynamicport tcp`), as `first last`;
    // 49152-65535 since Vista (KB 929851).
    k(
        OsFamily::Windows,
        "ipv4.dynamicport.tcp",
        Some("49152 65535"),
        "ms-dynamic-port-range",
    ),
    k(
        OsFamily::Windows,
        "ipv4.dynamicport.udp",
        Some("49152 65535"),
        "ms-dynamic-port-range",
    ),
    k(
        OsFamily::Windows,
        "ipv6.dynamicport.tcp",
        Some("49152 65535"),
        "ms-dynamic-port-range",
    ),
    k(
        OsFamily::Windows,
        "ipv6.dynamicport.udp",
        Some("49152 65535"),
        "ms-dynamic-port-range",
    ),
    // The Tcpip\Parameters registry value, in seconds; Windows adds it only
    // when someone sets it, and an absent value means the default, which the
    // Server 2003 reference gives as 0x78 = 120 s (its prose and the Windows
    // 2000 page say 240 s: claim W8).
    k(
        OsFamily::Windows,
        "TcpTimedWaitDelay",
        Some("120"),
        "ms-tcptimedwaitdelay-2003",
    ),
];

/// The dynamic port range in `netsh int ipv4 show dynamicport tcp`'s output,
/// as `first last`. netsh translates its labels (`Start Port`, `Number of
/// Ports`), so the numbers are found by place instead: the first two lines
/// that end in `: <number>` are the start and the count. `None` when the
/// output has no such pair or they make no port range (Wine's netsh prints
/// nothing at all).
pub fn parse_netsh_dynamicport(text: &str) -> Option<String> {
    let mut numbers = text.lines().filter_map(|l| {
        let (_, v) = l.rsplit_once(':')?;
        v.trim().parse::<u32>().ok()
    });
    let start = numbers.next()?;
    let count = numbers.next()?;
    let last = start.checked_add(count)?.checked_sub(1)?;
    (start >= 1 && count >= 1 && last <= 65535).then(|| format!("{start} {last}"))
}

/// The setting `key` on `os`, if sockspec knows it.
pub fn known(os: OsFamily, key: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|s| s.os == os && s.key == key)
}

/// The keys sockspec records on `os`.
pub fn known_keys(os: OsFamily) -> Vec<&'static str> {
    KNOWN.iter().filter(|s| s.os == os).map(|s| s.key).collect()
}

/// The default of `key` on `os` release `release`.
pub fn default_for(os: OsFamily, release: &str, key: &str) -> Option<&'static str> {
    let s = known(os, key)?;
    match s.changed_in {
        Some((since, older)) => {
            let r = crate::version::version_numbers(release);
            let s_nums = crate::version::version_numbers(since);
            if !r.is_empty() && r < s_nums {
                Some(older)
            } else {
                s.default
            }
        }
        None => s.default,
    }
}

/// The run's settings that differ from `os`'s defaults: what an observation
/// made in that run is conditioned on.
pub fn conditions(
    os: OsFamily,
    release: &str,
    settings: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    settings
        .iter()
        .filter(|(key, v)| default_for(os, release, key).is_some_and(|d| normal(d) != normal(v)))
        .map(|(k, v)| (k.clone(), normal(v)))
        .collect()
}

/// Whitespace-normalised value (`32768\t60999` → `32768 60999`).
pub fn normal(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a run with `settings` meets the condition `cond`: every key has
/// that value. A setting the run did not record meets no condition.
pub fn meets(settings: &BTreeMap<String, String>, cond: &[(String, String)]) -> bool {
    cond.iter().all(|(k, v)| {
        settings
            .get(k)
            .is_some_and(|have| normal(have) == normal(v))
    })
}

/// Why a test could not show what it claims, when a setting of the run is the
/// cause: FreeBSD keeps no TIME_WAIT for loopback connections while
/// `net.inet.tcp.nolocaltimewait` is 1 (the default since 14.0), so a TIME_WAIT
/// case there cannot even start.
pub fn precondition_cause(
    os: OsFamily,
    settings: &BTreeMap<String, String>,
    wanted: &str,
) -> Option<String> {
    let key = "net.inet.tcp.nolocaltimewait";
    (os == OsFamily::Freebsd
        && wanted == "TIME_WAIT"
        && settings.get(key).map(|v| normal(v)).as_deref() == Some("1"))
    .then(|| {
        format!(
            "{key}=1: FreeBSD keeps no TIME_WAIT for loopback connections (the default since 14.0); \
             run with {key}=0 (in a vnet jail) to test TIME_WAIT"
        )
    })
}

/// A named set of sysctls applied in each worker's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name in `profiles.toml` (`[profile.NAME]`), as `--stack-profile` chooses it.
    pub name: String,
    /// One line on what the profile is for.
    pub title: String,
    /// The Linux sysctls the profile sets, name to value.
    pub sysctls: BTreeMap<String, String>,
}

/// The profiles file, next to the cases.
pub const PROFILES_FILE: &str = "profiles.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    #[serde(default)]
    profile: IndexMap<String, Spanned<RawProfile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    title: String,
    sysctls: IndexMap<String, Spanned<String>>,
}

/// Reads `root/profiles.toml` (none: no profiles). Profiles apply Linux
/// sysctls only, and only those sockspec records (so the results show them).
pub fn load_profiles(root: &Path) -> Result<BTreeMap<String, Profile>, Vec<InputError>> {
    let path = root.join(PROFILES_FILE);
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let text = read_input(&path).map_err(|e| vec![e])?;
    let index = LineIndex::new(Arc::new(path.clone()), &text);
    let raw: RawProfiles =
        crate::load::parse_toml(&text).map_err(|e| vec![toml_error(&index, &e)])?;
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (name, p) in raw.profile {
        let span = p.span();
        let p = p.into_inner();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(index.err(
                span.clone(),
                format!("profile name `{name}`: use letters, digits, '-' and '_'"),
            ));
        }
        if p.sysctls.is_empty() {
            errors.push(index.err(span.clone(), format!("profile `{name}` sets no sysctl")));
        }
        let mut sysctls = BTreeMap::new();
        for (key, v) in p.sysctls {
            if known(OsFamily::Linux, &key)
                .and_then(|s| s.default)
                .is_none()
            {
                errors.push(
                    index
                        .err(
                            v.span(),
                            format!("`{key}` is not a setting sockspec records"),
                        )
                        .help(format!(
                            "settings: {}",
                            known_keys(OsFamily::Linux).join(", ")
                        )),
                );
                continue;
            }
            sysctls.insert(key, normal(v.get_ref()));
        }
        out.insert(
            name.clone(),
            Profile {
                name,
                title: p.title,
                sysctls,
            },
        );
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

static PROFILE: RwLock<Option<Profile>> = RwLock::new(None);

/// Chooses the profile workers apply in their namespaces from now on.
pub fn set_profile(p: Option<Profile>) {
    *PROFILE.write().unwrap_or_else(|e| e.into_inner()) = p;
}

/// The stack profile chosen for this run (`--stack-profile`), if any.
pub fn profile() -> Option<Profile> {
    PROFILE.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Applies the chosen profile (if any) in the calling thread's network
/// namespace, which must be one sockspec created (`iso` is `Netns`): a
/// profile never touches the host's stack.
pub fn apply_profile(iso: crate::sys::Isolation) -> Result<(), String> {
    let Some(p) = profile() else { return Ok(()) };
    if iso != crate::sys::Isolation::Netns {
        return Err(format!(
            "profile `{}` applies sysctls only inside a network namespace sockspec creates \
             (Linux, as root); this run shares the host's stack",
            p.name
        ));
    }
    for (key, v) in &p.sysctls {
        write_sysctl(key, v).map_err(|e| format!("profile `{}`: {key} = {v}: {e}", p.name))?;
    }
    Ok(())
}

/// Why a test cannot set `key` for itself, if it cannot: only in a network
/// namespace of sockspec's own (`scope` 0 is the host's stack, never changed).
pub fn no_test_sysctl(scope: u64, key: &str) -> Option<String> {
    (scope == 0 || crate::sys::os_family() != OsFamily::Linux).then(|| {
        format!(
            "setting {key} needs a network namespace of sockspec's own (Linux, as root); \
             this run shares the host's stack, which sockspec never changes"
        )
    })
}

/// Sets `key` in the calling thread's network namespace for one test (the
/// `sysctl` step; [`no_test_sysctl`] first) and returns the value it had, for
/// the engine to put back.
pub fn set_for_test(key: &str, v: &str) -> Result<String, String> {
    let old = read_sysctl(key).map_err(|e| format!("reading {key}: {e}"))?;
    write_sysctl(key, v).map_err(|e| format!("{key} = {v}: {e}"))?;
    Ok(old)
}

/// Puts back what [`set_for_test`] changed.
pub fn restore_for_test(key: &str, old: &str) -> Result<(), String> {
    write_sysctl(key, old).map_err(|e| format!("restoring {key} = {old}: {e}"))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_sysctl(key: &str) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).map(|v| normal(&v))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn read_sysctl(_key: &str) -> std::io::Result<String> {
    Err(crate::sys::unsupported("a per-namespace sysctl"))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn write_sysctl(key: &str, v: &str) -> std::io::Result<()> {
    // /proc/sys/net follows the opener's network namespace: the calling
    // thread's own.
    std::fs::write(format!("/proc/sys/{}", key.replace('.', "/")), v)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn write_sysctl(_key: &str, _v: &str) -> std::io::Result<()> {
    Err(crate::sys::unsupported("a per-namespace sysctl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_conditions() {
        let mut s = BTreeMap::new();
        s.insert("net.ipv4.tcp_tw_reuse".to_string(), "0".to_string());
        s.insert(
            "net.ipv4.ip_local_port_range".to_string(),
            "32768\t60999".to_string(),
        );
        s.insert("net.ipv6.bindv6only".to_string(), "0".to_string());
        let c = conditions(OsFamily::Linux, "6.18", &s);
        assert_eq!(c.len(), 1);
        assert_eq!(c["net.ipv4.tcp_tw_reuse"], "0");
        let mut f = BTreeMap::new();
        f.insert("net.inet.tcp.nolocaltimewait".to_string(), "0".to_string());
        assert!(conditions(OsFamily::Freebsd, "13.4-RELEASE", &f).is_empty());
        assert_eq!(conditions(OsFamily::Freebsd, "14.3-RELEASE", &f).len(), 1);
        assert!(meets(&s, &[("net.ipv4.tcp_tw_reuse".into(), "0".into())]));
        assert!(!meets(
            &s,
            &[("net.ipv4.tcp_timestamps".into(), "0".into())]
        ));
        assert!(
            precondition_cause(
                OsFamily::Freebsd,
                &[("net.inet.tcp.nolocaltimewait".to_string(), "1".to_string())].into(),
                "TIME_WAIT"
            )
            .is_some()
        );
    }

    #[test]
    fn netsh_dynamicport_output() {
        // As Windows prints it (netsh int ipv4 show dynamicport tcp).
        let en = "\r\nProtocol tcp Dynamic Port Range\r\n---------------------------------\r\n\
                  Start Port      : 49152\r\nNumber of Ports : 16384\r\n\r\n";
        assert_eq!(parse_netsh_dynamicport(en).as_deref(), Some("49152 65535"));
        // Translated labels; a range that a runner image widened.
        let de = "Protokoll tcp Dynamischer Portbereich\n----\nStartport       : 1024\nAnzahl der Ports: 64511\n";
        assert_eq!(parse_netsh_dynamicport(de).as_deref(), Some("1024 65534"));
        // Wine's netsh prints nothing; an error message has no numbers.
        assert_eq!(parse_netsh_dynamicport(""), None);
        assert_eq!(
            parse_netsh_dynamicport("The following command was not found: int ipv4 show.\n"),
            None
        );
        // Only a start, or a range past 65535, is no range.
        assert_eq!(parse_netsh_dynamicport("Start Port : 49152\n"), None);
        assert_eq!(
            parse_netsh_dynamicport("Start Port : 60000\nNumber of Ports : 10000\n"),
            None
        );
        assert_eq!(
            parse_netsh_dynamicport("Start Port : 49152\nNumber of Ports : 0\n"),
            None
        );
        // The defaults it is compared with are in this form.
        assert_eq!(
            default_for(OsFamily::Windows, "10.0.26100", "ipv6.dynamicport.udp"),
            parse_netsh_dynamicport(en).as_deref()
        );
    }

    #[test]
    fn every_default_cites_a_registered_source() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
        let mut errors = Vec::new();
        let reg = crate::sources::load(&root, &mut errors).expect("cases/sources.toml");
        for s in KNOWN {
            assert!(
                reg.get(s.source).is_some(),
                "{} cites `{}`, not in sources.toml",
                s.key,
                s.source
            );
        }
    }

    #[test]
    fn the_profiles_file_loads() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
        let p = load_profiles(&root).map_err(|e| format!("{e:?}")).unwrap();
        assert!(p.len() >= 4);
    }
}
