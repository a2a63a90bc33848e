//! CPython's float semantics where Rust's differ, so every result is the same float.
//!
//! Plain `+ - * /`, `sqrt`, `abs`, comparisons are IEEE operations in both. CPython's
//! `math.exp`, `log`, `log10`, `expm1`, `log1p`, `erfc` and `float ** float` call the C
//! library, as Rust's `exp`, `ln`, `log10`, `exp_m1`, `ln_1p`, `powf` do (checked on
//! random inputs in tests/unit/native); `erfc` is declared from the C library here.
//! `math.hypot` is CPython's own algorithm, not the C library's: only `hypot(x, 0.0)`
//! (which is `abs(x)` exactly) is offered. The builtins `max`/`min` of two floats keep
//! the first unless the second is strictly larger/smaller (what NaN and -0.0 see);
//! float `//` and `%` round as CPython's `float_floor_div`/`float_rem` do.

extern "C" {
    #[link_name = "erfc"]
    fn c_erfc(x: f64) -> f64;
}

/// `math.erfc(x)` (the C library's, as CPython's).
pub fn erfc(x: f64) -> f64 {
    unsafe { c_erfc(x) }
}

/// Python's `max(a, b)` of two floats.
#[inline]
pub fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

/// Python's `min(a, b)` of two floats.
#[inline]
pub fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// `math.hypot(x, 0.0)`: exactly `abs(x)` for every finite x (CPython's algorithm gives
/// it; checked in tests). Any other second argument is not offered here.
#[inline]
pub fn hypot_zero(x: f64) -> f64 {
    x.abs()
}

fn div_mod(vx: f64, wx: f64) -> (f64, f64) {
    // CPython's _float_div_mod (Objects/floatobject.c)
    let mut m = vx % wx; // C fmod
    let mut div = (vx - m) / wx;
    if m != 0.0 {
        if (wx < 0.0) != (m < 0.0) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(wx);
    }
    let floordiv = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0f64.copysign(vx / wx)
    };
    (floordiv, m)
}

/// Python's `vx // wx` of floats (wx != 0).
#[inline]
pub fn floordiv(vx: f64, wx: f64) -> f64 {
    div_mod(vx, wx).0
}

/// Python's `vx % wx` of floats (wx != 0).
#[inline]
pub fn pymod(vx: f64, wx: f64) -> f64 {
    div_mod(vx, wx).1
}

/// Python's `int(x)` of a finite float (truncation toward zero).
#[inline]
pub fn py_int(x: f64) -> i64 {
    x.trunc() as i64
}

/// Python's `a % b` of ints for `b > 0`.
#[inline]
pub fn imod(a: i64, b: i64) -> i64 {
    a.rem_euclid(b)
}

/// Python's `a // b` of ints for `b > 0`.
#[inline]
pub fn ifloordiv(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}
