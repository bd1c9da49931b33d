//! The native matching core of koncis-diag's redaction engine (Python: `koncis_diag._native`).
//!
//! It runs the `pattern` rules whose regexes the `regex` crate accepts, all of them in one
//! cursor: for each rule it finds the same hits as the Python `PatternCursor` (line-bounded
//! matches, only on lines holding one of the rule's literal triggers, the group or the named
//! fields, the validator's verdict), and it offers the engine the leftmost of them (the lowest
//! rule index at equal starts), exactly as the engine's heap would have chosen among one
//! cursor per rule. The other detectors, the choice between them and the rewrite stay in
//! Python (`koncis_diag/redaction/native.py` explains the seam).
//!
//! A rule whose pattern has look-arounds runs here when `native_rules.py` translates it: the
//! regex without them, and each look-around checked at its place on the path found (`rule`);
//! a validator ported to Rust (`validators`) answers without a call into Python.

use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod rule;
mod scan;
mod validators;

use rule::{atom_bytes, build_regex, Check, CheckSpec, Rule};
use scan::Scan;
use validators::Native;

/// Bumped whenever the interface with `native.py` changes: a stale build is then not used.
const ABI: u32 = 3;

/// None when the `regex` crate compiles `pattern` (with Python's flags), else why not.
#[pyfunction]
fn compile_error(pattern: &str, ignore_case: bool) -> Option<String> {
    build_regex(pattern, ignore_case)
        .err()
        .map(|err| err.to_string())
}

/// The verdict of a ported validator (None: not ported, or the value is outside the port's
/// domain and Python decides); for the tests that compare it with Python's.
#[pyfunction]
fn validate(name: &str, buf: &[u8], start: usize, end: usize) -> Option<bool> {
    Native::named(name)?.judge(&buf[start..end], buf, start)
}

pub struct Core {
    rules: Vec<Rule>,
    hit: PyObject,
    /// trigger automata (case-sensitive, ASCII case-insensitive) and, per trigger, its rules
    exact: Option<(AhoCorasick, Vec<Vec<usize>>)>,
    folded: Option<(AhoCorasick, Vec<Vec<usize>>)>,
}

/// A rule's additions to the plain pattern: (ported validator's name, look-around checks,
/// Python's `match` for the starts where a check that is not fatal failed, whether that
/// `match` gives the groups of every match: faster than the crate's captures for a large
/// pattern).
type Extra = (Option<String>, Vec<CheckSpec>, Option<PyObject>, bool);

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
    Extra,
);

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

fn build_rule(spec: RuleSpec) -> PyResult<(Rule, Vec<Vec<u8>>, bool)> {
    let (index, pattern, icase, group, fields, untrusted, validator, triggers, fold, relax, extra) =
        spec;
    let (native_name, check_specs, fallback, python_spans) = extra;
    let fail = |err: String| PyValueError::new_err(format!("rule #{index}: {err}"));
    let regex = OnceLock::new();
    let relaxed = match relax {
        None => None,
        Some((source, atoms)) => {
            let mut bounds = Vec::with_capacity(atoms.len());
            for (atom, bound) in atoms {
                // case-folded: a superset of the bytes, also inside a (?i:...) group
                let table = atom_bytes(&atom, true).map_err(|err| fail(err.to_string()))?;
                bounds.push((table, bound));
            }
            let relaxed = build_regex(&source, icase).map_err(|err| fail(err.to_string()))?;
            Some((relaxed, bounds))
        }
    };
    if relaxed.is_none() {
        let _ = regex.set(build_regex(&pattern, icase).map_err(|err| fail(err.to_string()))?);
    } else if !python_spans {
        // the exact regex is compiled when a line needs it: it must compile (Python spans
        // need only the relaxed one, which finds every start where Python may match)
        if let Some(err) = compile_error(&pattern, icase) {
            return Err(fail(err));
        }
    }
    let mut checks = Vec::with_capacity(check_specs.len());
    for spec in check_specs {
        checks.push(Check::build(spec, icase).map_err(fail)?);
    }
    if (python_spans || !checks.is_empty()) && fallback.is_none() {
        return Err(fail("look-around checks need Python's match".into()));
    }
    let native = match native_name {
        None => None,
        Some(name) => Some(Native::named(&name).ok_or_else(|| fail(format!("validator {name}")))?),
    };
    let rule = Rule {
        index,
        regex,
        source: pattern,
        ignore_case: icase,
        group,
        fields,
        untrusted,
        validator,
        native,
        gated: !triggers.is_empty(),
        relaxed,
        checks,
        fallback,
        python_spans,
    };
    Ok((rule, triggers, fold))
}

#[pymethods]
impl PyCore {
    /// `rules`: (rule index, pattern, ignore case, group, fields, untrusted, validator,
    /// triggers, triggers ignore case, relaxed pattern, extra) in priority order; `hit`: the
    /// `Hit` class.
    #[new]
    fn new(rules: Vec<RuleSpec>, hit: PyObject) -> PyResult<Self> {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut exact = Vec::new();
        let mut folded = Vec::new();
        for (slot, spec) in rules.into_iter().enumerate() {
            let (rule, triggers, fold) = build_rule(spec)?;
            for trigger in triggers {
                if fold {
                    folded.push((trigger, slot));
                } else {
                    exact.push((trigger, slot));
                }
            }
            compiled.push(rule);
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
        let mut occurrences: Vec<Vec<usize>> = vec![Vec::new(); core.rules.len()];
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
        Scan::new(core, buf, occurrences)
    }
}

#[pymodule]
fn _native(_py: Python<'_>, module: &PyModule) -> PyResult<()> {
    module.add("ABI", ABI)?;
    module.add_class::<PyCore>()?;
    module.add_class::<Scan>()?;
    module.add_function(wrap_pyfunction!(compile_error, module)?)?;
    module.add_function(wrap_pyfunction!(validate, module)?)?;
    Ok(())
}
