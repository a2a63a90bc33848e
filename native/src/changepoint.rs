//! `detectors/changepoint.py`'s `LevelShiftDetector`, line by line: the two-sided
//! CUSUM of persistent log residuals against a slow robust baseline, the re-baseline
//! on alarm and the hold while an excursion is under way.
//!
//! Packed layout (`vars(obj)` order of the learned attributes): `_n` (a float, or an
//! int as Python's arithmetic would keep it), `_centre`, `_mad`, `_up`, `_down`,
//! `_run_up` and `_run_down` (tuples `(sum of y, windows, start t)`, packed as lists),
//! `_prev` (`(y, clipped z, t)`, a list), `n_alarms` (int), `last_alarm_t`.

use crate::calibration::{robust_sigma, sigma_per_mean_abs_dev, update_robust_level, z_to_score, Z_ALARM};
use crate::detector::{SeriesDetector, Window};
use crate::pymath::{py_max, py_min};
use crate::value::{fields, Num, Spec, Value};

const NAMES: [&str; 10] =
    ["_n", "_centre", "_mad", "_up", "_down", "_run_up", "_run_down", "_prev", "n_alarms", "last_alarm_t"];
const FLOAT_PARAMS: [&str; 5] = ["allowance", "threshold", "clip", "baseline_alpha", "min_scale"];

/// An excursion: `(sum of log values, number of windows, start time)`.
#[derive(Clone, Copy, Debug)]
struct Run {
    total: f64,
    count: i64,
    start: f64,
}

/// `_NO_RUN = (0.0, 0, math.nan)`.
const NO_RUN: Run = Run { total: 0.0, count: 0, start: f64::NAN };

impl Run {
    /// The run with `y` added; a run not under way starts at the previous window
    /// (`prev_y`, `prev_t`), which the persistence filter needed shifted too.
    fn extended(self, y: f64, prev_y: f64, prev_t: f64) -> Run {
        if self.count == 0 {
            return Run { total: prev_y + y, count: 2, start: prev_t };
        }
        Run { total: self.total + y, count: self.count + 1, start: self.start }
    }

    fn from_value(v: &Value, what: &str) -> Result<Run, String> {
        match v.list(what)? {
            [total, count, start] => Ok(Run { total: total.float(what)?, count: count.int(what)?, start: start.float(what)? }),
            other => Err(format!("{what}: expected 3 items, got {}", other.len())),
        }
    }

    fn value(&self) -> Value {
        Value::List(vec![Value::Float(self.total), Value::Int(self.count), Value::Float(self.start)])
    }
}

pub struct LevelShift {
    allowance: f64,
    threshold: f64,
    clip: f64,
    baseline_alpha: f64,
    grace_period: i64,
    min_scale: f64,
    n: Num,
    centre: f64,
    mad: f64,
    up: f64,
    down: f64,
    run_up: Run,
    run_down: Run,
    /// `_prev`: (y, z, t).
    prev: (f64, f64, f64),
    n_alarms: i64,
    last_alarm_t: f64,
}

/// `n < grace` with `n` an int or a float and `grace` an int, as Python compares them
/// (exactly: `grace` is small, so its float is exact).
fn below(n: Num, grace: i64) -> bool {
    match n {
        Num::I(i) => i < grace,
        Num::F(x) => x < grace as f64,
    }
}

/// `_log_value(x)`: `float(x.get("value") or 0.0)`, then `log1p(v)` if `v > 0` and finite, else 0.
fn log_value(v: f64) -> f64 {
    // `v or 0.0` turns 0.0/-0.0 into 0.0; either way the result below is 0.0.
    if v > 0.0 && v.is_finite() {
        v.ln_1p()
    } else {
        0.0
    }
}

impl LevelShift {
    pub fn check(spec: &Spec) -> Result<(), String> {
        spec.expect_names(&NAMES)?;
        let mut known: Vec<&str> = FLOAT_PARAMS.to_vec();
        known.push("grace_period");
        for name in spec.params.keys() {
            if !known.contains(&name.as_str()) {
                return Err(format!("{}: parameter {name} is not ported", spec.class));
            }
        }
        for name in FLOAT_PARAMS {
            // An int parameter would make Python's min/max return an int (e.g. clip=4 gives
            // an int z in _prev): only floats are ported.
            match spec.params.get(name) {
                Some(Value::Float(_)) => {}
                other => return Err(format!("{}.{name}: only a float is ported, got {other:?}", spec.class)),
            }
        }
        let grace = spec.i64("grace_period")?;
        let (allowance, threshold, clip) = (spec.f64("allowance")?, spec.f64("threshold")?, spec.f64("clip")?);
        let (alpha, min_scale) = (spec.f64("baseline_alpha")?, spec.f64("min_scale")?);
        // The constructor's own checks (a prototype always passes them).
        if !(allowance >= 0.0 && threshold > 0.0 && clip > allowance && 0.0 < alpha && alpha <= 1.0
            && grace >= 2 && min_scale > 0.0)
        {
            return Err(format!("{}: parameters outside the constructor's ranges", spec.class));
        }
        Ok(())
    }

