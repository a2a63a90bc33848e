//! `detectors/seasonal.py`'s `RobustSeasonalBaseline`, line by line: level + seasonal
//! offsets + robust spreads, and the evidence (robust z-scores) of a value before it is
//! learnt. Only `up_only=False` (direction "both") is ported: the spike detector's
//! `check` refuses "up".

use crate::pymath::{floordiv, imod, py_int, py_min};
use crate::value::{fields, Spec, Value};

const DAY: f64 = 86400.0;
const HOUR: f64 = 3600.0;
/// `_SUB_WEEKLY = 3.5 * _DAY`.
const SUB_WEEKLY: f64 = 3.5 * DAY;
/// `_SIGMA_PER_MAD`.
const SIGMA_PER_MAD: f64 = 1.25;
/// `_CLIP_AFTER`.
const CLIP_AFTER: i64 = 3;

pub const NAMES: &[&str] =
    &["count", "interval", "_t_prev", "_season", "_level", "_scale", "_dscale", "_absmean", "_prev", "_shift"];

/// `(z residual, z change, z shift, expected, spread)`, as `evidence` returns it.
pub type Evidence = (f64, f64, f64, f64, f64);

#[derive(Clone, Debug)]
pub struct Baseline {
    level_rate: f64,
    season_rate: f64,
    scale_rate: f64,
    clip: f64,
    shift_rate: f64,
    rel_floor: f64,
    // learned state, in packed order
    pub count: i64,
    pub interval: f64,
    t_prev: Option<f64>,
    season: Vec<f64>,
    level: f64,
    scale: f64,
    dscale: f64,
    absmean: f64,
    prev: f64,
    shift: f64,
}

impl Baseline {
    /// The rates, `clip` and `rel_floor` are numbers (an int one is converted as Python's
    /// arithmetic with the float state converts it: none is ever stored).
    pub fn check(spec: &Spec) -> Result<(), String> {
        if spec.class != "RobustSeasonalBaseline" {
            return Err(format!("baseline: no native {}", spec.class));
        }
        spec.expect_names(NAMES)?;
        for name in ["level_rate", "season_rate", "scale_rate", "clip", "shift_rate", "rel_floor"] {
            spec.f64(name)?;
        }
        Ok(())
    }

