//! `detectors/extremity.py`'s `RecentExtremity`, line by line: each z divided by the
//! largest z of its kind in the last `history_blocks` blocks, onto the shared scale.

use crate::calibration::ratio_to_z;
use crate::pymath::{floordiv, ifloordiv, py_int, py_max};
use crate::value::{fields, Spec, Value};

const DAY: f64 = 86400.0;
/// `N_KINDS`.
const N_KINDS: usize = 3;

pub const NAMES: &[&str] = &["_block", "_blocks", "_hist"];

#[derive(Clone, Debug)]
pub struct Extremity {
    block_points: i64,
    z_floor: f64,
    history_cap: f64,
    alarm_ratio: f64,
    // learned state, in packed order
    block: Option<i64>,
    blocks: Vec<[f64; N_KINDS]>,
    hist: [f64; N_KINDS],
}

/// `max(a, b, c)` of the builtin: the first, replaced by a later one only when larger.
fn max3(a: f64, b: f64, c: f64) -> f64 {
    py_max(py_max(a, b), c)
}

fn triple(v: &Value, what: &str) -> Result<[f64; N_KINDS], String> {
    let xs = v.floats(what)?;
    <[f64; N_KINDS]>::try_from(xs.as_slice()).map_err(|_| format!("{what}: expected {N_KINDS} floats"))
}

impl Extremity {
    /// `z_floor` and `history_cap` must be floats: with ints, Python's caps would be ints
    /// and could be stored in the blocks (an int where the layout has floats).
    pub fn check(spec: &Spec) -> Result<(), String> {
        if spec.class != "RecentExtremity" {
            return Err(format!("extremity: no native {}", spec.class));
        }
        spec.expect_names(NAMES)?;
        if spec.i64("history_blocks")? < 1 || spec.i64("block_points")? < 1 {
            return Err("RecentExtremity: history_blocks and block_points must be >= 1".into());
        }
        for name in ["z_floor", "history_cap"] {
            if !matches!(spec.params.get(name), Some(Value::Float(_))) {
                return Err(format!("RecentExtremity.{name}: only a float is ported, got {:?}", spec.params.get(name)));
            }
        }
        spec.f64("alarm_ratio")?;
        Ok(())
    }

    pub fn build(spec: &Spec, values: &[Value]) -> Result<Self, String> {
        let v = fields(spec, values)?;
        let block = match &v[0] {
            Value::None => None,
            other => Some(other.int("extremity._block")?),
        };
        let blocks = v[1]
            .list("extremity._blocks")?
            .iter()
            .map(|b| triple(b, "extremity._blocks[]"))
            .collect::<Result<Vec<_>, _>>()?;
        if blocks.len() as i64 != spec.i64("history_blocks")? {
            return Err(format!("extremity._blocks: {} blocks, expected {}", blocks.len(), spec.i64("history_blocks")?));
        }
        Ok(Extremity {
            block_points: spec.i64("block_points")?,
            z_floor: spec.f64("z_floor")?,
            history_cap: spec.f64("history_cap")?,
            alarm_ratio: spec.f64("alarm_ratio")?,
            block,
            blocks,
            hist: triple(&v[2], "extremity._hist")?,
        })
    }

    pub fn values(&self) -> Vec<Value> {
        let floats = |xs: &[f64]| Value::List(xs.iter().map(|&x| Value::Float(x)).collect());
        vec![
            self.block.map_or(Value::None, Value::Int),
            Value::List(self.blocks.iter().map(|b| floats(b)).collect()),
            floats(&self.hist),
        ]
    }

    /// `ratio(zs)`.
    fn ratio(&self, zs: &[f64; N_KINDS]) -> f64 {
        let (h, zf) = (&self.hist, self.z_floor);
        max3(zs[0] / py_max(h[0], zf), zs[1] / py_max(h[1], zf), zs[2] / py_max(h[2], zf))
    }

    /// `z(zs)`.
    pub fn z(&self, zs: &[f64; N_KINDS]) -> f64 {
        ratio_to_z(self.ratio(zs), self.alarm_ratio)
    }

    /// The block of an observation at `t` (a float: never None on the close) with the
    /// series' sampling `interval` and position `index`.
    fn block_of(&self, t: f64, interval: f64, index: i64) -> i64 {
        if interval > 0.0 {
            py_int(floordiv(t, if interval < 0.5 * DAY { DAY } else { 7.0 * DAY }))
        } else {
            ifloordiv(index, self.block_points)
        }
    }

    /// One step of `learn`/`learn_many` (the two are the same arithmetic): starts a new
    /// block when `blk` is one, caps the z-scores by `history_cap` times the floored recent
    /// maxima, raises the current block's maxima, and updates the recent maxima.
    fn step(&mut self, zs: [f64; N_KINDS], blk: i64) {
        let new_block = self.block != Some(blk);
        if new_block {
            self.blocks.remove(0);
            self.blocks.push([0.0; N_KINDS]);
            self.block = Some(blk);
        }
        let (hc, zf) = (self.history_cap, self.z_floor);
        let h = self.hist;
        let mut z = zs;
        for k in 0..N_KINDS {
            let cap = hc * (if zf > h[k] { zf } else { h[k] });
            if cap < z[k] {
                z[k] = cap;
            }
        }
        let cur = self.blocks.last_mut().expect("history_blocks >= 1");
        for k in 0..N_KINDS {
            if z[k] > cur[k] {
                cur[k] = z[k];
            }
        }
        if new_block {
            // list(map(max, zip(*blocks))): per kind, the builtin max over the blocks in order
            let mut hist = self.blocks[0];
            for b in &self.blocks[1..] {
                for k in 0..N_KINDS {
                    hist[k] = py_max(hist[k], b[k]);
                }
            }
            self.hist = hist;
        } else {
            let c = *cur;
            for k in 0..N_KINDS {
                self.hist[k] = if c[k] > h[k] { c[k] } else { h[k] };
            }
        }
    }

    /// `learn(zs, t, interval, index)` with `t` not None.
    pub fn learn(&mut self, zs: [f64; N_KINDS], t: f64, interval: f64, index: i64) {
        let blk = self.block_of(t, interval, index);
        self.step(zs, blk);
    }

    /// `learn_many(steps, times, first_index)`.
    pub fn learn_many(&mut self, steps: &[(f64, f64, f64, f64)], times: &[f64], first_index: i64) {
        assert_eq!(steps.len(), times.len(), "learn_many: steps and times differ in length");
        let mut index = first_index;
        for (&(z0, z1, z2, interval), &t) in steps.iter().zip(times) {
            let blk = self.block_of(t, interval, index);
            index += 1;
            self.step([z0, z1, z2], blk);
        }
    }
}
