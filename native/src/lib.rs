//! The native matching core of koncis-diag's redaction engine (Python: `koncis_diag._native`).
//!
//! It runs the `pattern` rules whose regexes the `regex` crate accepts, all of them in one
//! cursor: for each rule it finds the same hits as the Python `PatternCursor` (line-bounded
//! matches, only on lines holding one of the rule's literal triggers, the group or the named
//! fields, the validator's verdict), and it offers the engine the leftmost of them (the lowest
//! rule index at equal starts), exactly as the engine's heap would have chosen among one
//! cursor per rule. The other detectors, the choice between them and the rewrite stay in
//! Python (`koncis_diag/redaction/native.py` explains the seam).

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

/// Bumped whenever the interface with `native.py` changes: a stale build is then not used.
const ABI: u32 = 2;

/// The compiled regex size limit (the `regex` crate's default is 10 MB; user rules with
/// large bounded repetitions are refused instead of compiled slowly, and run in Python).
const SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// The lazy DFA's cache per regex (the crate's default, 2 MB, times two regexes per rule and
/// the rules in the core took the process over its 100 MB budget).
const DFA_LIMIT: usize = 256 * 1024;

fn build_regex(pattern: &str, ignore_case: bool) -> Result<Regex, regex::Error> {
    // Python's `re` on bytes: ASCII classes and case folding, `^`/`$` at line boundaries
    RegexBuilder::new(pattern)
        .unicode(false)
        .multi_line(true)
        .case_insensitive(ignore_case)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_LIMIT)
        .build()
}

/// None when the `regex` crate compiles `pattern` (with Python's flags), else why not.
#[pyfunction]
fn compile_error(pattern: &str, ignore_case: bool) -> Option<String> {
    build_regex(pattern, ignore_case)
        .err()
        .map(|err| err.to_string())
}

struct Rule {
    index: i64,
    /// the exact pattern, compiled when first needed when there is a relaxed one (large
    /// bounded repetitions make programs of megabytes: memory only lines that need it pay)
    regex: OnceLock<Regex>,
    source: String,
    ignore_case: bool,
    group: usize,
    /// (group number, shape) of a `fields` rule; empty for a plain rule
    fields: Vec<(usize, PyObject)>,
    untrusted: bool,
    /// `PatternDetector.valid(buf, start, end)`, or None without a validator
    validator: Option<PyObject>,
    /// only lines holding one of the triggers are searched
    gated: bool,
    /// the pattern with its large bounded repetitions of one-byte atoms unbounded, and each
    /// atom's bytes with its bound: equivalent wherever no run of an atom's bytes is longer
    /// than its bound (the regex crate builds huge automata for `[^"]{0,8192}`)
    relaxed: Option<(Regex, Vec<([bool; 256], usize)>)>,
}

struct Core {
    rules: Vec<Rule>,
    hit: PyObject,
    /// trigger automata (case-sensitive, ASCII case-insensitive) and, per trigger, its rules
    exact: Option<(AhoCorasick, Vec<Vec<usize>>)>,
    folded: Option<(AhoCorasick, Vec<Vec<usize>>)>,
}

/// One rule as `native.py` describes it.
type RuleSpec = (
    i64,
    String,
    bool,
    usize,
    Vec<(usize, PyObject)>,
    bool,
    Option<PyObject>,
    Vec<Vec<u8>>,
    bool,
    Option<(String, Vec<(String, usize)>)>,
);