    pub fn build(spec: &Spec, values: &[Value]) -> Result<Self, String> {
        let v = fields(spec, values)?;
        Ok(Baseline {
            level_rate: spec.f64("level_rate")?,
            season_rate: spec.f64("season_rate")?,
            scale_rate: spec.f64("scale_rate")?,
            clip: spec.f64("clip")?,
            shift_rate: spec.f64("shift_rate")?,
            rel_floor: spec.f64("rel_floor")?,
            count: v[0].int("baseline.count")?,
            interval: v[1].float("baseline.interval")?,
            t_prev: v[2].opt_float("baseline._t_prev")?,
            season: v[3].floats("baseline._season")?,
            level: v[4].float("baseline._level")?,
            scale: v[5].float("baseline._scale")?,
            dscale: v[6].float("baseline._dscale")?,
            absmean: v[7].float("baseline._absmean")?,
            prev: v[8].float("baseline._prev")?,
            shift: v[9].float("baseline._shift")?,
        })
    }

    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::Int(self.count),
            Value::Float(self.interval),
            self.t_prev.map_or(Value::None, Value::Float),
            Value::List(self.season.iter().map(|&x| Value::Float(x)).collect()),
            Value::Float(self.level),
            Value::Float(self.scale),
            Value::Float(self.dscale),
            Value::Float(self.absmean),
            Value::Float(self.prev),
            Value::Float(self.shift),
        ]
    }

    /// `_n_phases(dt)`.
    fn n_phases(dt: f64) -> usize {
        if dt <= 0.0 {
            return 0;
        }
        if dt <= 2.0 * HOUR {
            return 24;
        }
        if 0.5 * DAY <= dt && dt <= SUB_WEEKLY {
            return 7;
        }
        0
    }

    /// `phase(t)` (t is never None on the close: the window start).
    pub fn phase(&self, t: f64) -> i64 {
        let mut n_phases = self.season.len();
        if n_phases == 0 {
            match self.t_prev {
                None => return -1,
                Some(t_prev) => n_phases = Self::n_phases(t - t_prev),
            }
        }
        if n_phases == 24 {
            return imod(py_int(floordiv(t, HOUR)), 24);
        }
        if n_phases == 7 {
            return imod(py_int(floordiv(t, DAY) + 3.0), 7); // 1970-01-01 was a Thursday
        }
        -1
    }

    /// `expected(phase)`: `level + (season[phase] if 0 <= phase < len(season) else 0.0)`.
    fn expected(&self, phase: i64) -> f64 {
        let offset = if 0 <= phase && (phase as usize) < self.season.len() { self.season[phase as usize] } else { 0.0 };
        self.level + offset
    }

    /// `evidence(y, phase, up_only=False)`.
    pub fn evidence(&self, y: f64, phase: i64) -> Evidence {
        let expected = self.expected(phase);
        let floor = self.rel_floor * self.absmean + 1e-12;
        let spread = SIGMA_PER_MAD * self.scale + floor;
        let e = y - expected;
        let d = y - self.prev;
        let sh = self.shift + self.shift_rate * (e - self.shift);
        let (e, d, sh) = (e.abs(), d.abs(), sh.abs());
        (e / spread, d / (SIGMA_PER_MAD * self.dscale + floor), sh / spread, expected, spread)
    }

    /// `learn(y, t, phase)`.
    pub fn learn(&mut self, y: f64, t: f64, phase: i64) {
        if let Some(t_prev) = self.t_prev {
            if t > t_prev {
                let gap = t - t_prev;
                self.interval = if self.interval <= 0.0 { gap } else { py_min(self.interval, gap) };
                if self.season.is_empty() {
                    self.season = vec![0.0; Self::n_phases(self.interval)];
                }
            }
        }
        self.t_prev = Some(t);
        let n = self.count;
        self.count = n + 1;
        if n == 0 {
            self.level = y;
            self.prev = y;
            self.absmean = y.abs();
            return;
        }
        let expected = self.expected(phase);
        let e = y - expected;
        self.shift += self.shift_rate * (e - self.shift);
        // winsorised updates: a spike moves the baseline by at most `clip` spreads
        let warm = 1.0 / ((n + 1) as f64);
        let lim = if n > CLIP_AFTER { self.clip * SIGMA_PER_MAD * self.scale } else { e.abs() };
        let ec = if e < -lim { -lim } else if e > lim { lim } else { e };
        let ar = if self.level_rate > warm { self.level_rate } else { warm };
        self.level += ar * ec;
        if 0 <= phase && (phase as usize) < self.season.len() {
            self.season[phase as usize] += self.season_rate * (1.0 - ar) * ec;
        }
        let sr = if self.scale_rate > warm { self.scale_rate } else { warm };
        self.scale += sr * (ec.abs() - self.scale);
        let d = (y - self.prev).abs();
        let dlim = if n > CLIP_AFTER { self.clip * SIGMA_PER_MAD * self.dscale } else { d };
        self.dscale += sr * ((if d < dlim { d } else { dlim }) - self.dscale);
        self.absmean += sr * (y.abs() - self.absmean);
        self.prev = expected + ec;
    }

    /// `learn_zeros(times, up_only=False, evidence_after)`: `learn(0.0, t, phase(t))` for
    /// each t, returning `(z residual, z change, z shift, interval after the step)` of each
    /// step that had more than `evidence_after` points before it (the same arithmetic in
    /// the same order as Python's tight loop, which inlines these very calls).
    pub fn learn_zeros(&mut self, times: &[f64], evidence_after: i64) -> Vec<(f64, f64, f64, f64)> {
        let mut out = Vec::new();
        for &t in times {
            let phase = self.phase(t);
            let n = self.count;
            let zs = if n > evidence_after { Some(self.evidence(0.0, phase)) } else { None };
            self.learn(0.0, t, phase);
            if let Some((z0, z1, z2, _, _)) = zs {
                out.push((z0, z1, z2, self.interval));
            }
        }
        out
    }
}
