//! restic-style path patterns for `--exclude` (backup) and `--include`/`--exclude` (restore):
//! `/`-separated components where `*` and `?` match within one component, `[abc]`/`[a-z]`
//! classes match one character, and `**` matches any number of components. A pattern that
//! starts with `/` is anchored at the root; any other pattern may match starting at any
//! component (`*.log` excludes `/a/b/x.log`). A pattern matches a path when it matches the
//! whole path or one of its ancestors, so excluding a directory excludes what is below it.

use crate::error::{Error, Result};

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    anchored: bool,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// `**`: any number of components.
    AnyDepth,
    /// A component glob.
    Glob(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Pattern {
    /// Compile a pattern; an empty pattern or an unclosed `[` is an error naming the pattern.
    pub fn new(text: &str) -> Result<Pattern> {
        let trimmed = text.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(Error::Invalid(format!("pattern {text:?} is empty")));
        }
        let anchored = trimmed.starts_with('/');
        let mut parts = Vec::new();
        for comp in trimmed.split('/').filter(|c| !c.is_empty()) {
            if comp == "**" {
                if parts.last() != Some(&Part::AnyDepth) {
                    parts.push(Part::AnyDepth);
                }
            } else {
                parts.push(Part::Glob(compile_glob(comp).map_err(|reason| {
                    Error::Invalid(format!("pattern {text:?}: {reason}"))
                })?));
            }
        }
        Ok(Pattern {
            text: text.to_string(),
            anchored,
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches exactly these components (no ancestor rule).
    fn matches_exactly(&self, comps: &[&str]) -> bool {
        if self.anchored {
            match_parts(&self.parts, comps)
        } else {
            (0..=comps.len()).any(|start| match_parts(&self.parts, &comps[start..]))
        }
    }

    /// Whether the pattern matches `path` (absolute, `/`-separated) or one of its ancestors.
    pub fn matches(&self, path: &str) -> bool {
        let comps = components(path);
        (1..=comps.len()).any(|n| self.matches_exactly(&comps[..n]))
    }

    /// Whether something below the directory `dir` could match (so a restore with includes must
    /// descend into it).
    pub fn may_match_below(&self, dir: &str) -> bool {
        if !self.anchored || self.parts.first() == Some(&Part::AnyDepth) || self.matches(dir) {
            return true;
        }
        let comps = components(dir);
        prefix_may_match(&self.parts, &comps)
    }
}

/// The components of a `/`-separated path.
fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

fn match_parts(parts: &[Part], comps: &[&str]) -> bool {
    match parts.split_first() {
        None => comps.is_empty(),
        Some((Part::AnyDepth, rest)) => (0..=comps.len()).any(|i| match_parts(rest, &comps[i..])),
        Some((Part::Glob(g), rest)) => match comps.split_first() {
            Some((c, more)) => glob_match(g, &c.chars().collect::<Vec<_>>()) && match_parts(rest, more),
            None => false,
        },
    }
}

/// Whether `comps` can be the beginning of a path the parts match.
fn prefix_may_match(parts: &[Part], comps: &[&str]) -> bool {
    match (parts.split_first(), comps.split_first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((Part::AnyDepth, _)), _) => true,
        (Some((Part::Glob(g), rest)), Some((c, more))) => {
            glob_match(g, &c.chars().collect::<Vec<_>>()) && prefix_may_match(rest, more)
        }
    }
}

fn compile_glob(comp: &str) -> std::result::Result<Vec<Tok>, String> {
    let chars: Vec<char> = comp.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                if out.last() != Some(&Tok::AnyRun) {
                    out.push(Tok::AnyRun);
                }
            }
            '?' => out.push(Tok::Any),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(Tok::Lit(chars[i]));
            }
            '[' => {
                let mut j = i + 1;
                let negated = j < chars.len() && (chars[j] == '^' || chars[j] == '!');
                if negated {
                    j += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    if j >= chars.len() {
                        return Err(format!("unclosed '[' in {comp:?}"));
                    }
                    if chars[j] == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = chars[j];
                    if j + 2 < chars.len() && chars[j + 1] == '-' && chars[j + 2] != ']' {
                        ranges.push((lo, chars[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((lo, lo));
                        j += 1;
                    }
                }
                out.push(Tok::Class { negated, ranges });
                i = j;
            }
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    Ok(out)
}

fn glob_match(toks: &[Tok], s: &[char]) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::AnyRun, rest)) => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
        Some((tok, rest)) => match s.split_first() {
            None => false,
            Some((c, more)) => {
                let ok = match tok {
                    Tok::Lit(l) => l == c,
                    Tok::Any => true,
                    Tok::Class { negated, ranges } => {
                        ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
                    }
                    Tok::AnyRun => unreachable!("handled above"),
                };
                ok && glob_match(rest, more)
            }
        },
    }
}

