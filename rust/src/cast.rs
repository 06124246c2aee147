//! Element conversion used while assembling: `as` semantics for numbers
//! (integers wrap, floats saturate into integers with NaN → 0), half
//! precision through `f32`, and `bool` as 0/1 (any non-zero value is `true`).

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
                f16::from_f32(value as f32)
            }
        }
        impl CastFrom<$s> for bf16 {
            #[inline(always)]
            fn cast_from(value: $s) -> bf16 {
                bf16::from_f32(value as f32)
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
}
