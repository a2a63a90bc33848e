//! `detectors/trend.py`'s `TrendDetector`, line by line: the recent level against the
//! long-run level (log ratio over a learned spread), gated by a Poisson CUSUM of the
//! declaration counts, only a new high of an excursion scored, nothing before `warmup`.
//!
//! Every operation is the Python one, in the same order: `max`/`min` as the builtins pick
//! (`py_max`/`py_min`), an int over a float converted first, `learn_empty`'s tight loop
//! as written (with `learn_one` for a window whose recent level is still above the
//! long-run one), so the learned values are the same floats.

use crate::calibration::{normal_inv_cdf, z_to_score};
use crate::detector::{SeriesDetector, Window};
use crate::pymath::{py_max, py_min};
use crate::value::{fields, Spec, Value};

/// `LEAK`: share of the excess above the winsorising bound the long-run level still learns.
const LEAK: f64 = 0.02;
/// `DEV_CLIP`: deviations of the recent level are learned winsorised at this many spreads.
const DEV_CLIP: f64 = 2.0;
/// `PEAK_RESET_Z`: an excursion ends when the evidence falls below this z.
const PEAK_RESET_Z: f64 = 1.0;
/// `HOLD_Z`: from this z the window variance learns nothing.
const HOLD_Z: f64 = 2.0;
/// `HOLD_DEV_Z`: from this z the spread of the recent level learns nothing.
const HOLD_DEV_Z: f64 = 3.0;
/// `OFFSET_SHARE`: share of the long-run level added to both levels before their ratio.
const OFFSET_SHARE: f64 = 0.1;

/// The learned attributes of `TrendDetector`, in `vars()` order (the packed layout).
const NAMES: [&str; 9] = ["_n", "_recent", "_recent_count", "_level", "_var", "_dev_var", "_level_count",
                          "_cusum", "_peak"];

/// `detectors.calibration.tail_probability_to_z(p)`.
fn tail_probability_to_z(p: f64) -> f64 {
    let p = py_min(py_max(p, 1e-300), 1.0 - 1e-12);
    if p > 1e-15 {
        normal_inv_cdf(1.0 - p)
    } else {
        -normal_inv_cdf(p)
    }
}

/// `_z_of_log_lr(s)`.
fn z_of_log_lr(s: f64) -> f64 {
    if s <= 0.0 {
        return 0.0;
    }
    py_max(0.0, tail_probability_to_z((-s).exp()))
}

/// `_number(x, key)` of a float: the value when finite and `>= 0` (so `-0.0` stays), else 0.
fn number_f(v: f64) -> f64 {
    if v.is_finite() && v >= 0.0 {
        v
    } else {
        0.0
    }
}

/// `_number(x, key)` of an int: `float(v)` when `>= 0`, else 0.
fn number_i(v: i64) -> f64 {
    if v >= 0 {
        v as f64
    } else {
        0.0
    }
}

pub struct Trend {
    // parameters
    horizon: i64,
    memory: i64,
    warmup: i64,
    clip: f64,
    min_spread: f64,
    rate_factor: f64,
    // learned
    n: i64,
    recent: f64,
    recent_count: f64,
    level: f64,
    var: f64,
    dev_var: f64,
    level_count: f64,
    cusum: f64,
    peak: f64,
}

/// A parameter that must be a Python float (the shipped configs' kind), finite.
fn float_param(spec: &Spec, name: &str) -> Result<f64, String> {
    match spec.params.get(name) {
        Some(Value::Float(x)) if x.is_finite() => Ok(*x),
        Some(other) => Err(format!("{}.{name}: native ports a finite float, got {other:?}", spec.class)),
        None => Err(format!("{}: no parameter {name}", spec.class)),
    }
}

