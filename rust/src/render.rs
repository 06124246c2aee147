//! Thumbnails: the channels of a strided view composited into one RGB image
//! and encoded as PNG (`png` crate). Axes other than the channel, row and
//! column axes are max-projected; rows and columns are sampled every
//! `step`-th pixel so that the longer side fits `max_side`; each channel is
//! scaled by a contrast window (given, or taken from percentiles of its
//! projected plane), tinted with its color and added.

use crate::buffer::AlignedBuffer;
use crate::cast::CastFrom;
use crate::dlpack::TensorLayout;
use crate::error::{Error, Result};
use crate::with_dtype;
use bytemuck::Pod;
use rayon::prelude::*;

/// How one channel is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelStyle {
    /// Red, green and blue weights in 0..=1.
    pub color: [f64; 3],
    /// Values mapped to black and to full color; `None`: from percentiles.
    pub window: Option<(f64, f64)>,
}

/// What to render and how.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderParams {
    /// Longest side of the output in pixels.
    pub max_side: usize,
    /// Lower and upper percentile (0..=100) for automatic windows.
    pub percentiles: (f64, f64),
    /// The channel axis, if any.
    pub channel_axis: Option<usize>,
    /// The row axis.
    pub y_axis: usize,
    /// The column axis.
    pub x_axis: usize,
    /// One style per index of the channel axis (one when there is none).
    pub channels: Vec<ChannelStyle>,
}

/// Largest `max_side` accepted (a 4096² image needs 512 MiB of working memory).
pub const MAX_SIDE: usize = 4096;

