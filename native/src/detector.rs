//! The series detectors' contract, as the Python pipeline calls it on a window total.

use crate::value::{Spec, Value};

/// One window of a series, as `streams.scoring` hands it to a detector:
/// `{"value": value_eur, "t": window start, "count": declarations}`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub value: f64,
    pub t: f64,
    pub count: i64,
}

/// A series detector's learned state and the calls the close makes on it. Each call
/// leaves the same state, float for float, as the Python method of the same name
/// (`tests/unit/native` replays both and compares the packed values).
pub trait SeriesDetector: Send {
    /// `learn_one(x)`.
    fn learn_one(&mut self, x: &Window);
    /// `learn_empty(times)`: the quiet windows at `times` (oldest first).
    fn learn_empty(&mut self, times: &[f64]);
    /// `score_then_learn(x, None, learn)[0]`: the score, then learn unless `learn` is false.
    fn score_then_learn(&mut self, x: &Window, learn: bool) -> f64;
    /// The learned values in the layout's order (what `_Layout.values` gives in Python).
    fn values(&self) -> Vec<Value>;
}

/// Why the detector `spec` describes has no native twin (a class, a layout or a
/// parameter value this crate does not implement): the caller keeps the Python path.
/// Each ported detector's `check` refuses every parameter value it does not port.
pub fn check(spec: &Spec) -> Result<(), String> {
    match spec.class.as_str() {
        "LevelShiftDetector" => crate::changepoint::LevelShift::check(spec),
        "SeasonalRobustSpikeDetector" => crate::spike::Spike::check(spec),
        "TrendDetector" => crate::trend::Trend::check(spec),
        "VolumeSurgeDetector" => crate::volume::Volume::check(spec),
        other => Err(format!("no native {other}")),
    }
}

/// The native twin of the detector `spec` describes, holding its packed `values`
/// (after [`check`] accepted `spec`).
pub fn build(spec: &Spec, values: &[Value]) -> Result<Box<dyn SeriesDetector>, String> {
    match spec.class.as_str() {
        "LevelShiftDetector" => Ok(Box::new(crate::changepoint::LevelShift::build(spec, values)?)),
        "SeasonalRobustSpikeDetector" => Ok(Box::new(crate::spike::Spike::build(spec, values)?)),
        "TrendDetector" => Ok(Box::new(crate::trend::Trend::build(spec, values)?)),
        "VolumeSurgeDetector" => Ok(Box::new(crate::volume::Volume::build(spec, values)?)),
        other => Err(format!("no native {other}")),
    }
}
