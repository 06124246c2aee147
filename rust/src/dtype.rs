//! Element types: their ABI codes, sizes and the `with_dtype!` dispatch macro.

use crate::error::{Error, Result};
use bytemuck::{Pod, Zeroable};

/// A boolean element stored as one byte; any non-zero byte reads as `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Pod, Zeroable)]
#[repr(transparent)]
pub struct Bool(pub u8);

/// Element types known to the data plane. The discriminant is the ABI code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DType {
    /// `bool`, one byte per element.
    Bool = 0,
    /// `int8`.
    Int8 = 1,
    /// `int16`.
    Int16 = 2,
    /// `int32`.
    Int32 = 3,
    /// `int64`.
    Int64 = 4,
    /// `uint8`.
    UInt8 = 5,
    /// `uint16`.
    UInt16 = 6,
    /// `uint32`.
    UInt32 = 7,
    /// `uint64`.
    UInt64 = 8,
    /// IEEE half precision.
    Float16 = 9,
    /// IEEE single precision.
    Float32 = 10,
    /// IEEE double precision.
    Float64 = 11,
    /// Brain float 16 (a cast target; no Zarr store holds it).
    BFloat16 = 12,
}

impl DType {
    /// Decodes an ABI code.
    pub fn from_code(code: i64) -> Result<Self> {
        use DType::*;
        Ok(match code {
            0 => Bool,
            1 => Int8,
            2 => Int16,
            3 => Int32,
            4 => Int64,
            5 => UInt8,
            6 => UInt16,
            7 => UInt32,
            8 => UInt64,
            9 => Float16,
            10 => Float32,
            11 => Float64,
            12 => BFloat16,
            other => return Err(Error::invalid(format!("unknown dtype code {other}"))),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        use DType::*;
        match self {
            Bool | Int8 | UInt8 => 1,
            Int16 | UInt16 | Float16 | BFloat16 => 2,
            Int32 | UInt32 | Float32 => 4,
            Int64 | UInt64 | Float64 => 8,
        }
    }
}

/// Runs `$body` with `$T` bound to the Rust element type of `$dtype`.
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {{
        use $crate::dtype::DType;
        match $dtype {
            DType::Bool => {
                type $T = $crate::dtype::Bool;
                $body
            }
            DType::Int8 => {
                type $T = i8;
                $body
            }
            DType::Int16 => {
                type $T = i16;
                $body
            }
            DType::Int32 => {
                type $T = i32;
                $body
            }
            DType::Int64 => {
                type $T = i64;
                $body
            }
            DType::UInt8 => {
                type $T = u8;
                $body
            }
            DType::UInt16 => {
                type $T = u16;
                $body
            }
            DType::UInt32 => {
                type $T = u32;
                $body
            }
            DType::UInt64 => {
                type $T = u64;
                $body
            }
            DType::Float16 => {
                type $T = half::f16;
                $body
            }
            DType::Float32 => {
                type $T = f32;
                $body
            }
            DType::Float64 => {
                type $T = f64;
                $body
            }
            DType::BFloat16 => {
                type $T = half::bf16;
                $body
            }
        }
    }};
}
