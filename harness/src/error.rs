//! Errors of the harness library. Input errors always name file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::Location;

/// Something wrong in a case or expectation file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InputError {
    /// The file the problem is in.
    pub file: Arc<PathBuf>,
    /// 1-based line and column; `None` when the problem is the whole file.
    pub pos: Option<(usize, usize)>,
    /// What is wrong, in one sentence.
    pub msg: String,
    /// What to do about it.
    pub help: Option<String>,
    /// The grid combinations (`proto=tcp, addr=lo4`) in which the mistake
    /// shows, when it depends on parameters; one error names them all.
    pub combos: Vec<String>,
    /// How many combinations the case's grid has (0: no grid).
    pub of: usize,
}

impl InputError {
    /// An error at `loc` in its file.
    pub fn at(loc: &Location, msg: impl Into<String>) -> Self {
        InputError {
            file: loc.file.clone(),
            pos: Some((loc.line, loc.col)),
            msg: msg.into(),
            help: None,
            combos: Vec::new(),
            of: 0,
        }
    }

    /// An error about `file` as a whole (no line or column).
    pub fn file(file: &Path, msg: impl Into<String>) -> Self {
        InputError {
            file: Arc::new(file.to_path_buf()),
            pos: None,
            msg: msg.into(),
            help: None,
            combos: Vec::new(),
            of: 0,
        }
    }

    /// Adds advice on what to do about it, shown on a `help:` line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Marks the error as seen in one grid combination.
    pub fn in_combo(mut self, combo: Option<String>) -> Self {
        self.combos.extend(combo);
        self
    }

    /// Merges errors that differ only in their combination: a mistake in a
    /// step of an 80-combination grid is reported once, not 80 times.
    pub fn merge_combos(mut errors: Vec<InputError>, of: usize) -> Vec<InputError> {
        errors.sort();
        let mut out: Vec<InputError> = Vec::new();
        for e in errors {
            match out.last_mut() {
                Some(last)
                    if last.file == e.file
                        && last.pos == e.pos
                        && last.msg == e.msg
                        && last.help == e.help =>
                {
                    last.combos.extend(e.combos);
                }
                _ => out.push(e),
            }
        }
        for e in &mut out {
            e.combos.sort();
            e.combos.dedup();
            e.of = of;
        }
        out
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file.display(), self.msg)?,
            None => write!(f, "{}: {}", self.file.display(), self.msg)?,
        }
        const SHOWN: usize = 3;
        match self.combos.as_slice() {
            [] => {}
            [one] if self.of <= 1 => write!(f, " (with {one})")?,
            all if all.len() == self.of => {
                write!(f, " (in all {} combinations of the grid)", self.of)?
            }
            [one] => write!(f, " (with {one}; 1 of {} combinations)", self.of)?,
            some => {
                let shown: Vec<&str> = some.iter().take(SHOWN).map(String::as_str).collect();
                write!(
                    f,
                    " (in {} of {} combinations: {}",
                    some.len(),
                    self.of,
                    shown.join("; ")
                )?;
                if some.len() > SHOWN {
                    write!(f, "; ...")?;
                }
                write!(f, ")")?;
            }
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in the input, sorted by file and position.
#[derive(Debug, Clone, thiserror::Error)]
pub struct InputErrors(pub Vec<InputError>);

impl InputErrors {
    /// `Ok` when nothing was found; otherwise every error, sorted by position and deduplicated.
    pub fn finish(mut errors: Vec<InputError>) -> Result<(), InputErrors> {
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort();
        errors.dedup();
        Err(InputErrors(errors))
    }
}

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

/// Errors of the harness outside the input files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Case or expectation files have errors (exit code 2).
    #[error("{0}")]
    Input(#[from] InputErrors),
    /// Reading or writing `path` failed (exit code 3).
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// The command line asks for something that cannot be done (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A file given as results is not valid results JSON of this schema.
    #[error("{path}: not a sockspec results file: {msg}")]
    Results {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong with it: the parse error or the schema it has.
        msg: String,
    },
    /// Any other failure of the harness (exit code 3).
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Maps byte offsets of one file to 1-based line and column.
pub struct LineIndex {
    file: Arc<PathBuf>,
    starts: Vec<usize>,
    text: Arc<str>,
}

impl LineIndex {
    /// An index of `text`, the contents of `file`.
    pub fn new(file: Arc<PathBuf>, text: &str) -> Self {
        let mut starts = vec![0];
        // memchr's vector search: `match_indices` cost ~200 instructions a line.
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex {
            file,
            starts,
            text: Arc::from(text),
        }
    }

    /// The file the offsets are in.
    pub fn file(&self) -> &Arc<PathBuf> {
        &self.file
    }

    /// The line and column of byte `offset` (columns count characters, not bytes).
    pub fn loc(&self, offset: usize) -> Location {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let end = offset.min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map_or(1, |s| s.chars().count() + 1);
        Location {
            file: self.file.clone(),
            line,
            col,
        }
    }

    /// An [`InputError`] at the start of `span`.
    pub fn err(&self, span: std::ops::Range<usize>, msg: impl Into<String>) -> InputError {
        InputError::at(&self.loc(span.start), msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let idx = LineIndex::new(Arc::new("f.toml".into()), "ab\ncdé\nx");
        assert_eq!((idx.loc(0).line, idx.loc(0).col), (1, 1));
        assert_eq!((idx.loc(4).line, idx.loc(4).col), (2, 2));
        // Columns count characters, not bytes.
        assert_eq!((idx.loc(7).line, idx.loc(7).col), (2, 4));
        assert_eq!((idx.loc(8).line, idx.loc(8).col), (3, 1));
    }
}
