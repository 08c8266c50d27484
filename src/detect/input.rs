//! A frame → the detector's input: scaled to fit `fit` (aspect kept), placed top-left on a
//! black canvas of `canvas` (the fit padded to multiples of 32), as planar BGR 0-255 floats
//! (what YuNet was trained on).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// The scale that fits a `w × h` frame into the input, and the scaled size.
fn fit(w: u32, h: u32, width: u32, height: u32) -> (f32, u32, u32) {
    let scale = (width as f32 / w as f32).min(height as f32 / h as f32);
    let side = |v: u32, max: u32| ((v as f32 * scale).round() as u32).clamp(1, max);
    (scale, side(w, width), side(h, height))
}

fn resize(
    resizer: &mut Resizer,
    pixels: &[u8],
    (w, h): (u32, u32),
    (nw, nh): (u32, u32),
    pixel: PixelType,
) -> Result<Vec<u8>, String> {
    if (w, h) == (nw, nh) {
        return Ok(pixels.to_vec());
    }
    let src = ImageRef::new(w, h, pixels, pixel).map_err(|e| e.to_string())?;
    let mut dst = Image::new(nw, nh, pixel);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize(&src, &mut dst, &options)
        .map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}

/// Interleaved 8-bit pixels `scaled_w` wide (as many channels as `sources` picks from) →
/// three float planes of `width × height`, top-left, black elsewhere; plane `k` takes
/// channel `sources[k]` of each pixel.
fn planar(
    scaled: &[u8],
    scaled_w: u32,
    (width, height): (u32, u32),
    sources: [usize; 3],
) -> Vec<f32> {
    let channels = sources.iter().max().map_or(1, |m| m + 1);
    let plane = (width * height) as usize;
    let mut input = vec![0.0f32; 3 * plane];
    for (row, line) in scaled
        .chunks_exact(scaled_w as usize * channels)
        .enumerate()
    {
        for (col, pixel) in line.chunks_exact(channels).enumerate() {
            let at = row * width as usize + col;
            for (k, &source) in sources.iter().enumerate() {
                input[k * plane + at] = pixel[source] as f32;
            }
        }
    }
    input
}

/// 8-bit RGB `w × h` → (input of 3 × height × width fitted into `fit`, the scale
/// source → input).
pub fn rgb_input(
    rgb: &[u8],
    w: u32,
    h: u32,
    (fit_w, fit_h): (u32, u32),
    (width, height): (u32, u32),
    resizer: &mut Resizer,
) -> Result<(Vec<f32>, f32), String> {
    let (scale, nw, nh) = fit(w, h, fit_w.min(width), fit_h.min(height));
    let scaled = resize(resizer, rgb, (w, h), (nw, nh), PixelType::U8x3)?;
    // BGR planes: channel 2 of each RGB pixel first.
    Ok((planar(&scaled, nw, (width, height), [2, 1, 0]), scale))
}

/// Grey [0, 1] `w × h` (a normalised thermal frame) → the same three-channel input, grey in
/// every channel, `inverted` (1 − v) when asked.
pub fn gray_input(
    gray: &[f32],
    w: u32,
    h: u32,
    (fit_w, fit_h): (u32, u32),
    (width, height): (u32, u32),
    inverted: bool,
    resizer: &mut Resizer,
) -> Result<(Vec<f32>, f32), String> {
    let (scale, nw, nh) = fit(w, h, fit_w.min(width), fit_h.min(height));
    let bytes: Vec<u8> = gray
        .iter()
        .map(|&v| {
            let v = if inverted { 1.0 - v } else { v };
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        })
        .collect();
    let scaled = resize(resizer, &bytes, (w, h), (nw, nh), PixelType::U8)?;
    Ok((planar(&scaled, nw, (width, height), [0, 0, 0]), scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_scaled_to_fit_top_left_and_padded_black() {
        let mut resizer = Resizer::new();
        // 4x2 red frame into 8x8: scale 2, 8x4 of red (BGR: blue plane 0, red plane 255).
        let rgb: Vec<u8> = [255u8, 0, 0].repeat(8);
        let (input, scale) = rgb_input(&rgb, 4, 2, (8, 8), (8, 8), &mut resizer).expect("input");
        assert_eq!(scale, 2.0);
        assert_eq!(input.len(), 3 * 64);
        assert_eq!(input[0], 0.0, "blue plane");
        assert_eq!(input[2 * 64], 255.0, "red plane, top-left");
        assert_eq!(input[2 * 64 + 3 * 8 + 7], 255.0, "last scaled row");
        assert_eq!(input[2 * 64 + 4 * 8], 0.0, "padding below");
    }

    #[test]
    fn grey_is_copied_to_every_channel_and_can_be_inverted() {
        let mut resizer = Resizer::new();
        let (input, _) =
            gray_input(&[1.0, 0.0], 2, 1, (2, 2), (2, 2), true, &mut resizer).expect("in");
        assert_eq!([input[0], input[4], input[8]], [0.0, 0.0, 0.0]);
        assert_eq!([input[1], input[5], input[9]], [255.0, 255.0, 255.0]);
    }

    #[test]
    fn the_fit_can_be_smaller_than_the_padded_canvas() {
        let mut resizer = Resizer::new();
        // 320x240 fit in a 320x256 canvas: a 640x480 frame halves, rows 240.. stay black.
        let rgb = vec![200u8; 640 * 480 * 3];
        let (input, scale) =
            rgb_input(&rgb, 640, 480, (320, 240), (320, 256), &mut resizer).expect("input");
        assert_eq!(scale, 0.5);
        assert_eq!(input.len(), 3 * 320 * 256);
        assert_eq!(input[239 * 320], 200.0);
        assert_eq!(input[240 * 320], 0.0);
    }
}
