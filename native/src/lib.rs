//! tradewatch's native close: a quiet series' packed state in, caught up, scored and
//! learned, packed state out, float for float as the Python detectors would leave it.
//!
//! Why: at a million series a daily close spends ~250 us of Python per touched series
//! (unpacking ~40 values into objects, the catch-up loops, four detectors, packing);
//! here it is a few microseconds. The Python detectors stay the reference: every
//! detector here is a line-by-line port, checked against them on the packed values
//! (`tests/unit/native`), and a series whose score reaches a threshold is re-run on
//! the Python path, which writes its explanation (`streams/native_close.py`).

mod bits;
mod calibration;
mod changepoint;
mod close;
mod context_novelty;
mod detector;
mod msgpack;
mod extremity;
mod pymath;
mod seasonal;
mod spike;
mod trend;
mod value;
mod volume;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use detector::{SeriesDetector, Window};
use value::{Spec, Value};

/// One call of the contract, as the tests' reference replays it in Python.
enum Op {
    LearnOne(Window),
    LearnEmpty(Vec<f64>),
    ScoreThenLearn(Window, bool),
}

fn parse_op(op: &Bound<'_, PyAny>) -> PyResult<Op> {
    let name: String = op.get_item(0)?.extract()?;
    let window = |op: &Bound<'_, PyAny>| -> PyResult<Window> {
        Ok(Window { value: op.get_item(1)?.extract()?, t: op.get_item(2)?.extract()?, count: op.get_item(3)?.extract()? })
    };
    match name.as_str() {
        "learn_one" => Ok(Op::LearnOne(window(op)?)),
        "learn_empty" => Ok(Op::LearnEmpty(op.get_item(1)?.extract()?)),
        "score_then_learn" => Ok(Op::ScoreThenLearn(window(op)?, op.get_item(4)?.extract()?)),
        other => Err(PyValueError::new_err(format!("unknown op {other}"))),
    }
}

/// Why the detector `spec` describes has no native twin, or None when it has.
#[pyfunction]
fn unsupported(spec: Spec) -> Option<String> {
    detector::check(&spec).err()
}

/// Build the twin of `spec` from its packed `values`, apply `ops` (tuples
/// `("learn_one", value, t, count)`, `("learn_empty", [t, ...])`,
/// `("score_then_learn", value, t, count, learn)`) and return the packed values after
/// them and the scores the `score_then_learn` calls gave. The tests' oracle.
#[pyfunction]
fn replay(py: Python<'_>, spec: Spec, values: Vec<Value>, ops: Vec<Bound<'_, PyAny>>) -> PyResult<(PyObject, Vec<f64>)> {
    detector::check(&spec).map_err(PyValueError::new_err)?;
    let mut d: Box<dyn SeriesDetector> = detector::build(&spec, &values).map_err(PyValueError::new_err)?;
    let mut scores = Vec::new();
    for op in &ops {
        match parse_op(op)? {
            Op::LearnOne(x) => d.learn_one(&x),
            Op::LearnEmpty(times) => d.learn_empty(&times),
            Op::ScoreThenLearn(x, learn) => scores.push(d.score_then_learn(&x, learn)),
        }
    }
    Ok((Value::List(d.values()).to_object(py), scores))
}

/// Python's floor division and remainder of floats, and the C library's functions as
/// this crate calls them: for the tests that check them against CPython.
#[pyfunction]
fn float_ops(a: f64, b: f64) -> (f64, f64, f64, f64, f64, f64, f64, f64) {
    (
        pymath::floordiv(a, b),
        pymath::pymod(a, b),
        pymath::erfc(a),
        a.exp(),
        a.abs().ln(),
        a.exp_m1(),
        a.abs().ln_1p(),
        a.abs().powf(b),
    )
}

/// `calibration`'s functions as ported (for the tests that compare them with Python's).
#[pyfunction]
fn calibration_ops(z: f64, knee: f64, alpha: f64) -> (f64, f64, f64, f64) {
    (
        calibration::z_to_score(z),
        calibration::ratio_to_z(z, alpha),
        calibration::pareto_tail_z(z, knee, alpha),
        calibration::normal_inv_cdf(alpha),
    )
}

/// A packed blob read and written again (the tests check it comes back byte for byte).
#[pyfunction]
fn msgpack_roundtrip(py: Python<'_>, blob: &[u8]) -> PyResult<PyObject> {
    let v = msgpack::decode(blob).map_err(PyValueError::new_err)?;
    let mut out = Vec::new();
    msgpack::encode(&v, &mut out);
    Ok(pyo3::types::PyBytes::new_bound(py, &out).into_any().unbind())
}

#[pymodule]
fn tradewatch_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<close::Closer>()?;
    m.add_function(wrap_pyfunction!(replay, m)?)?;
    m.add_function(wrap_pyfunction!(unsupported, m)?)?;
    m.add_function(wrap_pyfunction!(float_ops, m)?)?;
    m.add_function(wrap_pyfunction!(calibration_ops, m)?)?;
    m.add_function(wrap_pyfunction!(msgpack_roundtrip, m)?)?;
    Ok(())
}
