//! `detectors/volume.py`'s `VolumeSurgeDetector`, line by line, for the shipped
//! configurations: `direction = "up"`, `level_cv = 0`, `persistence` and `weekday` on
//! (any `rate`, `warmup`, `clip`, `min_spread` and a `span` of 1 to 30). Every other
//! parameter value is refused in [`Volume::check`] and stays on the Python path.
//!
//! Each method names the Python method it ports; the operations are the same, in the
//! same order (`max`/`min` as the builtins pick, `sum` as CPython 3.11 adds floats,
//! `float ** int` through the C library's `pow`, as CPython's `float_pow` calls it).

use std::sync::OnceLock;

use pyo3::prelude::*;

use crate::calibration::{normal_inv_cdf, pareto_tail_z, z_to_score, Z_ALARM};
use crate::detector::{SeriesDetector, Window};
use crate::pymath::{floordiv, hypot_zero, imod, py_int, py_max, py_min};
use crate::value::{fields, Spec, Value};

/// `LEAK`: share of the excess above the winsorising bound still learned.
const LEAK: f64 = 0.02;
/// `TAIL_ALPHA`: the Pareto tail's exponent beyond the knee.
const TAIL_ALPHA: f64 = 0.9;
/// `_DAY`.
const DAY: f64 = 86_400.0;
/// `_SUB_WEEKLY = 3.5 * _DAY`.
const SUB_WEEKLY: f64 = 3.5 * DAY;
/// calibration's `_SLOPE` (for `score_to_z`).
const SLOPE: f64 = 2.0;
/// Longest `span` ported: `_poisson_z` asks `NormalDist().inv_cdf(1 - tail)`, which raises in
/// Python when `1 - cdf` rounds to 1; with `lam <= span` (the activity share is at most 1)
/// and `span <= 30`, `cdf >= exp(-30)` keeps it from ever doing so.
const MAX_SPAN: i64 = 30;

/// The learned attributes, in packed order.
const NAMES: [&str; 10] =
    ["_n", "_z_prev", "_z_prev_down", "_active", "_recent", "_mean", "_var", "_dow", "_t_prev", "_interval"];
/// Its parameters (a parameter added in Python and not here is refused).
const PARAMS: [&str; 9] =
    ["rate", "warmup", "clip", "min_spread", "weekday", "persistence", "span", "direction", "level_cv"];

/// calibration's `score_to_z(score)` (for `TAIL_KNEE_Z = score_to_z(0.999)`).
fn score_to_z(score: f64) -> f64 {
    let score = py_min(py_max(score, 1e-300), 1.0 - 1e-16);
    Z_ALARM + (score / (1.0 - score)).ln() / SLOPE
}

/// `_score_of(z)`: `z_to_score(pareto_tail_z(z, TAIL_KNEE_Z, TAIL_ALPHA))`.
fn score_of(z: f64, knee: f64) -> f64 {
    z_to_score(pareto_tail_z(z, knee, TAIL_ALPHA))
}

/// `_value(x)` of a window's float value: 0 unless finite and not negative.
fn value_of(v: f64) -> f64 {
    if !v.is_finite() || v < 0.0 {
        return 0.0;
    }
    v
}

/// `int(t // _DAY + 3) % 7`, exact for every finite `t` (Python's ints do not
/// saturate: past 2**53 the float is `m * 2**e` and its remainder is taken from that).
/// A non-finite `t` makes Python raise; the callers never pass one (`_factor` and
/// `_learn` check it; `learn_empty` gets the grid's window starts).
fn weekday_index(t: f64) -> usize {
    let x = floordiv(t, DAY) + 3.0;
    if x.abs() < 9_007_199_254_740_992.0 {
        return imod(py_int(x), 7) as usize;
    }
    if !x.is_finite() {
        return 0;
    }
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1075; // >= 1 here: x = m * 2**e, integral
    let m = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let r = (m % 7) * [1u64, 2, 4][(e % 3) as usize] % 7; // 2**e mod 7 has period 3
    (if x < 0.0 { (7 - r) % 7 } else { r }) as usize
}

/// `math.hypot(x, y)` where `y` is `level_cv * mean` with `level_cv == 0`: +-0, or NaN when
/// the mean is not finite. CPython's `vector_norm`: inf if a coordinate is infinite, NaN
/// if one is NaN, else (the other being 0) `abs(x)`.
fn hypot_level(x: f64, y: f64) -> f64 {
    let (ax, ay) = (x.abs(), y.abs());
    if ax.is_infinite() || ay.is_infinite() {
        return f64::INFINITY;
    }
    if ax.is_nan() || ay.is_nan() {
        return f64::NAN;
    }
    hypot_zero(x)
}

