//! One window's close for a batch of quiet series, on their packed trees.
//!
//! A packed series is `[last_window, activity, learned, seq, body]` with `body` a list of
//! `[detector name, learned values]` (`streams.scoring.Scoring._pack`). For each series
//! this does what `Scoring._catch_up` and `Scoring._score_window` do in Python: learn the
//! empty windows it missed (`learn_empty`), decay its activity share, then per detector
//! either learn only (too sparse for it yet) or score and learn, and update the activity
//! share and the header. A series where some detector's score reaches its line is left
//! alone (`None`): the Python path re-runs it from its unchanged packed state and writes
//! the finding with its explanation.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::detector::{build, check, Window};
use crate::msgpack;
use crate::value::{Spec, Value};

#[pyclass(module = "tradewatch_native")]
pub struct Closer {
    /// Layout spec per detector name (the family direction's).
    specs: HashMap<String, Spec>,
    /// Detector names in the order `lines` gives their thresholds.
    names: Vec<String>,
    /// `min_series_activity` per detector name, where set.
    min_activity: HashMap<String, f64>,
    activity_rate: f64,
}

#[pymethods]
impl Closer {
    /// A closer for series whose detectors are `specs` (name -> layout spec, in the
    /// order `close` gets their thresholds); a ValueError says which has no native twin.
    #[new]
    fn new(specs: Vec<(String, Spec)>, min_activity: HashMap<String, f64>, activity_rate: f64) -> PyResult<Self> {
        for (name, spec) in &specs {
            check(spec).map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
        }
        Ok(Closer {
            names: specs.iter().map(|(n, _)| n.clone()).collect(),
            specs: specs.into_iter().collect(),
            min_activity,
            activity_rate,
        })
    }

    /// Close window number `index` (starting at `start`) for each packed series of `blobs`.
    ///
    /// `scored[i]` is the start of window number `base + i` (`Scoring._scored`);
    /// `values`, `counts` and `learn` are each series' window total, declarations and
    /// whether it learns the window; `lines[s][d]` the threshold of detector `names[d]`
    /// for series `s` (None: not explained). Returns, per series, `(new blob, last window
    /// before, last window after)`, or None when the Python path must close it (a score
    /// reached its line, or the blob is not one this closer knows).
    #[allow(clippy::too_many_arguments)]
    fn close(&self, py: Python<'_>, blobs: Vec<Bound<'_, PyBytes>>, scored: Vec<f64>, base: i64, index: i64,
             start: f64, values: Vec<f64>, counts: Vec<i64>, learn: Vec<bool>, lines: Vec<Vec<Option<f64>>>)
             -> PyResult<Vec<Option<(PyObject, f64, f64)>>> {
        let n = blobs.len();
        if values.len() != n || counts.len() != n || learn.len() != n || lines.len() != n {
            return Err(PyValueError::new_err("close: one value, count, learn flag and line list per blob"));
        }
        let mut out = Vec::with_capacity(n);
        let mut buf = Vec::with_capacity(1024);
        for (i, blob) in blobs.iter().enumerate() {
            let x = Window { value: values[i], t: start, count: counts[i] };
            let bytes = blob.as_bytes();
            // A blob this closer cannot read, or a detector that panics on state it did not
            // expect, leaves the series to the Python path (its blob is untouched): never an
            // exception out of the close.
            let closed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                msgpack::decode(bytes).ok().and_then(|tree| {
                    let before = match &tree {
                        Value::List(items) if !items.is_empty() => items[0].float("last_window").ok()?,
                        _ => return None,
                    };
                    self.close_one(&tree, &scored, base, index, &x, learn[i], &lines[i]).map(|new| (new, before))
                })
            }))
            .unwrap_or(None);
            out.push(closed.map(|(new, before)| {
                buf.clear();
                msgpack::encode(&new, &mut buf);
                let after = if x.count != 0 { x.t } else { before };
                (PyBytes::new_bound(py, &buf).into_any().unbind(), before, after)
            }));
        }
        Ok(out)
    }
}

impl Closer {
    fn close_one(&self, tree: &Value, scored: &[f64], base: i64, index: i64, x: &Window, learn: bool,
                 lines: &[Option<f64>]) -> Option<Value> {
        let Value::List(items) = tree else { return None };
        if items.len() != 5 || lines.len() != self.names.len() {
            return None;
        }
        let last_window = items[0].float("last_window").ok()?;
        let mut activity = items[1].float("activity").ok()?;
        let learned = items[2].int("learned").ok()?;
        let Value::List(body) = &items[4] else { return None };
        // Scoring._catch_up: the windows learned .. index - 1 it missed
        let missed: &[f64] = if learned < index {
            if learned < base || index - base > scored.len() as i64 {
                return None; // Python raises here: let it
            }
            &scored[(learned - base) as usize..(index - base) as usize]
        } else {
            &[]
        };
        let mut detectors = Vec::with_capacity(body.len());
        for entry in body {
            let Value::List(pair) = entry else { return None };
            let [Value::Str(name), Value::List(vals)] = pair.as_slice() else { return None };
            let spec = self.specs.get(name)?;
            let line = lines[self.names.iter().position(|n| n == name)?];
            let mut d = build(spec, vals).ok()?;
            if !missed.is_empty() {
                d.learn_empty(missed);
            }
            detectors.push((name, d, line));
        }
        if !missed.is_empty() {
            activity *= (1.0 - self.activity_rate).powf(missed.len() as f64);
        }
        // Scoring._score_window
        let last_window = if x.count != 0 { x.t } else { last_window };
        let mut new_body = Vec::with_capacity(detectors.len());
        for (name, mut d, line) in detectors {
            match self.min_activity.get(name.as_str()) {
                Some(&floor) if activity < floor => {
                    if learn {
                        d.learn_one(x);
                    }
                }
                _ => {
                    let score = d.score_then_learn(x, learn);
                    if let Some(line) = line {
                        if score >= line {
                            return None;
                        }
                    }
                }
            }
            new_body.push(Value::List(vec![Value::Str(name.clone()), Value::List(d.values())]));
        }
        activity += self.activity_rate * ((if x.count != 0 { 1.0 } else { 0.0 }) - activity);
        Some(Value::List(vec![
            Value::Float(last_window),
            Value::Float(activity),
            Value::Int(index + 1),
            items[3].clone(),
            Value::List(new_body),
        ]))
    }
}
