//! `detectors/calibration.py`'s functions the series detectors call, line by line.

use crate::pymath::{erfc, py_max, py_min};

pub const Z_ALARM: f64 = 3.0;
const SLOPE: f64 = 2.0;
const Z_CLIP: f64 = 50.0;
pub const Z_PER_LOG_RATIO: f64 = 2.0;

/// `SIGMA_PER_MEAN_ABS_DEV = math.sqrt(math.pi / 2.0)`.
pub fn sigma_per_mean_abs_dev() -> f64 {
    (std::f64::consts::PI / 2.0).sqrt()
}

/// `z_to_score(z)`.
pub fn z_to_score(z: f64) -> f64 {
    let mut z = z;
    if z > Z_CLIP {
        z = Z_CLIP;
    } else if z < -Z_CLIP {
        z = -Z_CLIP;
    } else if z.is_nan() {
        return 0.0;
    }
    1.0 / (1.0 + (SLOPE * (Z_ALARM - z)).exp())
}

/// `ratio_to_z(ratio, alarm_ratio)`.
pub fn ratio_to_z(ratio: f64, alarm_ratio: f64) -> f64 {
    if !(ratio > 0.0) {
        return f64::NEG_INFINITY;
    }
    Z_ALARM + Z_PER_LOG_RATIO * (ratio / alarm_ratio).ln()
}

/// `statistics.NormalDist().inv_cdf(p)` (CPython's `_normal_dist_inv_cdf`, Wichura's AS241).
pub fn normal_inv_cdf(p: f64) -> f64 {
    let (mu, sigma) = (0.0, 1.0);
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        let num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r
            + 6.7265770927008700853e+4) * r
            + 4.5921953931549871457e+4) * r
            + 1.3731693765509461125e+4) * r
            + 1.9715909503065514427e+3) * r
            + 1.3314166789178437745e+2) * r
            + 3.3871328727963666080e+0)
            * q;
        let den = ((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r
            + 3.9307895800092710610e+4) * r
            + 2.1213794301586595867e+4) * r
            + 5.3941960214247511077e+3) * r
            + 6.8718700749205790830e+2) * r
            + 4.2313330701600911252e+1) * r
            + 1.0;
        let x = num / den;
        return mu + (x * sigma);
    }
    let r = if q <= 0.0 { p } else { 1.0 - p };
    let mut r = (-r.ln()).sqrt();
    let (num, den);
    if r <= 5.0 {
        r -= 1.6;
        num = ((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
            + 2.41780725177450611770e-1) * r
            + 1.27045825245236838258e+0) * r
            + 3.64784832476320460504e+0) * r
            + 5.76949722146069140550e+0) * r
            + 4.63033784615654529590e+0) * r
            + 1.42343711074968357734e+0;
        den = ((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
            + 1.51986665636164571966e-2) * r
            + 1.48103976427480074590e-1) * r
            + 6.89767334985100004550e-1) * r
            + 1.67638483018380384940e+0) * r
            + 2.05319162663775882187e+0) * r
            + 1.0;
    } else {
        r -= 5.0;
        num = ((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
            + 1.24266094738807843860e-3) * r
            + 2.65321895265761230930e-2) * r
            + 2.96560571828504891230e-1) * r
            + 1.78482653991729133580e+0) * r
            + 5.46378491116411436990e+0) * r
            + 6.65790464350110377720e+0;
        den = ((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r
            + 1.84631831751005468180e-5) * r
            + 7.86869131145613259100e-4) * r
            + 1.48753612908506148525e-2) * r
            + 1.36929880922735805310e-1) * r
            + 5.99832206555887937690e-1) * r
            + 1.0;
    }
    let mut x = num / den;
    if q < 0.0 {
        x = -x;
    }
    mu + (x * sigma)
}

/// `pareto_tail_z(z, knee, alpha)`.
pub fn pareto_tail_z(z: f64, knee: f64, alpha: f64) -> f64 {
    if !(z > knee) {
        return z;
    }
    let ln_tail = (0.5 * erfc(knee / 2.0f64.sqrt())).ln() - alpha * (py_min(z, 1e300) / knee).ln();
    -normal_inv_cdf(py_max(ln_tail, -690.0).exp())
}

/// `robust_sigma(mean_abs_dev, min_scale)`.
pub fn robust_sigma(mean_abs_dev: f64, min_scale: f64) -> f64 {
    py_max(sigma_per_mean_abs_dev() * mean_abs_dev, min_scale)
}

/// `update_robust_level(n, centre, mean_abs_dev, y, alpha, clip, min_scale)`; `n` is a
/// float in Python (`n += 1.0`), so it is here.
pub fn update_robust_level(n: f64, centre: f64, mean_abs_dev: f64, y: f64, alpha: f64, clip: f64,
                           min_scale: f64) -> (f64, f64, f64) {
    let n = n + 1.0;
    if n <= 1.0 {
        return (n, y, 0.0);
    }
    let weight = py_max(alpha, 1.0 / n);
    let limit = clip * robust_sigma(mean_abs_dev, min_scale);
    let r = py_min(py_max(y - centre, -limit), limit);
    (n, centre + weight * r, mean_abs_dev + weight * (r.abs() - mean_abs_dev))
}