/// `sum(xs)` of a non-empty list of floats as CPython 3.11 adds them: `0 + xs[0]` (a float
/// `0.0 + xs[0]`), then each in turn, uncompensated. (3.12 compensates: refused in `check`.)
fn py_sum(xs: impl IntoIterator<Item = f64>) -> f64 {
    let mut s = 0.0;
    for x in xs {
        s += x;
    }
    s
}

/// `xs[start:]` for a (possibly negative) Python index `start`.
fn slice_from(xs: &[f64], start: i64) -> &[f64] {
    let n = xs.len() as i64;
    let s = if start < 0 { (n + start).max(0) } else { start.min(n) };
    &xs[s as usize..]
}

/// `_poisson_z(observed, expected)`: the z of P(N >= observed), N ~ Poisson(expected).
fn poisson_z(observed: i64, expected: f64) -> f64 {
    if observed <= 0 {
        return 0.0;
    }
    let lam = py_max(expected, 1e-3);
    let mut term = (-lam).exp();
    let mut cdf = term;
    for i in 1..observed {
        term *= lam / i as f64;
        cdf += term;
    }
    let tail = py_max(1.0 - cdf, 1e-12);
    py_max(0.0, normal_inv_cdf(1.0 - tail))
}

/// Whether the running interpreter's `sum` of floats is the plain left-to-right one
/// (CPython before 3.12; 3.12 made it compensated, Neumaier's).
fn plain_float_sum() -> bool {
    static PLAIN: OnceLock<bool> = OnceLock::new();
    *PLAIN.get_or_init(|| Python::with_gil(|py| py.version_info() < (3, 12)))
}

/// `VolumeSurgeDetector` with `direction="up"`, `level_cv=0`, `persistence`, `weekday`.
pub struct Volume {
    // parameters
    rate: f64,
    warmup: i64,
    clip: f64,
    min_spread: f64,
    span: i64,
    level_cv: f64,
    /// `TAIL_KNEE_Z`.
    knee: f64,
    // learned
    n: i64,
    z_prev: f64,
    /// `_z_prev_down`: only a detector that watches drops writes it; carried as it is.
    z_prev_down: Value,
    active: f64,
    recent: Vec<f64>,
    mean: f64,
    var: f64,
    dow: [f64; 7],
    t_prev: Option<f64>,
    interval: f64,
}

impl Volume {
    pub fn check(spec: &Spec) -> Result<(), String> {
        spec.expect_names(&NAMES)?;
        let mut params: Vec<&String> = spec.params.keys().collect();
        params.sort();
        let mut known = PARAMS.to_vec();
        known.sort();
        if params.len() != known.len() || params.iter().zip(&known).any(|(a, b)| a.as_str() != *b) {
            return Err(format!("{}: parameters {params:?}, native knows {known:?}", spec.class));
        }
        if !spec.parts.is_empty() {
            return Err(format!("{}: parts {:?}, native knows none", spec.class, spec.parts.keys()));
        }
        let direction = spec.str("direction")?;
        if direction != "up" {
            return Err(format!("{}: direction {direction:?} not ported (only \"up\")", spec.class));
        }
        let level_cv = spec.f64("level_cv")?;
        if level_cv != 0.0 {
            return Err(format!("{}: level_cv {level_cv} not ported (only 0: its hypot is not)", spec.class));
        }
        if !spec.bool("persistence")? {
            return Err(format!("{}: persistence off not ported", spec.class));
        }
        if !spec.bool("weekday")? {
            return Err(format!("{}: weekday off not ported", spec.class));
        }
        let span = spec.i64("span")?;
        if !(1..=MAX_SPAN).contains(&span) {
            return Err(format!("{}: span {span} not ported (1 to {MAX_SPAN})", spec.class));
        }
        spec.i64("warmup")?;
        let rate = spec.f64("rate")?;
        if !(rate > 0.0 && rate < 1.0) {
            return Err(format!("{}: rate {rate} outside (0, 1)", spec.class));
        }
        let (clip, min_spread) = (spec.f64("clip")?, spec.f64("min_spread")?);
        if !clip.is_finite() || !min_spread.is_finite() {
            return Err(format!("{}: clip {clip} / min_spread {min_spread} not finite", spec.class));
        }
        if !plain_float_sum() {
            return Err(format!("{}: this Python's sum() of floats is compensated (3.12+): not ported", spec.class));
        }
        Ok(())
    }

