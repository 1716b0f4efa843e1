//! The built-in catalogue: the case tree compiled into the binary (see
//! `build.rs`), so an installed `sockspec` needs no source tree.
//!
//! The loader reads files, and error messages point at files and lines, so
//! the catalogue is unpacked into a directory before it is loaded: a
//! per-user cache directory named after the catalogue's hash
//! (`$XDG_CACHE_HOME`, `~/.cache` or `%LOCALAPPDATA%`, then `sockspec/`). A
//! directory found there is used only if it holds exactly the embedded files
//! (nothing more, nothing different), so a stale, edited or planted copy is
//! never run; otherwise a fresh copy is unpacked beside it and renamed into
//! place, whole or not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Error;

mod packed {
    include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));
}

pub use packed::{CASES, FILES, HASH};

/// `catalogue <hash>, <n> cases`: which catalogue this binary carries.
pub const VERSION: &str = env!("SOCKSPEC_CATALOGUE");

/// The directory the embedded catalogue is unpacked into (and loaded from):
/// under the user's cache directory, else (say, another user's `$HOME`)
/// under the temporary directory.
pub fn root() -> Result<PathBuf, Error> {
    unpack(&cache_base()).or_else(|first| unpack(&temp_base()).map_err(|_| first))
}

/// A directory of this user's own in the shared temporary directory.
fn temp_base() -> PathBuf {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    std::env::temp_dir().join(format!("sockspec-{user}"))
}

fn unpack(base: &Path) -> Result<PathBuf, Error> {
    let parent = base.join("sockspec");
    let dir = parent.join(format!("catalogue-{HASH}"));
    if matches(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    for (rel, bytes) in FILES {
        let path = tmp.path().join(rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        crate::atomic::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
    }
    // Another process may have unpacked the same catalogue meanwhile (then
    // its copy is as good as ours), or a bad copy sits there: replace it.
    if std::fs::rename(tmp.path(), &dir).is_err() && !matches(&dir) {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        std::fs::rename(tmp.path(), &dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(dir)
}

/// Whether `path` is a directory unpacked from this binary's catalogue.
pub fn is_embedded(path: &Path) -> bool {
    path.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "sockspec")
        && path
            .file_name()
            .is_some_and(|n| n.to_string_lossy() == format!("catalogue-{HASH}"))
        && (path.starts_with(cache_base()) || path.starts_with(temp_base()))
}

fn cache_base() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME")
        .or_else(|| var("LOCALAPPDATA"))
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
}

/// Whether `dir` holds exactly the embedded files.
fn matches(dir: &Path) -> bool {
    let mut found = BTreeMap::new();
    if !collect(dir, dir, &mut found) || found.len() != FILES.len() {
        return false;
    }
    FILES.iter().all(|(rel, bytes)| {
        found
            .get(*rel)
            .is_some_and(|p| std::fs::read(p).is_ok_and(|b| b == *bytes))
    })
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> bool {
    let Ok(read) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in read {
        let Ok(entry) = entry else { return false };
        let Ok(kind) = entry.file_type() else {
            return false;
        };
        let path = entry.path();
        if kind.is_dir() {
            if !collect(root, &path, out) {
                return false;
            }
        } else if kind.is_file() {
            let Ok(rel) = path.strip_prefix(root) else {
                return false;
            };
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.insert(rel.join("/"), path);
        } else {
            // A symlink or anything else was not unpacked by us.
            return false;
        }
    }
    true
}