impl RenderParams {
    /// Decodes `[max_side, p_lo, p_hi, c_axis (-1: none), y_axis, x_axis,
    /// (r, g, b, lo, hi) per channel]`; colors are 0..=255, a NaN bound
    /// makes the window automatic.
    pub fn decode(words: &[f64], rank: usize) -> Result<Self> {
        let bad = |what: &str| Error::invalid(format!("render parameters: {what}"));
        let [max_side, p_lo, p_hi, c, y, x, styles @ ..] = words else {
            return Err(bad("fewer than 6 values"));
        };
        let axis = |v: f64, name: &str| -> Result<Option<usize>> {
            if v == -1.0 {
                return Ok(None);
            }
            if v.fract() != 0.0 || v < 0.0 || v >= rank as f64 {
                return Err(bad(&format!(
                    "{name} axis {v} is not an axis of a rank-{rank} view"
                )));
            }
            Ok(Some(v as usize))
        };
        let channel_axis = axis(*c, "channel")?;
        let y_axis = axis(*y, "row")?.ok_or_else(|| bad("no row axis"))?;
        let x_axis = axis(*x, "column")?.ok_or_else(|| bad("no column axis"))?;
        if y_axis == x_axis || channel_axis.is_some_and(|c| c == y_axis || c == x_axis) {
            return Err(bad("channel, row and column axes must differ"));
        }
        if !(max_side.fract() == 0.0 && *max_side >= 1.0 && *max_side <= MAX_SIDE as f64) {
            return Err(bad(&format!(
                "max side {max_side} must be an integer in 1..={MAX_SIDE}"
            )));
        }
        if !(0.0 <= *p_lo && p_lo < p_hi && *p_hi <= 100.0) {
            return Err(bad(&format!(
                "percentiles ({p_lo}, {p_hi}) must satisfy 0 ≤ lo < hi ≤ 100"
            )));
        }
        if styles.is_empty() || styles.len() % 5 != 0 {
            return Err(bad("channel styles must be groups of (r, g, b, lo, hi)"));
        }
        let channels = styles
            .chunks_exact(5)
            .map(|s| {
                if !s[..3].iter().all(|v| (0.0..=255.0).contains(v)) {
                    return Err(bad(&format!("color {:?} is outside 0..=255", &s[..3])));
                }
                let window = match (s[3].is_nan(), s[4].is_nan()) {
                    (true, true) => None,
                    (false, false) if s[3].is_finite() && s[4].is_finite() => Some((s[3], s[4])),
                    _ => {
                        return Err(bad(&format!(
                            "window ({}, {}) must be two finite numbers or two NaNs",
                            s[3], s[4]
                        )))
                    }
                };
                Ok(ChannelStyle {
                    color: [s[0] / 255.0, s[1] / 255.0, s[2] / 255.0],
                    window,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            max_side: *max_side as usize,
            percentiles: (*p_lo, *p_hi),
            channel_axis,
            y_axis,
            x_axis,
            channels,
        })
    }
}

/// A rendered thumbnail.
#[derive(Debug)]
pub struct Rendered {
    /// The PNG file.
    pub png: Vec<u8>,
    /// Output width and height.
    pub size: (usize, usize),
    /// The window used for each channel.
    pub windows: Vec<(f64, f64)>,
}

/// Renders `layout` over `src` as an RGB PNG.
pub fn render_png(
    src: &AlignedBuffer,
    layout: &TensorLayout,
    params: &RenderParams,
) -> Result<Rendered> {
    layout.check_inside(src.len())?;
    let shape: Vec<usize> = layout.shape.iter().map(|&n| n as usize).collect();
    if shape.contains(&0) {
        return Err(Error::invalid(format!(
            "cannot render an empty view of shape {shape:?}"
        )));
    }
    let nc = params.channel_axis.map_or(1, |c| shape[c]);
    if params.channels.len() != nc {
        return Err(Error::invalid(format!(
            "{} channel styles given for {nc} channels",
            params.channels.len()
        )));
    }
    let (ny, nx) = (shape[params.y_axis], shape[params.x_axis]);
    let step = ny.max(nx).div_ceil(params.max_side);
    let (height, width) = (ny.div_ceil(step), nx.div_ceil(step));
    let projected = projection_offsets(layout, params)?;
    // One channel at a time (rows in parallel): memory stays at one plane and the RGB sum.
    let mut rgb = vec![0f64; height * width * 3];
    let mut windows = Vec::with_capacity(nc);
    for (c, style) in params.channels.iter().enumerate() {
        let base = layout.offset
            + params
                .channel_axis
                .map_or(0, |a| c as i64 * layout.strides[a]);
        let plane = crate::pool().install(|| {
            with_dtype!(layout.dtype, T => {
                // SAFETY: every offset lies inside `src` (checked above).
                unsafe { project::<T>(src.as_ptr(), base, &projected, layout, params, step, (height, width)) }
            })
        });
        let (lo, hi) = style
            .window
            .unwrap_or_else(|| percentiles(&plane, params.percentiles));
        windows.push((lo, hi));
        for (px, &v) in rgb.chunks_exact_mut(3).zip(&plane) {
            let level = scale(v, lo, hi);
            for (out, weight) in px.iter_mut().zip(style.color) {
                *out += level * weight;
            }
        }
    }
    let pixels: Vec<u8> = rgb
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    Ok(Rendered {
        png: encode_png(&pixels, width, height)?,
        size: (width, height),
        windows,
    })
}

/// Element offsets (relative to the view's start) of every index of the
/// projected axes: all axes but the channel, row and column axes.
fn projection_offsets(layout: &TensorLayout, params: &RenderParams) -> Result<Vec<i64>> {
    let mut offsets = vec![0i64];
    for (d, (&n, &s)) in layout.shape.iter().zip(&layout.strides).enumerate() {
        if Some(d) == params.channel_axis || d == params.y_axis || d == params.x_axis {
            continue;
        }
        if offsets.len().saturating_mul(n as usize) > 1 << 24 {
            return Err(Error::invalid(
                "too many planes to project (more than 2^24)",
            ));
        }
        offsets = offsets
            .iter()
            .flat_map(|&o| (0..n).map(move |i| o + i * s))
            .collect();
    }
    Ok(offsets)
}

/// The max projection of one channel, sampled every `step`-th row and column.
///
/// # Safety
/// Every element `base + projected + y·stride_y + x·stride_x` must lie inside `src`.
unsafe fn project<T: Pod + Send + Sync>(
    src: *const u8,
    base: i64,
    projected: &[i64],
    layout: &TensorLayout,
    params: &RenderParams,
    step: usize,
    (height, width): (usize, usize),
) -> Vec<f64>
where
    f64: CastFrom<T>,
{
    let (sy, sx) = (layout.strides[params.y_axis], layout.strides[params.x_axis]);
    // An address, not a pointer: the closure runs on worker threads.
    let first = src as usize;
    let mut plane = vec![f64::NEG_INFINITY; height * width];
    plane
        .par_chunks_mut(width)
        .enumerate()
        .for_each(|(oy, row)| {
            for &p in projected {
                let row_start = base + p + (oy * step) as i64 * sy;
                for (ox, out) in row.iter_mut().enumerate() {
                    let at = row_start + (ox * step) as i64 * sx;
                    let v = f64::cast_from(std::ptr::read(
                        (first as *const T).wrapping_offset(at as isize),
                    ));
                    // NaN never wins: a pixel that is NaN in every plane stays -inf (black).
                    if v > *out {
                        *out = v;
                    }
                }
            }
        });
    plane
}

/// Two percentiles (0..=100) of the finite values, with linear interpolation
/// between neighbours (numpy's default); 0 when there is no finite value.
pub fn percentiles(values: &[f64], (p, q): (f64, f64)) -> (f64, f64) {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (0.0, 0.0);
    }
    finite.sort_unstable_by(f64::total_cmp);
    let at = |p: f64| {
        let pos = p / 100.0 * (finite.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(finite.len() - 1);
        finite[lo] + (pos - lo as f64) * (finite[hi] - finite[lo])
    };
    (at(p), at(q))
}

/// `v` mapped from the window to 0..=1 (a window with `hi ≤ lo` is a step at `lo`).
fn scale(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else if v > lo {
        1.0
    } else {
        0.0
    }
}

/// Encodes 8-bit RGB pixels as a PNG file.
fn encode_png(pixels: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let fail = |e: png::EncodingError| Error::invalid(format!("PNG encoding failed: {e}"));
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(fail)?;
    writer.write_image_data(pixels).map_err(fail)?;
    writer.finish().map_err(fail)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    fn buffer_of(values: &[u16]) -> AlignedBuffer {
        let b = AlignedBuffer::zeroed(values.len() * 2).unwrap();
        unsafe {
            std::ptr::copy_nonoverlapping(
                values.as_ptr().cast::<u8>(),
                b.as_ptr(),
                values.len() * 2,
            )
        };
        b
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [4.0, 1.0, 3.0, 2.0, f64::NAN];
        assert_eq!(percentiles(&v, (0.0, 100.0)), (1.0, 4.0));
        let (median, tenth) = percentiles(&v, (50.0, 10.0));
        assert_eq!(median, 2.5);
        assert!((tenth - 1.3).abs() < 1e-12);
        assert_eq!(percentiles(&[f64::NAN], (1.0, 99.0)), (0.0, 0.0));
    }

    #[test]
    fn projects_composites_and_encodes() {
        // (c=2, z=2, y=2, x=2), channel 0 red, channel 1 green with fixed windows.
        let values: Vec<u16> = vec![0, 10, 20, 30, 40, 0, 0, 0, 5, 5, 5, 5, 5, 5, 5, 15];
        let src = buffer_of(&values);
        let layout = TensorLayout {
            dtype: DType::UInt16,
            offset: 0,
            shape: vec![2, 2, 2, 2],
            strides: vec![8, 4, 2, 1],
        };
        let words = [
            64.0, 0.0, 100.0, 0.0, 2.0, 3.0, 255.0, 0.0, 0.0, 0.0, 40.0, 0.0, 255.0, 0.0, 5.0, 15.0,
        ];
        let params = RenderParams::decode(&words, 4).unwrap();
        let r = render_png(&src, &layout, &params).unwrap();
        assert_eq!(r.size, (2, 2));
        assert_eq!(r.windows, vec![(0.0, 40.0), (5.0, 15.0)]);
        assert_eq!(&r.png[1..4], b"PNG");
        // Max over z: red [40, 10, 20, 30] / 40, green [5, 5, 5, 15] → 0, 0, 0, 1.
        let decoder = png::Decoder::new(std::io::Cursor::new(r.png));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut pixels).unwrap();
        assert_eq!(pixels, vec![255, 0, 0, 64, 0, 0, 128, 0, 0, 191, 255, 0]);
    }

    #[test]
    fn rejects_bad_parameters() {
        for words in [
            vec![
                0.0,
                0.0,
                100.0,
                -1.0,
                0.0,
                1.0,
                255.0,
                255.0,
                255.0,
                f64::NAN,
                f64::NAN,
            ],
            vec![
                64.0,
                50.0,
                10.0,
                -1.0,
                0.0,
                1.0,
                255.0,
                255.0,
                255.0,
                f64::NAN,
                f64::NAN,
            ],
            vec![
                64.0,
                0.0,
                100.0,
                -1.0,
                0.0,
                0.0,
                255.0,
                255.0,
                255.0,
                f64::NAN,
                f64::NAN,
            ],
            vec![
                64.0,
                0.0,
                100.0,
                -1.0,
                0.0,
                2.0,
                255.0,
                255.0,
                255.0,
                f64::NAN,
                f64::NAN,
            ],
            vec![
                64.0,
                0.0,
                100.0,
                -1.0,
                0.0,
                1.0,
                300.0,
                0.0,
                0.0,
                f64::NAN,
                f64::NAN,
            ],
            vec![
                64.0,
                0.0,
                100.0,
                -1.0,
                0.0,
                1.0,
                255.0,
                0.0,
                0.0,
                1.0,
                f64::NAN,
            ],
            vec![64.0, 0.0, 100.0, -1.0, 0.0, 1.0],
        ] {
            assert!(RenderParams::decode(&words, 2).is_err(), "{words:?}");
        }
    }
}