    pub fn build(spec: &Spec, values: &[Value]) -> Result<Self, String> {
        let v = fields(spec, values)?;
        let dow = v[7].floats("_dow")?;
        let dow: [f64; 7] = dow.try_into().map_err(|d: Vec<f64>| format!("_dow: {} entries, expected 7", d.len()))?;
        Ok(Volume {
            rate: spec.f64("rate")?,
            warmup: spec.i64("warmup")?,
            clip: spec.f64("clip")?,
            min_spread: spec.f64("min_spread")?,
            span: spec.i64("span")?,
            level_cv: spec.f64("level_cv")?,
            knee: score_to_z(0.999),
            n: v[0].int("_n")?,
            z_prev: v[1].float("_z_prev")?,
            z_prev_down: v[2].clone(),
            active: v[3].float("_active")?,
            recent: v[4].floats("_recent")?,
            mean: v[5].float("_mean")?,
            var: v[6].float("_var")?,
            dow,
            t_prev: v[8].opt_float("_t_prev")?,
            interval: v[9].float("_interval")?,
        })
    }

    /// `_weekly_profile()` (`weekday` is on).
    fn weekly_profile(&self) -> bool {
        self.interval <= SUB_WEEKLY
    }

    /// `_factor(x)`.
    fn factor(&self, t: f64) -> f64 {
        if !self.weekly_profile() || !t.is_finite() {
            return 1.0;
        }
        self.dow[weekday_index(t)]
    }

    /// `_expected_at(factor)`: (mean, spread) of a window with weekday `factor`.
    fn expected_at(&self, factor: f64) -> (f64, f64) {
        let mean = self.mean * factor;
        let spread = py_max(py_max(py_max(self.var, 0.0).sqrt() * factor, self.min_spread * mean), 1e-9);
        (mean, spread)
    }

    /// `_scored_at(expected)`.
    fn scored_at(&self, expected: (f64, f64)) -> (f64, f64) {
        let (mean, spread) = expected;
        (mean, hypot_level(spread, self.level_cv * mean))
    }

    /// `_total_spread(k, mean, spread)`.
    fn total_spread(&self, k: i64, mean: f64, spread: f64) -> f64 {
        let k = k as f64;
        (k * spread * spread + (k * self.level_cv * mean).powf(2.0)).sqrt()
    }

    /// `_z_at(value, expected)` (the surge side).
    fn z_at(&self, value: f64, expected: (f64, f64)) -> f64 {
        let (mean, spread) = self.scored_at(expected);
        let z = (value - mean) / spread;
        py_max(0.0, z)
    }

    /// `_z_from(z, value)`: the surge evidence with persistence past the warm-up.
    fn z_from(&self, z: f64, value: f64) -> f64 {
        let sustained = py_min(z, self.z_prev);
        let before: &[f64] = if self.span > 1 { slice_from(&self.recent, -(self.span - 1)) } else { &[] };
        let window = || before.iter().copied().chain(std::iter::once(value));
        let k = before.len() as i64 + 1;
        let mean = self.mean;
        let spread = py_max(py_max(py_max(self.var, 0.0).sqrt(), self.min_spread * self.mean), 1e-9);
        let z_total = (py_sum(window()) - k as f64 * mean) / self.total_spread(k, mean, spread);
        let active = window().filter(|&v| v > 0.0).count() as i64;
        let z_active = poisson_z(active, k as f64 * self.active);
        py_max(py_max(0.0, sustained), py_min(z_total, z_active))
    }