impl Trend {
    /// Refuses a layout or a parameter this port does not implement (the Python path runs).
    ///
    /// Ported: int `horizon`, `memory`, `warmup` in the constructor's ranges (the shipped
    /// configs: 28/365/120 days, 4/52/17 weeks, 1/12/4 months), finite float `clip > 0`,
    /// `min_spread > 0` and `rate_factor > 1` (the shipped 4.0, 0.2, 3.0).
    pub fn check(spec: &Spec) -> Result<(), String> {
        spec.expect_names(&NAMES)?;
        let mut keys: Vec<&String> = spec.params.keys().collect();
        keys.sort();
        if keys != ["clip", "horizon", "memory", "min_spread", "rate_factor", "warmup"] {
            return Err(format!("{}: parameters {keys:?}, native knows clip, horizon, memory, min_spread, \
                                rate_factor, warmup", spec.class));
        }
        if !spec.parts.is_empty() {
            return Err(format!("{}: parts {:?}, native knows none", spec.class, spec.parts.keys()));
        }
        let (horizon, memory, warmup) = (spec.i64("horizon")?, spec.i64("memory")?, spec.i64("warmup")?);
        if horizon < 1 || memory < 1 || memory / 2 < horizon || warmup < 0 {
            return Err(format!("{}: horizon {horizon}, memory {memory}, warmup {warmup} outside the \
                                constructor's ranges", spec.class));
        }
        let clip = float_param(spec, "clip")?;
        let min_spread = float_param(spec, "min_spread")?;
        let rate_factor = float_param(spec, "rate_factor")?;
        if !(clip > 0.0) {
            return Err(format!("{}.clip: must be > 0, got {clip}", spec.class));
        }
        if !(min_spread > 0.0) {
            // 0 is valid in Python, but then a series with no learned spread divides by
            // zero in `_z_raw` (ZeroDivisionError): the Python path keeps that behaviour
            return Err(format!("{}.min_spread: native ports min_spread > 0, got {min_spread}", spec.class));
        }
        if !(rate_factor > 1.0) {
            return Err(format!("{}.rate_factor: must be > 1, got {rate_factor}", spec.class));
        }
        Ok(())
    }

    pub fn build(spec: &Spec, values: &[Value]) -> Result<Self, String> {
        let v = fields(spec, values)?;
        Ok(Trend {
            horizon: spec.i64("horizon")?,
            memory: spec.i64("memory")?,
            warmup: spec.i64("warmup")?,
            clip: float_param(spec, "clip")?,
            min_spread: float_param(spec, "min_spread")?,
            rate_factor: float_param(spec, "rate_factor")?,
            n: v[0].int("_n")?,
            recent: v[1].float("_recent")?,
            recent_count: v[2].float("_recent_count")?,
            level: v[3].float("_level")?,
            var: v[4].float("_var")?,
            dev_var: v[5].float("_dev_var")?,
            level_count: v[6].float("_level_count")?,
            cusum: v[7].float("_cusum")?,
            peak: v[8].float("_peak")?,
        })
    }

    /// `_rates()`: (recent rate, long-run rate).
    fn rates(&self) -> (f64, f64) {
        let n1 = self.n as f64 + 1.0;
        (py_max(1.0 / self.horizon as f64, 1.0 / n1), py_max(1.0 / self.memory as f64, 1.0 / n1))
    }

    /// `_spread()`.
    fn spread(&self) -> f64 {
        py_max(py_max(self.dev_var, 0.0).sqrt(), self.min_spread)
    }

    /// `_offset()`.
    fn offset(&self) -> f64 {
        OFFSET_SHARE * self.level + 1e-9
    }

    /// `_log_ratio(recent)`.
    fn log_ratio(&self, recent: f64) -> f64 {
        let e = self.offset();
        ((recent + e) / (self.level + e)).ln()
    }

    /// `_cusum_after(c)`.
    fn cusum_after(&self, c: f64) -> f64 {
        let lam = self.level_count;
        if lam <= 0.0 {
            return 0.0;
        }
        let k = self.rate_factor;
        py_max(0.0, self.cusum + c * k.ln() - (k - 1.0) * lam)
    }

    /// `_recent_after(v, c)`.
    fn recent_after(&self, v: f64, c: f64) -> (f64, f64) {
        let a = self.rates().0;
        (self.recent + a * (v - self.recent), self.recent_count + a * (c - self.recent_count))
    }

    /// `_z(x)`.
    fn z(&self, x: &Window) -> f64 {
        let z = self.z_raw(x);
        if z > self.peak {
            z
        } else {
            0.0
        }
    }

    /// `_z_raw(x)`.
    fn z_raw(&self, x: &Window) -> f64 {
        if self.n < self.warmup {
            return 0.0;
        }
        let (recent, _) = self.recent_after(number_f(x.value), number_i(x.count));
        let z_value = self.log_ratio(recent) / self.spread();
        if z_value <= 0.0 {
            return 0.0;
        }
        py_min(z_value, z_of_log_lr(self.cusum_after(number_i(x.count))))
    }

