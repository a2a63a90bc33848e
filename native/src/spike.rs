//! `detectors/spike.py`'s `SeasonalRobustSpikeDetector`, line by line: a robust seasonal
//! baseline gives the evidence, recent extremity and context novelty each a
//! z-equivalent, the larger goes through `z_to_score`. Ported for what the shipped
//! configs use: `transform = "none"`, `direction = "both"` (the others are refused).

use crate::calibration::z_to_score;
use crate::context_novelty::Novelty;
use crate::detector::{SeriesDetector, Window};
use crate::extremity::Extremity;
use crate::seasonal::{Baseline, Evidence};
use crate::value::{fields, Spec, Value};

/// `_EXTREMITY_GRACE`: points learnt before the extremity history takes any z.
const EXTREMITY_GRACE: i64 = 10;

const NAMES: &[&str] = &["baseline", "extremity", "novelty"];

pub struct Spike {
    warmup: i64,
    baseline: Baseline,
    extremity: Extremity,
    novelty: Novelty,
}

impl Spike {
    pub fn check(spec: &Spec) -> Result<(), String> {
        spec.expect_names(NAMES)?;
        let transform = spec.str("transform")?;
        if transform != "none" {
            return Err(format!("SeasonalRobustSpikeDetector.transform {transform:?}: only \"none\" is ported"));
        }
        let direction = spec.str("direction")?;
        if direction != "both" {
            return Err(format!("SeasonalRobustSpikeDetector.direction {direction:?}: only \"both\" is ported"));
        }
        // an int (a float warmup would make the novelty's rest counter a float)
        if spec.i64("warmup")? < 0 {
            return Err("SeasonalRobustSpikeDetector.warmup must be >= 0".into());
        }
        Baseline::check(spec.part("baseline")?)?;
        Extremity::check(spec.part("extremity")?)?;
        Novelty::check(spec.part("novelty")?)?;
        Ok(())
    }

    pub fn build(spec: &Spec, values: &[Value]) -> Result<Self, String> {
        let v = fields(spec, values)?;
        Ok(Spike {
            warmup: spec.i64("warmup")?,
            baseline: Baseline::build(spec.part("baseline")?, v[0].list("spike.baseline")?)?,
            extremity: Extremity::build(spec.part("extremity")?, v[1].list("spike.extremity")?)?,
            novelty: Novelty::build(spec.part("novelty")?, v[2].list("spike.novelty")?)?,
        })
    }

    /// `_judge(y, phase)`: (z-equivalent, whether a part gave one (source != "none"),
    /// baseline evidence), before learning `y`.
    fn judge(&self, y: f64, phase: i64) -> (f64, bool, Evidence) {
        let evidence = self.baseline.evidence(y, phase);
        let mut z = self.extremity.z(&[evidence.0, evidence.1, evidence.2]);
        let mut sourced = z > f64::NEG_INFINITY;
        let z_new = self.novelty.z(y);
        if z_new > z {
            z = z_new;
            sourced = true;
        }
        (z, sourced, evidence)
    }

    /// `score_one(x)` (transform "none": y is the value as it is).
    fn score_one(&self, x: &Window) -> f64 {
        if self.baseline.count < self.warmup {
            return 0.0;
        }
        let (y, t) = (x.value, x.t);
        if !y.is_finite() {
            return 0.0;
        }
        let (z, sourced, _) = self.judge(y, self.baseline.phase(t));
        if sourced {
            z_to_score(z)
        } else {
            0.0
        }
    }

    /// `_learn_judged(y, t, phase, evidence, n)`.
    fn learn_judged(&mut self, y: f64, t: f64, phase: i64, evidence: Evidence, n: i64) {
        self.novelty.learn(y, n >= self.warmup);
        self.baseline.learn(y, t, phase);
        if n > EXTREMITY_GRACE {
            self.extremity.learn([evidence.0, evidence.1, evidence.2], t, self.baseline.interval, n);
        }
    }
}

impl SeriesDetector for Spike {
    fn learn_one(&mut self, x: &Window) {
        let (y, t) = (x.value, x.t);
        if !y.is_finite() {
            return; // a missing value teaches nothing
        }
        let n = self.baseline.count;
        let phase = self.baseline.phase(t);
        if n == 0 {
            self.baseline.learn(y, t, phase);
            return;
        }
        let evidence = self.baseline.evidence(y, phase);
        self.learn_judged(y, t, phase, evidence, n);
    }

    fn learn_empty(&mut self, times: &[f64]) {
        let mut times = times;
        if !times.is_empty() && self.baseline.count == 0 {
            // the very first value only starts the baseline
            let phase = self.baseline.phase(times[0]);
            self.baseline.learn(0.0, times[0], phase);
            times = &times[1..];
        }
        if times.is_empty() {
            return;
        }
        let n = self.baseline.count;
        let evidence = self.baseline.learn_zeros(times, EXTREMITY_GRACE);
        self.novelty.learn_zeros(times.len() as i64, std::cmp::max(0, self.warmup - n));
        let skipped = times.len() - evidence.len(); // the first steps are within the grace
        self.extremity.learn_many(&evidence, &times[skipped..], n + skipped as i64);
    }

    /// The fused `score_then_learn(x, None, learn)`: warming up (or at the first value, or
    /// on a value it does not learn) as `score_one` then `learn_one`; else the evidence
    /// read once for the score and the learning.
    fn score_then_learn(&mut self, x: &Window, learn: bool) -> f64 {
        let n = self.baseline.count;
        let (y, t) = (x.value, x.t);
        if n < self.warmup || n == 0 || !y.is_finite() {
            let score = self.score_one(x);
            if learn {
                self.learn_one(x);
            }
            return score;
        }
        let phase = self.baseline.phase(t);
        let (z, sourced, evidence) = self.judge(y, phase);
        let score = if sourced { z_to_score(z) } else { 0.0 };
        if learn {
            self.learn_judged(y, t, phase, evidence, n);
        }
        score
    }

    fn values(&self) -> Vec<Value> {
        vec![
            Value::List(self.baseline.values()),
            Value::List(self.extremity.values()),
            Value::List(self.novelty.values()),
        ]
    }
}
