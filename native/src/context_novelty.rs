//! `detectors/context_novelty.py`'s `ContextNovelty`, line by line: the share of
//! never-seen transitions "last 1, 2 or 3 value bins -> this bin" in a bit table.

use crate::bits;
use crate::pymath::{imod, py_int};
use crate::value::{fields, Spec, Value};

/// `_WEIGHTS`.
const WEIGHTS: [i64; 3] = [4, 2, 1];
/// `_TOTAL_WEIGHT`.
const TOTAL_WEIGHT: f64 = 7.0;
/// `_HASH` (Knuth's multiplicative hash constant).
const HASH: i128 = 2654435761;
/// Most bins ported: the order-1 to -3 codes stay far inside i64 (Python's ints are unbounded).
const MAX_LEVELS: i64 = 1000;

pub const NAMES: &[&str] = &["_seen", "_lo", "_hi", "_ctx", "_since"];

#[derive(Clone, Debug)]
pub struct Novelty {
    levels: i64,
    max_z: f64,
    rest: i64,
    trigger: f64,
    bits: i64,
    // learned state, in packed order
    seen: Vec<u8>,
    lo: f64,
    hi: f64,
    ctx: i64,
    since: i64,
}

impl Novelty {
    pub fn check(spec: &Spec) -> Result<(), String> {
        if spec.class != "ContextNovelty" {
            return Err(format!("novelty: no native {}", spec.class));
        }
        spec.expect_names(NAMES)?;
        let levels = spec.i64("levels")?;
        let bits = spec.i64("bits")?;
        if !(0..=MAX_LEVELS).contains(&levels) {
            return Err(format!("ContextNovelty.levels: {levels} not ported (0..={MAX_LEVELS})"));
        }
        if levels > 0 && bits < levels * levels * levels + levels * levels + 64 {
            return Err("ContextNovelty: bits < levels**3 + levels**2 + 64".into());
        }
        // `since < rest`: an int rest compares as Python's ints do
        spec.i64("rest")?;
        spec.f64("max_z")?;
        spec.f64("trigger")?;
        Ok(())
    }

    pub fn build(spec: &Spec, values: &[Value]) -> Result<Self, String> {
        let v = fields(spec, values)?;
        let levels = spec.i64("levels")?;
        let bits = spec.i64("bits")?;
        let seen = bits::dense(&v[0], "novelty._seen")?;
        let want = if levels != 0 { ((bits + 7) / 8) as usize } else { 0 };
        if seen.len() != want {
            return Err(format!("novelty._seen: {} bytes, expected {want}", seen.len()));
        }
        Ok(Novelty {
            levels,
            max_z: spec.f64("max_z")?,
            rest: spec.i64("rest")?,
            trigger: spec.f64("trigger")?,
            bits,
            seen,
            lo: v[1].float("novelty._lo")?,
            hi: v[2].float("novelty._hi")?,
            ctx: v[3].int("novelty._ctx")?,
            since: v[4].int("novelty._since")?,
        })
    }

    pub fn values(&self) -> Vec<Value> {
        vec![
            bits::sparse(&self.seen),
            Value::Float(self.lo),
            Value::Float(self.hi),
            Value::Int(self.ctx),
            Value::Int(self.since),
        ]
    }

    /// `_bin(y)` with the range `lo..hi`.
    fn bin_in(y: f64, lo: f64, hi: f64, n_bins: i64) -> i64 {
        if !(hi > lo) {
            return 0;
        }
        let b = py_int((y - lo) / (hi - lo) * n_bins as f64);
        if b < 0 {
            0
        } else if b >= n_bins {
            n_bins - 1
        } else {
            b
        }
    }

    /// `_codes(b)` with the context `h`.
    fn codes_of(&self, h: i64, b: i64) -> [i64; 3] {
        let n_bins = self.levels;
        let sq = n_bins * n_bins;
        let base = sq + sq * n_bins; // orders 1 and 2 exactly, order 3 hashed into the rest
        let hashed = ((h as i128 * n_bins as i128 + b as i128) * HASH).rem_euclid((self.bits - base) as i128);
        [imod(h, n_bins) * n_bins + b, sq + imod(h, sq) * n_bins + b, base + hashed as i64]
    }