fn atom_bytes(atom: &str, ignore_case: bool) -> Result<[bool; 256], regex::Error> {
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

impl Rule {
    fn exact(&self) -> &Regex {
        self.regex.get_or_init(|| {
            build_regex(&self.source, self.ignore_case)
                .expect("compiled once when the core was built")
        })
    }

    /// The regex that finds candidates: the relaxed one matches wherever the exact one does.
    fn finder(&self) -> &Regex {
        self.relaxed
            .as_ref()
            .map_or_else(|| self.exact(), |(relaxed, _)| relaxed)
    }
}

#[pyclass(name = "Core")]
struct PyCore {
    core: Arc<Core>,
}

fn automaton(
    triggers: Vec<(Vec<u8>, usize)>,
    fold: bool,
) -> Option<(AhoCorasick, Vec<Vec<usize>>)> {
    if triggers.is_empty() {
        return None;
    }
    let mut needles: Vec<Vec<u8>> = Vec::new();
    let mut owners: Vec<Vec<usize>> = Vec::new();
    for (needle, rule) in triggers {
        match needles.iter().position(|known| *known == needle) {
            Some(at) => owners[at].push(rule),
            None => {
                needles.push(needle);
                owners.push(vec![rule]);
            }
        }
    }
    let ac = AhoCorasickBuilder::new()
        .ascii_case_insensitive(fold)
        .build(&needles);
    Some((ac, owners))
}

#[pymethods]
impl PyCore {
    /// `rules`: (rule index, pattern, ignore case, group, fields, untrusted, validator,
    /// triggers, triggers ignore case) in priority order; `hit`: the `Hit` class.
    #[new]
    fn new(rules: Vec<RuleSpec>, hit: PyObject) -> PyResult<Self> {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut exact = Vec::new();
        let mut folded = Vec::new();
        for (slot, spec) in rules.into_iter().enumerate() {
            let (index, pattern, icase, group, fields, untrusted, validator, triggers, fold, relax) =
                spec;
            let fail = |err: regex::Error| PyValueError::new_err(format!("rule #{index}: {err}"));
            let regex = OnceLock::new();
            let relaxed = match relax {
                None => None,
                Some((source, atoms)) => {
                    let mut bounds = Vec::with_capacity(atoms.len());
                    for (atom, bound) in atoms {
                        // case-folded: a superset of the bytes, also inside a (?i:...) group
                        bounds.push((atom_bytes(&atom, true).map_err(fail)?, bound));
                    }
                    Some((build_regex(&source, icase).map_err(fail)?, bounds))
                }
            };
            if relaxed.is_none() {
                let _ = regex.set(build_regex(&pattern, icase).map_err(fail)?);
            } else if let Some(err) = compile_error(&pattern, icase) {
                return Err(PyValueError::new_err(format!("rule #{index}: {err}")));
            }
            let gated = !triggers.is_empty();
            for trigger in triggers {
                if fold {
                    folded.push((trigger, slot));
                } else {
                    exact.push((trigger, slot));
                }
            }
            compiled.push(Rule {
                index,
                regex,
                source: pattern,
                ignore_case: icase,
                group,
                fields,
                untrusted,
                validator,
                gated,
                relaxed,
            });
        }
        let core = Core {
            rules: compiled,
            hit,
            exact: automaton(exact, false),
            folded: automaton(folded, true),
        };
        Ok(PyCore {
            core: Arc::new(core),
        })
    }

    /// A cursor over one batch (the engine's ``begin``).
    fn begin(&self, py: Python<'_>, buf: Py<PyBytes>) -> Scan {
        let core = Arc::clone(&self.core);
        let count = core.rules.len();
        let mut occurrences: Vec<Vec<usize>> = vec![Vec::new(); count];
        {
            let bytes = buf.as_ref(py).as_bytes();
            for (ac, owners) in [&core.exact, &core.folded].into_iter().flatten() {
                for found in ac.find_overlapping_iter(bytes) {
                    for &rule in &owners[found.pattern()] {
                        occurrences[rule].push(found.start());
                    }
                }
            }
        }
        for offsets in occurrences.iter_mut() {
            offsets.sort_unstable();
            offsets.dedup();
        }
        let locations = core
            .rules
            .iter()
            .map(|r| r.finder().capture_locations())
            .collect();
        Scan {
            core,
            buf,
            occurrences,
            offers: vec![None; count],
            started: false,
            pending: vec![VecDeque::new(); count],
            resume: vec![0; count],
            locations,
        }
    }
}

#[derive(Clone, Copy)]
struct Offer {
    start: usize,
    end: usize,
    span: (usize, usize),
    /// the field (index into `Rule::fields`) of a `fields` rule's hit
    field: Option<usize>,
}

#[pyclass]
struct Scan {
    core: Arc<Core>,
    buf: Py<PyBytes>,
    occurrences: Vec<Vec<usize>>,
    offers: Vec<Option<Offer>>,
    started: bool,
    pending: Vec<VecDeque<Offer>>,
    resume: Vec<usize>,
    locations: Vec<CaptureLocations>,
}

fn line_start(buf: &[u8], pos: usize) -> usize {
    memchr::memrchr(b'\n', &buf[..pos.min(buf.len())]).map_or(0, |at| at + 1)
}

fn line_end(buf: &[u8], pos: usize) -> usize {
    if pos >= buf.len() {
        return buf.len();
    }
    memchr::memchr(b'\n', &buf[pos..]).map_or(buf.len(), |at| pos + at)
}

fn valid(
    py: Python<'_>,
    validator: &Option<PyObject>,
    buf: &Py<PyBytes>,
    span: (usize, usize),
) -> PyResult<bool> {
    match validator {
        None => Ok(true),
        Some(valid) => valid.call1(py, (buf, span.0, span.1))?.is_true(py),
    }
}

impl Scan {
    /// The hits of the match whose captures are in `self.locations[slot]`, or None when the
    /// match is rejected (`PatternDetector.hits`).
    fn accept(&self, py: Python<'_>, slot: usize, base: usize) -> PyResult<Option<Vec<Offer>>> {
        let rule = &self.core.rules[slot];
        let locations = &self.locations[slot];
        let shift = |(start, end): (usize, usize)| (base + start, base + end);
        let (start, end) = shift(locations.get(0).expect("a match has group 0"));
        if rule.fields.is_empty() {
            let span = match locations.get(rule.group).map(shift) {
                Some(span) if span.0 < span.1 => span,
                _ => return Ok(None),
            };
            if !valid(py, &rule.validator, &self.buf, span)? {
                return Ok(None);
            }
            let (claim_start, claim_end) = if rule.untrusted { span } else { (start, end) };
            let offer = Offer {
                start: claim_start,
                end: claim_end,
                span,
                field: None,
            };
            return Ok(Some(vec![offer]));
        }
        let mut found = Vec::new();
        for (number, (group, _)) in rule.fields.iter().enumerate() {
            let span = match locations.get(*group).map(shift) {
                Some(span) if span.0 < span.1 => span,
                _ => continue,
            };
            if !valid(py, &rule.validator, &self.buf, span)? {
                continue;
            }
            found.push(Offer {
                start: span.0,
                end: span.1,
                span,
                field: Some(number),
            });
        }
        found.sort_by_key(|offer| offer.start); // stable, as Python's sort
        Ok(if found.is_empty() { None } else { Some(found) })
    }

    /// The first accepted match starting in `[start, line_end)` (`PatternCursor._line_match`).
    fn line_match(
        &mut self,
        py: Python<'_>,
        slot: usize,
        mut start: usize,
        line_end: usize,
    ) -> PyResult<Option<(usize, Vec<Offer>)>> {
        let core = Arc::clone(&self.core);
        let buf = self.buf.clone_ref(py);
        // the line alone (from its start, for `^` and `\b`): the regex crate then uses its
        // backtracker on a short haystack instead of its slower NFA simulation
        let bytes = buf.as_ref(py).as_bytes();
        let first = line_start(bytes, start);
        let haystack = &bytes[first..line_end];
        let rule = &core.rules[slot];
        let regex = match &rule.relaxed {
            Some((relaxed, bounds))
                if bounds.iter().all(|(table, bound)| {
                    longest_run(&haystack[(start - first).min(haystack.len())..], table) <= *bound
                }) =>
            {
                relaxed
            }
            _ => rule.exact(),
        };
        while start < line_end {
            if regex
                .captures_read_at(&mut self.locations[slot], haystack, start - first)
                .is_none()
            {
                return Ok(None);
            }
            let (match_start, match_end) = self.locations[slot].get(0).expect("group 0");
            if let Some(hits) = self.accept(py, slot, first)? {
                return Ok(Some((first + match_end, hits)));
            }
            start = first + match_start + 1;
        }
        Ok(None)
    }

    /// The rule's first hit starting at or after `pos` (`PatternCursor.next_hit`).
    fn rule_next(&mut self, py: Python<'_>, slot: usize, pos: usize) -> PyResult<Option<Offer>> {
        while let Some(offer) = self.pending[slot].pop_front() {
            if offer.start >= pos {
                return Ok(Some(offer));
            }
        }
        let core = Arc::clone(&self.core);
        let rule = &core.rules[slot];
        let buf = self.buf.clone_ref(py);
        let bytes = buf.as_ref(py).as_bytes();
        let mut pos = pos.max(self.resume[slot]);
        while pos < bytes.len() {
            let (start, end) = if rule.gated {
                let offsets = &self.occurrences[slot];
                let first = line_start(bytes, pos);
                let at = offsets.partition_point(|&offset| offset < first);
                let Some(&found) = offsets.get(at) else {
                    return Ok(None);
                };
                let start = if found < pos {
                    pos
                } else {
                    pos.max(line_start(bytes, found))
                };
                (start, line_end(bytes, start))
            } else {
                let Some(found) = rule.finder().find_at(bytes, pos) else {
                    return Ok(None);
                };
                (found.start(), line_end(bytes, found.start()))
            };
            if let Some((match_end, mut hits)) = self.line_match(py, slot, start, end)? {
                if !rule.fields.is_empty() {
                    self.resume[slot] = match_end;
                }
                let first = hits.remove(0);
                self.pending[slot] = hits.into();
                return Ok(Some(first));
            }
            pos = end + 1;
        }
        Ok(None)
    }

    fn make_hit(&self, py: Python<'_>, slot: usize, offer: &Offer) -> PyResult<PyObject> {
        let rule = &self.core.rules[slot];
        let spans = PyTuple::new(py, [(offer.span.0, offer.span.1)]);
        let args = (offer.start, offer.end, rule.index, spans);
        match offer.field {
            None => self.core.hit.call1(py, args),
            Some(field) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("shape", &rule.fields[field].1)?;
                self.core.hit.call(py, args, Some(kwargs))
            }
        }
    }
}

