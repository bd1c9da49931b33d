//! A cursor over one batch: each rule's next hit, and the leftmost of them for the engine.

use std::collections::VecDeque;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use regex::bytes::CaptureLocations;

use crate::rule::{verdict, Verdict};
use crate::Core;

#[derive(Clone, Copy)]
pub struct Offer {
    start: usize,
    end: usize,
    span: (usize, usize),
    /// the field (index into `Rule::fields`) of a `fields` rule's hit
    field: Option<usize>,
}

type Spans = Vec<Option<(usize, usize)>>;

#[pyclass]
pub struct Scan {
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

impl Scan {
    pub fn new(core: Arc<Core>, buf: Py<PyBytes>, occurrences: Vec<Vec<usize>>) -> Scan {
        let count = core.rules.len();
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

    /// The validator's verdict on `span` (`PatternDetector.valid`).
    fn valid(&self, py: Python<'_>, slot: usize, span: (usize, usize)) -> PyResult<bool> {
        let rule = &self.core.rules[slot];
        if let Some(native) = rule.native {
            let bytes = self.buf.as_ref(py).as_bytes();
            if let Some(verdict) = native.judge(&bytes[span.0..span.1], bytes, span.0) {
                return Ok(verdict);
            }
        }
        match &rule.validator {
            None => Ok(true),
            Some(valid) => valid.call1(py, (&self.buf, span.0, span.1))?.is_true(py),
        }
    }

    /// The hits of the match whose group spans are `spans`, or None when the match is
    /// rejected (`PatternDetector.hits`).
    fn accept(&self, py: Python<'_>, slot: usize, spans: &Spans) -> PyResult<Option<Vec<Offer>>> {
        let rule = &self.core.rules[slot];
        let (start, end) = spans[0].expect("a match has group 0");
        if rule.fields.is_empty() {
            let span = match spans.get(rule.group).copied().flatten() {
                Some(span) if span.0 < span.1 => span,
                _ => return Ok(None),
            };
            if !self.valid(py, slot, span)? {
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
            let span = match spans.get(*group).copied().flatten() {
                Some(span) if span.0 < span.1 => span,
                _ => continue,
            };
            if !self.valid(py, slot, span)? {
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

    /// Python's match at `start` (`Match.regs`), for a path whose look-arounds failed.
    fn ask_python(
        &self,
        py: Python<'_>,
        slot: usize,
        start: usize,
        line_end: usize,
    ) -> PyResult<Option<Spans>> {
        let fallback = self.core.rules[slot]
            .fallback
            .as_ref()
            .expect("a rule with checks has a fallback");
        let regs = fallback.call1(py, (&self.buf, start, line_end))?;
        if regs.is_none(py) {
            return Ok(None);
        }
        let regs: Vec<(isize, isize)> = regs.extract(py)?;
        Ok(Some(
            regs.into_iter()
                .map(|(s, e)| (s >= 0).then_some((s as usize, e as usize)))
                .collect(),
        ))
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
        let regex = if rule.python_spans {
            rule.finder() // Python decides: candidates are enough
        } else {
            rule.for_line(&haystack[(start - first).min(haystack.len())..])
        };
        while start < line_end && rule.python_spans {
            // the DFA finds the start, Python's match the groups (and the look-arounds)
            let Some(found) = regex.find_at(haystack, start - first) else {
                return Ok(None);
            };
            let match_start = first + found.start();
            if let Some(spans) = self.ask_python(py, slot, match_start, line_end)? {
                if let Some(hits) = self.accept(py, slot, &spans)? {
                    return Ok(Some((spans[0].expect("group 0").1, hits)));
                }
            }
            start = match_start + 1;
        }
        while start < line_end {
            let locations = &mut self.locations[slot];
            if regex
                .captures_read_at(locations, haystack, start - first)
                .is_none()
            {
                return Ok(None);
            }
            let mut spans: Spans = (0..locations.len())
                .map(|g| locations.get(g).map(|(s, e)| (first + s, first + e)))
                .collect();
            let match_start = spans[0].expect("group 0").0;
            match verdict(&rule.checks, bytes, &spans, line_end) {
                Verdict::Pass => {}
                Verdict::Skip => {
                    start = match_start + 1;
                    continue;
                }
                Verdict::Ask => match self.ask_python(py, slot, match_start, line_end)? {
                    Some(found) => spans = found,
                    None => {
                        start = match_start + 1;
                        continue;
                    }
                },
            }
            if let Some(hits) = self.accept(py, slot, &spans)? {
                return Ok(Some((spans[0].expect("group 0").1, hits)));
            }
            start = match_start + 1;
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