    fn is_seen(&self, code: i64) -> bool {
        (self.seen[(code >> 3) as usize] >> (code & 7)) & 1 != 0
    }

    /// `_unseen_weight(codes)`.
    fn unseen_weight(&self, codes: &[i64; 3]) -> i64 {
        let mut un = 0;
        for (&code, &w) in codes.iter().zip(&WEIGHTS) {
            if !self.is_seen(code) {
                un += w;
            }
        }
        un
    }

    fn record(&mut self, codes: &[i64; 3]) {
        for &code in codes {
            self.seen[(code >> 3) as usize] |= 1 << (code & 7);
        }
    }

    /// `z(y)`: `max_z * novelty`; `-inf` when off, resting or nothing is new.
    pub fn z(&self, y: f64) -> f64 {
        if self.levels == 0 || self.since < self.rest {
            return f64::NEG_INFINITY;
        }
        let b = Self::bin_in(y, self.lo, self.hi, self.levels);
        let nov = self.unseen_weight(&self.codes_of(self.ctx, b)) as f64 / TOTAL_WEIGHT;
        if nov > 0.0 {
            self.max_z * nov
        } else {
            f64::NEG_INFINITY
        }
    }

    /// `learn(y, scoring)`.
    pub fn learn(&mut self, y: f64, scoring: bool) {
        let n_bins = self.levels;
        if n_bins == 0 {
            return;
        }
        let b = Self::bin_in(y, self.lo, self.hi, n_bins);
        let codes = self.codes_of(self.ctx, b);
        if scoring {
            let strong = self.unseen_weight(&codes) as f64 >= TOTAL_WEIGHT * self.trigger;
            self.since = if strong { 0 } else { self.since + 1 };
        }
        self.record(&codes);
        self.ctx = imod(self.ctx * n_bins + b, n_bins * n_bins * n_bins);
        if y < self.lo {
            self.lo = y;
        }
        if y > self.hi {
            self.hi = y;
        }
    }

    /// `learn_zeros(steps, scoring_from)`: `learn(0.0, scoring=i >= scoring_from)` for each
    /// step, stopping as Python does once a step leaves the bins, range and context as they
    /// were (then only the rest counter moves, advanced in one step).
    pub fn learn_zeros(&mut self, steps: i64, scoring_from: i64) {
        let n_bins = self.levels;
        if n_bins == 0 || steps <= 0 {
            return;
        }
        let cube = n_bins * n_bins * n_bins;
        let strong_at = TOTAL_WEIGHT * self.trigger;
        for i in 0..steps {
            let (lo, hi, ctx) = (self.lo, self.hi, self.ctx);
            let b = Self::bin_in(0.0, lo, hi, n_bins);
            let codes = self.codes_of(ctx, b);
            if i >= scoring_from {
                let un = self.unseen_weight(&codes);
                self.since = if un as f64 >= strong_at { 0 } else { self.since + 1 };
            }
            self.record(&codes);
            let new_ctx = imod(ctx * n_bins + b, cube);
            let new_lo = if 0.0 < lo { 0.0 } else { lo };
            let new_hi = if 0.0 > hi { 0.0 } else { hi };
            let fixed = new_ctx == ctx && new_lo == lo && new_hi == hi;
            self.ctx = new_ctx;
            self.lo = new_lo;
            self.hi = new_hi;
            if fixed {
                // every later step: same bin, same (now recorded) codes, nothing unseen
                let scored = steps - 1 - std::cmp::max(i + 1, scoring_from) + 1;
                if scored > 0 {
                    self.since = if 0.0 >= strong_at { 0 } else { self.since + scored };
                }
                break;
            }
        }
    }
}
