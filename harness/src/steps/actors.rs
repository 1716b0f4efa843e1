//! Helper processes (actors): start, hand a socket over, kill, exit.

use std::fmt;

use toml::Value;

use super::StepKind;
use crate::expand::fields::Fields;

/// `spawn`: start a helper process, optionally as another user.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spawn {
    /// Name of the new actor; `socket` steps with `actor = NAME` create their sockets in it.
    pub actor: String,
    /// The user the helper runs as (needs root); `None`: the harness's own user.
    pub user: Option<User>,
    /// The helper's runtime (`rust`, `python`, `node`; see
    /// `docs/agent-protocol.md`); `None`: the run's (`--agent`, else sockspec).
    #[serde(default)]
    pub runtime: Option<String>,
}

/// Another user, as a case names it: resolved on the machine that runs the
/// test, since "nobody" is uid 65534 on Linux but not on macOS or OpenBSD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum User {
    /// The account named `nobody` here.
    Nobody,
    /// A numeric uid, used as given.
    Uid(u32),
}

impl User {
    /// The numeric uid on this machine, if the user exists.
    pub fn uid(&self) -> Option<u32> {
        match self {
            User::Nobody => crate::sys::nobody_uid(),
            User::Uid(u) => Some(*u),
        }
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            User::Nobody => f.write_str("nobody"),
            User::Uid(u) => write!(f, "uid {u}"),
        }
    }
}

impl StepKind for Spawn {
    const NAME: &'static str = "spawn";
    const REQUIRED: &'static [&'static str] = &["actor"];
    const OPTIONAL: &'static [&'static str] = &["user", "runtime"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let actor = f.ident("actor");
        let user = f.or("user", None, |f| {
            f.parse("user", "a numeric uid or \"nobody\"", |v| match v {
                Value::String(s) if s == "nobody" => Some(User::Nobody),
                Value::Integer(i) if (1..=u32::MAX as i64).contains(i) => {
                    Some(User::Uid(*i as u32))
                }
                _ => None,
            })
            .map(Some)
        })?;
        let runtime = f.or("runtime", None, |f| {
            f.parse("runtime", "\"rust\", \"python\" or \"node\"", |v| {
                v.as_str()
                    .filter(|s| ["rust", "python", "node"].contains(s))
                    .map(|s| Some(s.to_string()))
            })
        })?;
        Some(Spawn {
            actor: actor?,
            user,
            runtime,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spawn {}", self.actor)?;
        if let Some(r) = &self.runtime {
            write!(f, " in {r}")?;
        }
        match self.user {
            Some(u) => write!(f, " as {u}"),
            None => Ok(()),
        }
    }

    fn label(&self) -> String {
        format!("spawn_{}", self.actor)
    }
}

/// `pass`: move a socket to another actor (SCM_RIGHTS / WSADuplicateSocket);
/// the sender's copy is closed once the receiver holds its own.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pass {
    /// The socket to move.
    pub sock: String,
    /// The actor that receives it, or `main` for the harness's own process.
    pub to: String,
}

impl StepKind for Pass {
    const NAME: &'static str = "pass";
    const REQUIRED: &'static [&'static str] = &["sock", "to"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let to = f.ident("to");
        Some(Pass {
            sock: sock?,
            to: to?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pass {} to {}", self.sock, self.to)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `kill`: SIGKILL / TerminateProcess.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Kill {
    /// The actor whose helper process is killed; its sockets are closed by the kernel.
    pub actor: String,
}

impl StepKind for Kill {
    const NAME: &'static str = "kill";
    const REQUIRED: &'static [&'static str] = &["actor"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Kill {
            actor: f.ident("actor")?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kill {}", self.actor)
    }

    fn label(&self) -> String {
        format!("kill_{}", self.actor)
    }
}

/// `exit`: the actor exits at once without closing its sockets.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exit {
    /// The actor whose helper process exits.
    pub actor: String,
}

impl StepKind for Exit {
    const NAME: &'static str = "exit";
    const REQUIRED: &'static [&'static str] = &["actor"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        Some(Exit {
            actor: f.ident("actor")?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.actor)
    }

    fn label(&self) -> String {
        format!("exit_{}", self.actor)
    }
}