    pub fn build(spec: &Spec, values: &[Value]) -> Result<Self, String> {
        let v = fields(spec, values)?;
        let prev = v[7].floats("_prev")?;
        if prev.len() != 3 {
            return Err(format!("_prev: expected 3 items, got {}", prev.len()));
        }
        Ok(LevelShift {
            allowance: spec.f64("allowance")?,
            threshold: spec.f64("threshold")?,
            clip: spec.f64("clip")?,
            baseline_alpha: spec.f64("baseline_alpha")?,
            grace_period: spec.i64("grace_period")?,
            min_scale: spec.f64("min_scale")?,
            n: v[0].num("_n")?,
            centre: v[1].float("_centre")?,
            mad: v[2].float("_mad")?,
            up: v[3].float("_up")?,
            down: v[4].float("_down")?,
            run_up: Run::from_value(&v[5], "_run_up")?,
            run_down: Run::from_value(&v[6], "_run_down")?,
            prev: (prev[0], prev[1], prev[2]),
            n_alarms: v[8].int("n_alarms")?,
            last_alarm_t: v[9].float("last_alarm_t")?,
        })
    }

    fn sigma(&self) -> f64 {
        robust_sigma(self.mad, self.min_scale)
    }

    /// `_step(y)`: the clipped residual and both CUSUM sums after `y`, state unchanged.
    fn step(&self, y: f64) -> (f64, f64, f64) {
        let z = (y - self.centre) / self.sigma();
        let z = py_min(py_max(z, -self.clip), self.clip);
        let prev_z = self.prev.1;
        let up = py_max(0.0, self.up + py_min(z, prev_z) - self.allowance);
        let down = py_max(0.0, self.down - py_max(z, prev_z) - self.allowance);
        (z, up, down)
    }

    fn score_stat(&self, stat: f64) -> f64 {
        z_to_score(Z_ALARM * stat / self.threshold)
    }

    /// `_extend(run, y, t)` (`t` unused there too).
    fn extend(&self, run: Run, y: f64) -> Run {
        let (prev_y, _, prev_t) = self.prev;
        run.extended(y, prev_y, prev_t)
    }

    fn learn(&mut self, y: f64, t: f64) {
        if below(self.n, self.grace_period) {
            self.prev = (y, 0.0, t);
            let (n, centre, mad) = update_robust_level(
                self.n.f(), self.centre, self.mad, y, self.baseline_alpha, f64::INFINITY, self.min_scale,
            );
            self.n = Num::F(n);
            self.centre = centre;
            self.mad = mad;
            return;
        }
        let step = self.step(y);
        self.learn_step(y, t, step);
    }

    /// `_learn_step(y, t, step)`.
    fn learn_step(&mut self, y: f64, t: f64, step: (f64, f64, f64)) {
        let (z, up, down) = step;
        self.run_up = if up > 0.0 { self.extend(self.run_up, y) } else { NO_RUN };
        self.run_down = if down > 0.0 { self.extend(self.run_down, y) } else { NO_RUN };
        self.up = up;
        self.down = down;
        let prev_y = self.prev.0;
        self.prev = (y, z, t);
        if py_max(up, down) >= self.threshold {
            self.centre = 0.5 * (y + prev_y);
            self.n = Num::F(2.0);
            self.up = 0.0;
            self.down = 0.0;
            self.run_up = NO_RUN;
            self.run_down = NO_RUN;
            self.prev = (y, 0.0, t);
            self.n_alarms += 1;
            self.last_alarm_t = t;
            return;
        }
        if py_max(up, down) >= 0.5 * self.threshold {
            return;
        }
        let (n, centre, mad) =
            update_robust_level(self.n.f(), self.centre, self.mad, y, self.baseline_alpha, self.clip, self.min_scale);
        self.n = Num::F(n);
        self.centre = centre;
        self.mad = mad;
    }
}

impl SeriesDetector for LevelShift {
    fn learn_one(&mut self, x: &Window) {
        self.learn(log_value(x.value), x.t);
    }

