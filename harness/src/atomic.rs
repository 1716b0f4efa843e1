//! Every file sockspec writes is written whole or not at all: into a temporary
//! file in the same directory, flushed to disk, then renamed over the target.
//! A crash, a kill or a full disk leaves either the old bytes or the new ones.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Writes `bytes` to `path` atomically (see the module docs). The file keeps
/// the permissions of the file it replaces.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tmp, mut file) = temp_file(&dir, path)?;
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        if let Ok(meta) = fs::metadata(path) {
            fs::set_permissions(&tmp, meta.permissions())?;
        }
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(&dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Checks, before any work, that `path` can be written atomically later: its
/// directory exists and takes a new file, and an existing `path` is a file.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tmp, file) = temp_file(&dir, path)?;
    drop(file);
    fs::remove_file(tmp)
}

/// Writes text, keeping the line endings and the final newline (or its
/// absence) of `original`, the text the file held before.
pub fn write_text_like(path: &Path, text: &str, original: Option<&str>) -> std::io::Result<()> {
    let out = match original {
        Some(o) => match_line_endings(o, text),
        None => text.to_string(),
    };
    write(path, out.as_bytes())
}

/// `text` with the line-ending style and final-newline choice of `original`:
/// a CRLF file stays CRLF, a file without a final newline gets none.
pub fn match_line_endings(original: &str, text: &str) -> String {
    let crlf = original
        .find('\n')
        .is_some_and(|i| i > 0 && original.as_bytes()[i - 1] == b'\r');
    let lf = text.replace("\r\n", "\n");
    let mut out = if crlf { lf.replace('\n', "\r\n") } else { lf };
    let newline = if crlf { "\r\n" } else { "\n" };
    if !original.is_empty() && !original.ends_with('\n') {
        while out.ends_with(newline) {
            out.truncate(out.len() - newline.len());
        }
    } else if !out.is_empty() && !out.ends_with(newline) {
        out.push_str(newline);
    }
    out
}

/// Temporary files start with this, so a leftover of a killed process is
/// recognisable (and ignored by the loader: it does not end in `.toml`).
pub const TEMP_PREFIX: &str = ".sockspec-tmp-";

fn temp_file(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, File)> {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        let tmp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}-{name}.part",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes the rename itself durable (POSIX: fsync the directory). Windows
/// has no directory handles to sync; the rename is already atomic there.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_follow_the_original() {
        assert_eq!(
            match_line_endings("a\r\nb\r\n", "a\nb\nc\n"),
            "a\r\nb\r\nc\r\n"
        );
        assert_eq!(match_line_endings("a\nb\n", "a\r\nb\n"), "a\nb\n");
        assert_eq!(match_line_endings("a\nb", "a\nb\nc\n"), "a\nb\nc");
        assert_eq!(match_line_endings("a\r\nb", "a\nb\n"), "a\r\nb");
        assert_eq!(match_line_endings("a\n", "a\nb"), "a\nb\n");
    }

    #[test]
    fn write_replaces_whole_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("sockspec-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.toml");
        fs::write(&p, "old").unwrap();
        write(&p, b"new contents").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new contents");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.toml")]);
        assert!(write(&dir.join("missing").join("x"), b"x").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
