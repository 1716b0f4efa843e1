//! Creating sockets and setting their options.

use std::fmt;

use super::StepKind;
use crate::expand::fields::{Fields, opt_value, parse_addr};
use crate::model::{Family, Opt, OptValue, Proto};
use crate::outcome::Outcome;

/// `socket`: a new socket, with on/off options set before anything else.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Socket {
    /// The name the socket goes by in later steps.
    pub name: String,
    /// TCP or UDP.
    pub proto: Proto,
    /// IPv4 or IPv6.
    pub family: Family,
    /// On/off options set right after the socket is made, before anything else (`opts`).
    pub opts: Vec<Opt>,
}

impl StepKind for Socket {
    const NAME: &'static str = "socket";
    const REQUIRED: &'static [&'static str] = &["name", "type", "family"];
    const OPTIONAL: &'static [&'static str] = &["opts", "actor"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
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
        Some(Socket {
            name: name?,
            proto: proto?,
            family: family?,
            opts,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "socket {} {} {}",
            self.name,
            self.proto.as_str(),
            self.family.as_str()
        )?;
        for o in &self.opts {
            write!(f, " +{}", o.c_name())?;
        }
        Ok(())
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::Ok | Outcome::Error(_) | Outcome::Unsupported)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.name)
    }
}

/// `setopt`: set one option (`unsupported` where the OS lacks it).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SetOpt {
    /// The socket to set the option on.
    pub sock: String,
    /// The option to set.
    pub opt: Opt,
    /// The value to set it to.
    pub value: OptValue,
}

impl StepKind for SetOpt {
    const NAME: &'static str = "setopt";
    const REQUIRED: &'static [&'static str] = &["sock", "opt", "value"];
    const OPTIONAL: &'static [&'static str] = &["iface", "probe"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let opt = f.opt("opt", Opt::ALL)?;
        let value = opt_value(f, opt)?;
        Some(SetOpt {
            sock: sock?,
            opt,
            value,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "setopt {} {} = {}",
            self.sock,
            self.opt.c_name(),
            self.value
        )
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(o, Outcome::Ok | Outcome::Error(_) | Outcome::Unsupported)
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}

/// `getopt`: read an on/off option or SO_LINGER.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GetOpt {
    /// The socket to read the option of.
    pub sock: String,
    /// The option to read.
    pub opt: Opt,
}

impl StepKind for GetOpt {
    const NAME: &'static str = "getopt";
    const REQUIRED: &'static [&'static str] = &["sock", "opt"];
    const OPTIONAL: &'static [&'static str] = &["probe"];

    fn read(f: &mut Fields<'_>) -> Option<Self> {
        let sock = f.ident("sock");
        let readable: Vec<Opt> = Opt::ALL
            .iter()
            .copied()
            .filter(|o| o.is_flag() || *o == Opt::Linger)
            .collect();
        let opt = f.opt("opt", &readable);
        Some(GetOpt {
            sock: sock?,
            opt: opt?,
        })
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "getopt {} {}", self.sock, self.opt.c_name())
    }

    fn accepts(&self, o: &Outcome) -> bool {
        matches!(
            o,
            Outcome::Bool(_) | Outcome::Int(_) | Outcome::Error(_) | Outcome::Unsupported
        )
    }

    fn sock(&self) -> Option<&str> {
        Some(&self.sock)
    }
}
