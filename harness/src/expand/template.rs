//! Template substitution: `{param}`, `{param.field}` and `"text {param}"`
//! in step fields, for one combination of the grid.

use toml::Value;

use crate::model::ParamValue;
use crate::outcome::is_ident;

/// `s`, or its first 80 characters and an ellipsis: an error is made in
/// every combination of the grid before equal ones are merged, and a
/// long template copied into each took `check` to 1 GiB.
fn short(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &s[..at]).into(),
        None => s.into(),
    }
}

/// Longest text a step field's template (`"text {param}"`) may make.
pub const MAX_TEXT: usize = 4096;

pub struct Ctx<'a> {
    pub params: &'a [(&'a str, &'a ParamValue)],
}

impl Ctx<'_> {
    /// The combination, `proto=tcp, addr=lo4` (none without a grid).
    pub fn combo(&self) -> Option<String> {
        if self.params.is_empty() {
            return None;
        }
        let p: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.label))
            .collect();
        Some(p.join(", "))
    }

    pub fn subst(&self, v: &Value) -> Result<Value, String> {
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
                        .ok_or_else(|| format!("unclosed `{{` in \"{}\"", short(s)))?;
                    let name = &rest[start + 1..start + end];
                    match self.lookup(name)? {
                        Value::String(x) => out.push_str(&x),
                        other => out.push_str(&other.to_string()),
                    }
                    rest = &rest[start + end + 1..];
                }
                out.push_str(rest);
                // Each distinct combination of the parameters named gets
                // its own string: 800 KB of grid values, joined four at a
                // time, took 800 MiB.
                if out.len() > MAX_TEXT {
                    return Err(format!(
                        "\"{}\" makes a text of more than {MAX_TEXT} bytes",
                        short(s)
                    ));
                }
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
    pub fn lookup(&self, path: &str) -> Result<Value, String> {
        let mut parts = path.split('.');
        let name = parts.next().unwrap_or_default();
        let p = self.param(name)?;
        let mut v = &p.value;
        for field in parts {
            v = v.get(field).ok_or_else(|| {
                format!(
                    "`{{{}}}`: the value of `{}` ({}={}) has no field `{}`",
                    short(path),
                    short(name),
                    short(name),
                    p.label,
                    short(field)
                )
            })?;
        }
        Ok(v.clone())
    }

    pub fn param(&self, name: &str) -> Result<&ParamValue, String> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let known: Vec<&str> = self.params.iter().map(|(k, _)| *k).collect();
                let name = short(name);
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

/// The grid parameters `v` refers to (`{p}`, `{p.field}`, `"text {p}"`, as
/// [`Ctx::subst`] reads them), added to `out` as indices into `names`.
/// False when a reference is malformed or names no parameter: substituting
/// then fails, and only the combination's own reading can say how.
pub fn refs(v: &Value, names: &[&str], out: &mut Vec<usize>) -> bool {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find('{') {
                let Some(end) = rest[start..].find('}') else {
                    return false;
                };
                let name = &rest[start + 1..start + end];
                let param = name.split('.').next().unwrap_or_default();
                let Some(i) = names.iter().position(|n| *n == param) else {
                    return false;
                };
                if !out.contains(&i) {
                    out.push(i);
                }
                rest = &rest[start + end + 1..];
            }
            true
        }
        Value::Array(items) => items.iter().all(|i| refs(i, names, out)),
        Value::Table(t) => t.values().all(|v| refs(v, names, out)),
        _ => true,
    }
}