/// A list of patterns; matches when any pattern does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
}

impl PatternSet {
    /// Compile every pattern.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PatternSet> {
        Ok(PatternSet {
            patterns: patterns
                .iter()
                .map(|p| Pattern::new(p.as_ref()))
                .collect::<Result<_>>()?,
        })
    }

    /// No patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether a pattern matches `path` or an ancestor of it.
    pub fn matches(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(path))
    }

    /// Whether some pattern could match below the directory `dir`.
    pub fn may_match_below(&self, dir: &str) -> bool {
        self.patterns.iter().any(|p| p.may_match_below(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        Pattern::new(p).unwrap().matches(path)
    }

    #[test]
    fn unanchored_patterns_match_anywhere_and_below() {
        assert!(m("*.log", "/var/log/x.log"));
        assert!(m("*.log", "/x.log"));
        assert!(!m("*.log", "/var/log/x.log.1"));
        assert!(m("cache", "/home/u/cache/a/b"));
        assert!(!m("cache", "/home/u/cached"));
        assert!(m("u/cache", "/home/u/cache/a"));
        assert!(!m("u/cache", "/home/v/cache"));
    }

    #[test]
    fn anchored_patterns_and_double_star() {
        assert!(m("/home", "/home/u"));
        assert!(!m("/u", "/home/u"));
        assert!(m("/home/*/cache", "/home/u/cache/x"));
        assert!(!m("/home/*/cache", "/home/u/v/cache"));
        assert!(m("/home/**/cache", "/home/u/v/cache"));
        assert!(m("/home/**/cache", "/home/cache"));
        assert!(m("**/*.tmp", "/a/b/c.tmp"));
    }

    #[test]
    fn classes_and_single_characters() {
        assert!(m("file[0-9].txt", "/d/file7.txt"));
        assert!(!m("file[0-9].txt", "/d/filex.txt"));
        assert!(m("file[!0-9].txt", "/d/filex.txt"));
        assert!(m("a?c", "/abc"));
        assert!(!m("a?c", "/abbc"));
        assert!(m("a\\*c", "/a*c"));
        assert!(!m("a\\*c", "/abc"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let err = Pattern::new("x[ab").unwrap_err().to_string();
        assert!(err.contains("x[ab") && err.contains("unclosed"), "{err}");
        assert!(Pattern::new("").is_err());
    }

    #[test]
    fn may_match_below_guides_descent() {
        let p = Pattern::new("/data/db/*.sql").unwrap();
        assert!(p.may_match_below("/"));
        assert!(p.may_match_below("/data"));
        assert!(p.may_match_below("/data/db"));
        assert!(!p.may_match_below("/etc"));
        assert!(Pattern::new("*.sql").unwrap().may_match_below("/etc"));
        let set = PatternSet::new(&["/a/b", "/c"]).unwrap();
        assert!(set.may_match_below("/a") && set.may_match_below("/c/d") && !set.may_match_below("/e"));
    }
}
