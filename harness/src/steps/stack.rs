//! Steps on the network stack itself rather than on a socket.

use std::fmt;

use super::StepKind;
use crate::expand::fields::Fields;
use crate::model::OsFamily;
use crate::sys::settings;

/// `sysctl`: sets a Linux stack setting (one sockspec records) for the rest
/// of the test, in the worker's own network namespace; the engine puts the
/// old value back when the attempt ends. Never on the host's stack: where
/// tests share it (not Linux, not root, `--isolation host`) the test is
/// skipped with that reason.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sysctl {
    /// The setting's name (`net.ipv4.tcp_tw_reuse`); only settings sockspec records are
    /// allowed.
    pub key: String,
    /// The value to write for the rest of the test.
    pub value: String,
}

impl StepKind for Sysctl {
    const NAME: &'static str = "sysctl";
    const REQUIRED: &'static [&'static str] = &["key", "value"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let keys = settings::known_keys(OsFamily::Linux);
        let key = f.parse(
            "key",
            &format!("a setting sockspec records: {}", keys.join(", ")),
            |v| {
                v.as_str()
                    .filter(|k| {
                        settings::known(OsFamily::Linux, k).is_some_and(|s| s.default.is_some())
                    })
                    .map(str::to_string)
            },
        );
        let value = f.parse("value", "a string or an integer", |v| match v {
            toml::Value::String(s) if !s.trim().is_empty() => Some(settings::normal(s)),
            toml::Value::Integer(i) => Some(i.to_string()),
            _ => None,
        });
        Some(Sysctl {
            key: key?,
            value: value?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sysctl {} = {}", self.key, self.value)
    }
}