#[pymethods]
impl Scan {
    /// The leftmost hit at or after `pos` over all the rules (lowest rule index first at
    /// equal starts). Only the rules whose offer starts before `pos` are asked again: what the
    /// engine's heap does with one cursor per rule.
    fn next_hit(&mut self, py: Python<'_>, pos: usize) -> PyResult<Option<PyObject>> {
        let count = self.offers.len();
        for slot in 0..count {
            let stale = match self.offers[slot] {
                Some(offer) => offer.start < pos,
                None => !self.started,
            };
            if stale {
                self.offers[slot] = self.rule_next(py, slot, pos)?;
            }
        }
        self.started = true;
        let mut best: Option<usize> = None;
        for slot in 0..count {
            if let Some(offer) = self.offers[slot] {
                let better = match best {
                    None => true,
                    Some(chosen) => {
                        let other = self.offers[chosen].expect("chosen");
                        (offer.start, self.core.rules[slot].index)
                            < (other.start, self.core.rules[chosen].index)
                    }
                };
                if better {
                    best = Some(slot);
                }
            }
        }
        match best {
            None => Ok(None),
            Some(slot) => {
                let offer = self.offers[slot].expect("best");
                self.make_hit(py, slot, &offer).map(Some)
            }
        }
    }
}

#[pymodule]
fn _native(_py: Python<'_>, module: &PyModule) -> PyResult<()> {
    module.add("ABI", ABI)?;
    module.add_class::<PyCore>()?;
    module.add_class::<Scan>()?;
    module.add_function(wrap_pyfunction!(compile_error, module)?)?;
    Ok(())
}