    /// `_learn(x, raw, factor, expected, z_prev)`.
    fn learn(&mut self, t: f64, raw: f64, factor: f64, expected: Option<(f64, f64)>, z_prev: f64) {
        let warm = expected.is_some();
        // persistence
        self.z_prev = z_prev;
        self.recent = if self.span > 1 {
            let mut r = slice_from(&self.recent, -(self.span - 2)).to_vec();
            r.push(raw);
            r
        } else {
            Vec::new()
        };
        let rate = self.rate;
        let a = if warm { rate } else { 1.0 / (self.n + 1) as f64 };
        self.active += a * ((if raw > 0.0 { 1.0 } else { 0.0 }) - self.active);
        let mut v = raw;
        if let Some((mean, spread)) = expected {
            let bound = mean + self.clip * spread;
            if v > bound {
                v = bound + LEAK * (v - bound);
            }
        }
        let deseasoned = v / factor;
        let delta = deseasoned - self.mean;
        self.mean += a * delta;
        self.var = (1.0 - a) * (self.var + a * delta * delta);
        let timed = t.is_finite();
        if timed {
            if let Some(t_prev) = self.t_prev {
                if t > t_prev {
                    let gap = t - t_prev;
                    self.interval = if self.interval <= 0.0 { gap } else { py_min(self.interval, gap) };
                }
            }
            self.t_prev = Some(t);
        }
        if timed && self.mean > 0.0 && self.weekly_profile() {
            let i = weekday_index(t);
            let ratio = py_min(v / self.mean, 7.0);
            self.dow[i] += (rate / 2.0) * (ratio - self.dow[i]);
            let norm = py_sum(self.dow) / 7.0;
            if norm > 0.0 {
                for d in self.dow.iter_mut() {
                    *d /= norm;
                }
            }
        }
        self.n += 1;
    }
}

impl SeriesDetector for Volume {
    fn learn_one(&mut self, x: &Window) {
        let warm = self.n >= self.warmup;
        let factor = self.factor(x.t);
        let expected = if warm { Some(self.expected_at(self.factor(x.t))) } else { None };
        let z_prev = if warm { self.z_at(value_of(x.value), self.expected_at(self.factor(x.t))) } else { 0.0 };
        self.learn(x.t, value_of(x.value), factor, expected, z_prev);
    }

    fn learn_empty(&mut self, times: &[f64]) {
        let m = times.len();
        let mut i = 0;
        while i < m && (self.n < self.warmup || self.span <= 2) {
            self.learn_one(&Window { value: 0.0, t: times[i], count: 0 });
            i += 1;
        }
        if i == m {
            return;
        }
        let rest = &times[i..];
        let k = rest.len();
        // persistence
        self.z_prev = 0.0;
        let keep = k.min((self.span - 1) as usize);
        let mut recent = self.recent.clone();
        recent.extend(std::iter::repeat(0.0).take(keep));
        self.recent = slice_from(&recent, -(self.span - 1)).to_vec();
        let q = 1.0 - self.rate;
        let qk = q.powf(k as f64);
        self.active *= qk;
        let mean = self.mean;
        self.var = qk * (self.var + mean * mean * (1.0 - qk));
        self.mean = mean * qk;
        let shrink = 1.0 - self.rate / 2.0;
        let mut hits = [0i64; 7];
        let mut profiled = false;
        let (mut t_prev, mut interval) = (self.t_prev, self.interval);
        for &t in rest {
            if let Some(tp) = t_prev {
                if t > tp {
                    let gap = t - tp;
                    interval = if interval <= 0.0 { gap } else { py_min(interval, gap) };
                }
            }
            t_prev = Some(t);
            if interval <= SUB_WEEKLY && mean > 0.0 {
                hits[weekday_index(t)] += 1;
                profiled = true;
            }
        }
        self.t_prev = t_prev;
        self.interval = interval;
        if profiled {
            let mut dow = [0.0; 7];
            for j in 0..7 {
                dow[j] = self.dow[j] * shrink.powf(hits[j] as f64);
            }
            let norm = py_sum(dow) / 7.0;
            if norm > 0.0 {
                for j in 0..7 {
                    self.dow[j] = dow[j] / norm;
                }
            }
        }
        self.n += k as i64;
    }

    fn score_then_learn(&mut self, x: &Window, learn: bool) -> f64 {
        let warm = self.n >= self.warmup;
        let factor = self.factor(x.t);
        let raw = value_of(x.value);
        let (expected, z_now, up) = if warm {
            let expected = self.expected_at(factor);
            let z_now = self.z_at(raw, expected);
            (Some(expected), z_now, self.z_from(z_now, raw))
        } else {
            (None, 0.0, 0.0)
        };
        let score = score_of(py_max(up, 0.0), self.knee);
        if learn {
            self.learn(x.t, raw, factor, expected, if warm { z_now } else { 0.0 });
        }
        score
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::Int(self.n),
            Value::Float(self.z_prev),
            self.z_prev_down.clone(),
            Value::Float(self.active),
            Value::List(self.recent.iter().map(|&x| Value::Float(x)).collect()),
            Value::Float(self.mean),
            Value::Float(self.var),
            Value::List(self.dow.iter().map(|&x| Value::Float(x)).collect()),
            match self.t_prev {
                Some(t) => Value::Float(t),
                None => Value::None,
            },
            Value::Float(self.interval),
        ]
    }
}
