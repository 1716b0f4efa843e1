//! Kernel and OS releases as versions: the numbers a release starts with,
//! and ranges of them (`>=6.1, <6.2`) that expectation entries are limited to.

/// A version range such as `>=6.1, <6.2`, compared on the leading numeric
/// components of a release (`6.18.44-fc-v769` is 6.18.44). Kernel releases are
/// not semver (a suffix is not a pre-release), hence no semver crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRange {
    /// The range as written (`>=6.1, <6.2`), for messages and results.
    pub text: String,
    preds: Vec<(Cmp, Vec<u64>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

/// The numeric components a release starts with.
pub fn version_numbers(release: &str) -> Vec<u64> {
    release
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("")
        .split('.')
        .map_while(|p| p.parse().ok())
        .collect()
}

/// Compares two releases' numeric components; missing components count as 0 (`6.1` = `6.1.0`).
pub fn cmp_versions(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

impl VersionRange {
    /// Parses comma-separated comparisons (`>=6.1, <6.2`), each of `>=`, `>`, `<=`, `<`, `=`
    /// and a version.
    pub fn parse(s: &str) -> Result<VersionRange, String> {
        let mut preds = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (cmp, rest) = if let Some(r) = part.strip_prefix(">=") {
                (Cmp::Ge, r)
            } else if let Some(r) = part.strip_prefix("<=") {
                (Cmp::Le, r)
            } else if let Some(r) = part.strip_prefix('>') {
                (Cmp::Gt, r)
            } else if let Some(r) = part.strip_prefix('<') {
                (Cmp::Lt, r)
            } else if let Some(r) = part.strip_prefix('=') {
                (Cmp::Eq, r)
            } else {
                return Err(format!("`{part}` needs a comparison: >=, >, <=, < or ="));
            };
            let v = rest.trim();
            let nums = version_numbers(v);
            if nums.is_empty() || v.split('.').count() != nums.len() {
                return Err(format!("`{v}` is not a version like 6.1 or 10.0.22631"));
            }
            preds.push((cmp, nums));
        }
        let range = VersionRange {
            text: s.to_string(),
            preds,
        };
        if range.is_empty() {
            return Err(format!("`{s}` matches no version"));
        }
        Ok(range)
    }

    /// Whether no version satisfies every bound. Versions are sequences of
    /// integers, so it is enough to try each bound and its neighbours.
    fn is_empty(&self) -> bool {
        let mut probes: Vec<Vec<u64>> = Vec::new();
        for (_, b) in &self.preds {
            probes.push(b.clone());
            let mut up = b.clone();
            up.push(1);
            probes.push(up);
            let mut next = b.clone();
            if let Some(last) = next.last_mut() {
                *last += 1;
            }
            probes.push(next);
            let mut low = b.clone();
            if let Some(last) = low.last_mut()
                && *last > 0
            {
                *last -= 1;
                low.push(u64::MAX / 2);
                probes.push(low);
            }
        }
        probes.push(vec![0]);
        !probes.iter().any(|p| {
            let text: Vec<String> = p.iter().map(u64::to_string).collect();
            self.contains(&text.join("."))
        })
    }

    /// Whether `release` satisfies every comparison of the range (its leading numbers are
    /// compared).
    pub fn contains(&self, release: &str) -> bool {
        self.contains_numbers(&version_numbers(release))
    }

    /// [`contains`](Self::contains) for a release's [`version_numbers`].
    pub fn contains_numbers(&self, v: &[u64]) -> bool {
        self.preds.iter().all(|(c, bound)| {
            let o = cmp_versions(v, bound);
            match c {
                Cmp::Ge => o.is_ge(),
                Cmp::Gt => o.is_gt(),
                Cmp::Le => o.is_le(),
                Cmp::Lt => o.is_lt(),
                // `=6.1` holds 6.1.x: compare only the given components.
                Cmp::Eq => v.len() >= bound.len() && v[..bound.len()] == bound[..],
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges() {
        let r = VersionRange::parse(">=6.1, <6.2").unwrap();
        assert!(r.contains("6.1.0-56-cloud-amd64"));
        assert!(r.contains("6.1.158"));
        assert!(!r.contains("6.2"));
        assert!(!r.contains("6.12.1"));
        assert!(!r.contains("5.15"));
        let e = VersionRange::parse("=6.1").unwrap();
        assert!(e.contains("6.1.4"));
        assert!(!e.contains("6.10"));
        assert!(
            VersionRange::parse(">=3.9")
                .unwrap()
                .contains("6.18.44-fc-v769")
        );
        assert!(VersionRange::parse("6.1").is_err());
        assert!(VersionRange::parse(">=7, <6").is_err());
        assert!(VersionRange::parse("=6.1, >=6.2").is_err());
        assert!(VersionRange::parse(">6.1, <6.1.1").is_ok());
        assert!(VersionRange::parse(">=6.1, <=6.1").is_ok());
        assert!(VersionRange::parse(">=six").is_err());
    }

    #[test]
    fn release_numbers() {
        assert_eq!(version_numbers("6.18.44-fc-v769"), vec![6, 18, 44]);
        assert_eq!(version_numbers("10.0.22631"), vec![10, 0, 22631]);
        assert_eq!(version_numbers("14.1-RELEASE"), vec![14, 1]);
    }
}