    /// `learn_empty(times)`: the Python method's tight loop, operation for operation.
    fn learn_empty(&mut self, times: &[f64]) {
        let (allowance, threshold, clip) = (self.allowance, self.threshold, self.clip);
        let (alpha, grace, min_scale) = (self.baseline_alpha, self.grace_period, self.min_scale);
        let sigma_per_mad = sigma_per_mean_abs_dev();
        let (half, neg_clip) = (0.5 * threshold, -clip);
        let (mut n, mut centre, mut mad) = (self.n, self.centre, self.mad);
        let (mut up, mut down, mut run_up, mut run_down) = (self.up, self.down, self.run_up, self.run_down);
        let (mut prev_y, mut prev_z, mut prev_t) = self.prev;
        for &t in times {
            let limit: Option<f64>;
            if below(n, grace) {
                prev_y = 0.0;
                prev_z = 0.0;
                prev_t = t;
                limit = Some(f64::INFINITY);
            } else {
                let sigma = sigma_per_mad * mad;
                let sigma = if min_scale > sigma { min_scale } else { sigma };
                let z = (0.0 - centre) / sigma;
                let z = if neg_clip > z { neg_clip } else { z };
                let z = if clip < z { clip } else { z };
                let lo = if prev_z < z { prev_z } else { z };
                let hi = if prev_z > z { prev_z } else { z };
                let new_up = up + lo - allowance;
                let new_up = if new_up > 0.0 { new_up } else { 0.0 };
                let new_down = down - hi - allowance;
                let new_down = if new_down > 0.0 { new_down } else { 0.0 };
                run_up = if new_up > 0.0 { run_up.extended(0.0, prev_y, prev_t) } else { NO_RUN };
                run_down = if new_down > 0.0 { run_down.extended(0.0, prev_y, prev_t) } else { NO_RUN };
                up = new_up;
                down = new_down;
                let top = if down > up { down } else { up };
                if top >= threshold {
                    centre = 0.5 * (0.0 + prev_y);
                    n = Num::F(2.0);
                    up = 0.0;
                    down = 0.0;
                    run_up = NO_RUN;
                    run_down = NO_RUN;
                    prev_y = 0.0;
                    prev_z = 0.0;
                    prev_t = t;
                    self.n_alarms += 1;
                    self.last_alarm_t = t;
                    continue;
                }
                prev_y = 0.0;
                prev_z = z;
                prev_t = t;
                if top >= half {
                    continue;
                }
                limit = None;
            }
            // update_robust_level(n, centre, mad, 0.0, alpha, clip or inf, min_scale)
            let nf = n.f() + 1.0;
            n = Num::F(nf);
            if nf <= 1.0 {
                centre = 0.0;
                mad = 0.0;
                continue;
            }
            let weight = 1.0 / nf;
            let weight = if weight > alpha { weight } else { alpha };
            let lim = match limit {
                Some(l) => l,
                None => {
                    let sigma = sigma_per_mad * mad;
                    clip * (if min_scale > sigma { min_scale } else { sigma })
                }
            };
            let r = 0.0 - centre;
            let r = if -lim > r { -lim } else { r };
            let r = if lim < r { lim } else { r };
            centre += weight * r;
            mad += weight * (r.abs() - mad);
        }
        self.n = n;
        self.centre = centre;
        self.mad = mad;
        self.up = up;
        self.down = down;
        self.run_up = run_up;
        self.run_down = run_down;
        self.prev = (prev_y, prev_z, prev_t);
    }

    fn score_then_learn(&mut self, x: &Window, learn: bool) -> f64 {
        if below(self.n, self.grace_period) {
            // Detector.score_then_learn: score_one (0.0 in the grace period), then learn_one.
            if learn {
                self.learn_one(x);
            }
            return 0.0;
        }
        let y = log_value(x.value);
        let step = self.step(y);
        let score = self.score_stat(py_max(step.1, step.2));
        if learn {
            self.learn_step(y, x.t, step);
        }
        score
    }

    fn values(&self) -> Vec<Value> {
        vec![
            self.n.value(),
            Value::Float(self.centre),
            Value::Float(self.mad),
            Value::Float(self.up),
            Value::Float(self.down),
            self.run_up.value(),
            self.run_down.value(),
            Value::List(vec![Value::Float(self.prev.0), Value::Float(self.prev.1), Value::Float(self.prev.2)]),
            Value::Int(self.n_alarms),
            Value::Float(self.last_alarm_t),
        ]
    }
}