    /// `_learn(v, c, z)`.
    fn learn(&mut self, v: f64, c: f64, z: f64) {
        let mut v = v;
        if self.n == 0 && v == 0.0 && c == 0.0 {
            return;
        }
        let a_long = self.rates().1;
        let warm = self.n >= self.warmup;
        let (recent, recent_count) = self.recent_after(v, c);
        self.recent_count = recent_count;
        self.cusum = self.cusum_after(c);
        self.level_count += a_long * (c - self.level_count);
        let mut dev = self.log_ratio(recent);
        if warm {
            let bound = DEV_CLIP * self.spread();
            if dev.abs() > bound {
                dev = bound.copysign(dev);
            }
            let cap = self.level + self.clip * py_max(self.var, 0.0).sqrt();
            if v > cap {
                v = cap + LEAK * (v - cap);
            }
        }
        let held = z >= HOLD_Z;
        if self.n != 0 && z < HOLD_DEV_Z {
            self.dev_var += py_max(1.0 / self.memory as f64, 1.0 / self.n as f64) * (dev * dev - self.dev_var);
        }
        let delta = v - self.level;
        self.level += a_long * delta;
        if !held {
            self.var = (1.0 - a_long) * (self.var + a_long * delta * delta);
        }
        self.recent = recent;
        self.n += 1;
    }
}

impl SeriesDetector for Trend {
    fn learn_one(&mut self, x: &Window) {
        let z = self.z_raw(x);
        self.peak = if z >= PEAK_RESET_Z { py_max(self.peak, z) } else { 0.0 };
        self.learn(number_f(x.value), number_i(x.count), z);
    }

    fn learn_empty(&mut self, times: &[f64]) {
        if self.n == 0 {
            return;
        }
        let (memory, warmup, k1) = (self.memory, self.warmup, self.rate_factor - 1.0);
        let min_spread = self.min_spread;
        let (inv_h, inv_memory) = (1.0 / self.horizon as f64, 1.0 / memory as f64);
        let (mut n, mut recent, mut recent_count, mut level) = (self.n, self.recent, self.recent_count, self.level);
        let (mut var, mut dev_var, mut level_count, mut cusum) = (self.var, self.dev_var, self.level_count, self.cusum);
        let mut peak = self.peak;
        for &t in times {
            let inv_n1 = 1.0 / (n as f64 + 1.0);
            let a_recent = if inv_n1 > inv_h { inv_n1 } else { inv_h };
            let a_long = if inv_n1 > inv_memory { inv_n1 } else { inv_memory };
            let recent_after = recent + a_recent * (0.0 - recent);
            let e = OFFSET_SHARE * level + 1e-9;
            let mut dev = ((recent_after + e) / (level + e)).ln();
            if n >= warmup && dev > 0.0 {
                // still above the long-run level: z, peak and holds apply (learn_one)
                (self.n, self.recent, self.recent_count, self.level) = (n, recent, recent_count, level);
                (self.var, self.dev_var, self.level_count, self.cusum) = (var, dev_var, level_count, cusum);
                self.peak = peak;
                self.learn_one(&Window { value: 0.0, t, count: 0 });
                (n, recent, recent_count, level) = (self.n, self.recent, self.recent_count, self.level);
                (var, dev_var, level_count, cusum) = (self.var, self.dev_var, self.level_count, self.cusum);
                peak = self.peak;
                continue;
            }
            peak = 0.0;
            recent_count = recent_count + a_recent * (0.0 - recent_count);
            let lam = level_count;
            if lam <= 0.0 {
                cusum = 0.0;
            } else {
                let c = cusum + 0.0 - k1 * lam;
                cusum = if c > 0.0 { c } else { 0.0 };
            }
            level_count = lam + a_long * (0.0 - lam);
            if n >= warmup {
                let spread = (if 0.0 > dev_var { 0.0 } else { dev_var }).sqrt();
                let bound = DEV_CLIP * (if min_spread > spread { min_spread } else { spread });
                if dev.abs() > bound {
                    dev = bound.copysign(dev);
                }
            }
            let inv_n = 1.0 / n as f64;
            dev_var += (if inv_n > inv_memory { inv_n } else { inv_memory }) * (dev * dev - dev_var);
            let delta = 0.0 - level;
            level = level + a_long * delta;
            var = (1.0 - a_long) * (var + a_long * delta * delta);
            recent = recent_after;
            n += 1;
        }
        (self.n, self.recent, self.recent_count, self.level) = (n, recent, recent_count, level);
        (self.var, self.dev_var, self.level_count, self.cusum) = (var, dev_var, level_count, cusum);
        self.peak = peak;
    }

    fn score_then_learn(&mut self, x: &Window, learn: bool) -> f64 {
        let score = z_to_score(self.z(x));
        if learn {
            self.learn_one(x);
        }
        score
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::Int(self.n),
            Value::Float(self.recent),
            Value::Float(self.recent_count),
            Value::Float(self.level),
            Value::Float(self.var),
            Value::Float(self.dev_var),
            Value::Float(self.level_count),
            Value::Float(self.cusum),
            Value::Float(self.peak),
        ]
    }
}
