//! Element conversion used while assembling: `as` semantics for numbers
//! (integers wrap, floats saturate into integers with NaN → 0); `float16`
//! and `bfloat16` targets round once, to nearest even, from the source value
//! (64-bit integers beyond 2^53 first round to `f64`); `bool` is 0/1 and any
//! non-zero value is `true`.

use crate::dtype::Bool;
use half::{bf16, f16};

/// Converts a value of type `S` into `Self`.
pub trait CastFrom<S>: Sized {
    /// The converted value.
    fn cast_from(value: S) -> Self;
}

macro_rules! prim_pairs {
    ($($s:ty),*) => { $( prim_pairs!(@row $s; i8, i16, i32, i64, u8, u16, u32, u64, f32, f64); )* };
    (@row $s:ty; $($d:ty),*) => {
        $(
            impl CastFrom<$s> for $d {
                #[inline(always)]
                fn cast_from(value: $s) -> $d {
                    value as $d
                }
            }
        )*
        impl CastFrom<$s> for f16 {
            #[inline(always)]
            fn cast_from(value: $s) -> f16 {
                f16::from_f32(value.to_f32_for_half())
            }
        }
        impl CastFrom<$s> for bf16 {
            #[inline(always)]
            fn cast_from(value: $s) -> bf16 {
                bf16::from_f32(value.to_f32_for_half())
            }
        }
        impl CastFrom<$s> for Bool {
            #[inline(always)]
            #[allow(clippy::float_cmp)]
            fn cast_from(value: $s) -> Bool {
                Bool((value != (0 as $s)) as u8)
            }
        }
        impl CastFrom<Bool> for $s {
            #[inline(always)]
            fn cast_from(value: Bool) -> $s {
                (value.0 != 0) as u8 as $s
            }
        }
        impl CastFrom<f16> for $s {
            #[inline(always)]
            fn cast_from(value: f16) -> $s {
                value.to_f32() as $s
            }
        }
        impl CastFrom<bf16> for $s {
            #[inline(always)]
            fn cast_from(value: bf16) -> $s {
                value.to_f32() as $s
            }
        }
    };
}

prim_pairs!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// The `f32` from which rounding to a 16-bit float gives the same result as
/// rounding the value itself once.
trait ToF32ForHalf {
    fn to_f32_for_half(self) -> f32;
}

macro_rules! exact_in_f32 {
    ($($t:ty),*) => {$(
        impl ToF32ForHalf for $t {
            #[inline(always)]
            fn to_f32_for_half(self) -> f32 {
                self as f32
            }
        }
    )*};
}
exact_in_f32!(i8, i16, u8, u16, f32);

macro_rules! via_f64 {
    ($($t:ty),*) => {$(
        impl ToF32ForHalf for $t {
            #[inline(always)]
            fn to_f32_for_half(self) -> f32 {
                f64_to_f32_round_to_odd(self as f64)
            }
        }
    )*};
}
via_f64!(i32, i64, u32, u64, f64);

/// Rounds to `f32` toward zero and sets the lowest bit when inexact ("round
/// to odd"). Rounding that result to nearest-even at 16 bits equals rounding
/// `x` directly, which plain `x as f32` (round to nearest) does not give.
#[inline(always)]
fn f64_to_f32_round_to_odd(x: f64) -> f32 {
    let nearest = x as f32;
    if x.is_nan() || nearest as f64 == x {
        return nearest;
    }
    if nearest.is_infinite() {
        return f32::from_bits((nearest.to_bits() & 0x8000_0000) | 0x7f7f_ffff);
    }
    let mut bits = nearest.to_bits();
    if (nearest as f64).abs() > x.abs() {
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

macro_rules! half_pairs {
    ($($s:ty),*) => {
        $(
            impl CastFrom<$s> for f16 {
                #[inline(always)]
                fn cast_from(value: $s) -> f16 {
                    f16::from_f32(value.to_f32())
                }
            }
            impl CastFrom<$s> for bf16 {
                #[inline(always)]
                fn cast_from(value: $s) -> bf16 {
                    bf16::from_f32(value.to_f32())
                }
            }
            impl CastFrom<$s> for Bool {
                #[inline(always)]
                fn cast_from(value: $s) -> Bool {
                    Bool((value.to_f32() != 0.0) as u8)
                }
            }
            impl CastFrom<Bool> for $s {
                #[inline(always)]
                fn cast_from(value: Bool) -> $s {
                    <$s>::from_f32((value.0 != 0) as u8 as f32)
                }
            }
        )*
    };
}

half_pairs!(f16, bf16);

impl CastFrom<Bool> for Bool {
    #[inline(always)]
    fn cast_from(value: Bool) -> Bool {
        Bool((value.0 != 0) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_casts_wrap_and_float_casts_saturate() {
        assert_eq!(<u8 as CastFrom<i16>>::cast_from(-1), 255);
        assert_eq!(<u8 as CastFrom<f32>>::cast_from(300.7), 255);
        assert_eq!(<i32 as CastFrom<f64>>::cast_from(f64::NAN), 0);
        assert_eq!(<f32 as CastFrom<u16>>::cast_from(65535), 65535.0);
    }

    #[test]
    fn half_and_bool_casts() {
        assert_eq!(<f32 as CastFrom<f16>>::cast_from(f16::from_f32(1.5)), 1.5);
        assert_eq!(<bf16 as CastFrom<u16>>::cast_from(256).to_f32(), 256.0);
        assert_eq!(<Bool as CastFrom<f32>>::cast_from(f32::NAN), Bool(1));
        assert_eq!(<u16 as CastFrom<Bool>>::cast_from(Bool(7)), 1);
        assert_eq!(<Bool as CastFrom<Bool>>::cast_from(Bool(7)), Bool(1));
    }

    #[test]
    fn half_targets_round_once_from_f64() {
        // 1 + 3·2⁻¹¹ − 2⁻³⁰ is just below the f16 tie: it rounds down; through f32 it would round up.
        let x = 1.0 + 3.0 * 2f64.powi(-11) - 2f64.powi(-30);
        assert_eq!(<f16 as CastFrom<f64>>::cast_from(x).to_bits(), 0x3c01);
        let y = 1.0 + 3.0 * 2f64.powi(-8) - 2f64.powi(-40);
        assert_eq!(<bf16 as CastFrom<f64>>::cast_from(y).to_bits(), 0x3f81);
    }
}
