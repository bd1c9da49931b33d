//! One rule of the core: its regexes (exact, relaxed), its look-around checks and validator.

use std::sync::OnceLock;

use pyo3::prelude::*;
use regex::bytes::{Regex, RegexBuilder};

use crate::validators::Native;

/// The compiled regex size limit (the `regex` crate's default is 10 MB; user rules with
/// large bounded repetitions are refused instead of compiled slowly, and run in Python).
const SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// The lazy DFA's cache per regex (the crate's default, 2 MB, times two regexes per rule and
/// the rules in the core took the process over its 100 MB budget).
const DFA_LIMIT: usize = 256 * 1024;

pub fn build_regex(pattern: &str, ignore_case: bool) -> Result<Regex, regex::Error> {
    // Python's `re` on bytes: ASCII classes and case folding, `^`/`$` at line boundaries
    RegexBuilder::new(pattern)
        .unicode(false)
        .multi_line(true)
        .case_insensitive(ignore_case)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_LIMIT)
        .build()
}

/// Where a look-around of the Python pattern stands on the path the core's regex took.
#[derive(Clone, Copy)]
pub enum Place {
    /// the match's start plus this many bytes
    Start(usize),
    /// the match's end
    End,
    /// the start / end of this group (not checked when the group took no part)
    GroupStart(usize),
    GroupEnd(usize),
}

/// A look-around the core's regex leaves out, checked at its place on the path found.
pub struct Check {
    place: Place,
    /// a look-behind (`\A(?:body)\z` on the `width` bytes before) or a look-ahead
    /// (`\A(?:body)` on the rest of the line: Python's search ends at the line's end)
    behind: Option<usize>,
    negate: bool,
    regex: Regex,
    /// a failure proves that no match starts there (else Python's `re` decides)
    fatal: bool,
}

/// The outcome of the checks on one path.
pub enum Verdict {
    Pass,
    /// no match starts at this start: search on from the next one
    Skip,
    /// the path fails but another one from this start might not: Python's `re` decides
    Ask,
}

/// One check as `native.py` describes it: (place, number, behind width or 0 for a
/// look-ahead, look-behind, negated, body, fatal).
pub type CheckSpec = (String, usize, usize, bool, bool, String, bool);

impl Check {
    pub fn build(spec: CheckSpec, ignore_case: bool) -> Result<Check, String> {
        let (place, number, width, behind, negate, body, fatal) = spec;
        let place = match place.as_str() {
            "start" => Place::Start(number),
            "end" => Place::End,
            "group_start" => Place::GroupStart(number),
            "group_end" => Place::GroupEnd(number),
            other => return Err(format!("unknown check place {other:?}")),
        };
        let source = if behind {
            format!("\\A(?:{body})\\z")
        } else {
            format!("\\A(?:{body})")
        };
        let regex = build_regex(&source, ignore_case).map_err(|err| err.to_string())?;
        let behind = if behind { Some(width) } else { None };
        Ok(Check {
            place,
            behind,
            negate,
            regex,
            fatal,
        })
    }

    /// Whether the look-around holds at its place; `spans`: the path's groups, absolute.
    fn holds(&self, buf: &[u8], spans: &[Option<(usize, usize)>], line_end: usize) -> bool {
        let at = match self.place {
            Place::Start(offset) => spans[0].map(|(start, _)| start + offset),
            Place::End => spans[0].map(|(_, end)| end),
            Place::GroupStart(group) => spans.get(group).copied().flatten().map(|s| s.0),
            Place::GroupEnd(group) => spans.get(group).copied().flatten().map(|s| s.1),
        };
        let Some(at) = at else {
            return true; // a group that took no part: its look-around was not on the path
        };
        let found = match self.behind {
            Some(width) => at >= width && self.regex.is_match(&buf[at - width..at]),
            None => self.regex.is_match(&buf[at.min(line_end)..line_end]),
        };
        found != self.negate
    }
}

pub fn verdict(
    checks: &[Check],
    buf: &[u8],
    spans: &[Option<(usize, usize)>],
    line_end: usize,
) -> Verdict {
    let mut verdict = Verdict::Pass;
    for check in checks {
        if !check.holds(buf, spans, line_end) {
            if check.fatal {
                return Verdict::Skip;
            }
            verdict = Verdict::Ask;
        }
    }
    verdict
}

pub struct Rule {
    pub index: i64,
    /// the exact pattern, compiled when first needed when there is a relaxed one (large
    /// bounded repetitions make programs of megabytes: memory only lines that need it pay)
    pub regex: OnceLock<Regex>,
    pub source: String,
    pub ignore_case: bool,
    pub group: usize,
    /// (group number, shape) of a `fields` rule; empty for a plain rule
    pub fields: Vec<(usize, PyObject)>,
    pub untrusted: bool,
    /// `PatternDetector.valid(buf, start, end)`, or None without a validator
    pub validator: Option<PyObject>,
    /// the validator ported to Rust (it asks `validator` about values outside its domain)
    pub native: Option<Native>,
    /// only lines holding one of the triggers are searched
    pub gated: bool,
    /// the pattern with its large bounded repetitions of one-byte atoms unbounded, and each
    /// atom's bytes with its bound: equivalent wherever no run of an atom's bytes is longer
    /// than its bound (the regex crate builds huge automata for `[^"]{0,8192}`)
    pub relaxed: Option<(Regex, Vec<([bool; 256], usize)>)>,
    /// the look-arounds of the Python pattern that the core's regex leaves out
    pub checks: Vec<Check>,
    /// `regex.match(buf, start, end)`'s group spans (`Match.regs`) or None: Python's verdict
    /// on a start where a check that is not fatal failed
    pub fallback: Option<PyObject>,
    /// the core only finds where matches start and `fallback` gives their groups
    pub python_spans: bool,
}

impl Rule {
    pub fn exact(&self) -> &Regex {
        self.regex.get_or_init(|| {
            build_regex(&self.source, self.ignore_case)
                .expect("compiled once when the core was built")
        })
    }

    /// The regex that finds candidates: the relaxed one matches wherever the exact one does.
    pub fn finder(&self) -> &Regex {
        self.relaxed
            .as_ref()
            .map_or_else(|| self.exact(), |(relaxed, _)| relaxed)
    }

    /// The regex for the rest of a line: the relaxed one when no run of a relaxed atom's
    /// bytes there is longer than its bound.
    pub fn for_line(&self, rest: &[u8]) -> &Regex {
        match &self.relaxed {
            Some((relaxed, bounds))
                if bounds
                    .iter()
                    .all(|(table, bound)| longest_run(rest, table) <= *bound) =>
            {
                relaxed
            }
            _ => self.exact(),
        }
    }
}

pub fn atom_bytes(atom: &str, ignore_case: bool) -> Result<[bool; 256], regex::Error> {
    let whole = build_regex(&format!("\\A(?:{atom})\\z"), ignore_case)?;
    let mut table = [false; 256];
    for (byte, member) in table.iter_mut().enumerate() {
        *member = whole.is_match(&[byte as u8]);
    }
    Ok(table)
}

fn longest_run(haystack: &[u8], table: &[bool; 256]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for &byte in haystack {
        if table[byte as usize] {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}
