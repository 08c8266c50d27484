//! Multi-scale, tiled segmentation: for each test-time scale k the image is resized to k
//! times the model input and cut into model-sized tiles that overlap by half; the tiles'
//! class probabilities are averaged where they overlap, resized back to the image and
//! averaged over the scales (and over the mirrored image when `flip` is set).
//!
//! At k > 1 thin structures (poles, signs, people) span more input pixels while every
//! tile still shows the model a frame of the size it was trained on; scale 1 keeps the
//! whole-image context. Scale 1 alone, unmirrored, is exactly one pass of the whole image.

use crate::infer::TestTime;

use super::OfflineError;
use super::model::OfflineModel;

/// Tiles per inference call: bounds the input buffer at large scales (a scale-8 pass of a
/// 480×352 model is 225 tiles).
const TILES_PER_CALL: usize = 4;

/// Class-major probabilities at `size` (the image's), averaged over `plan`'s passes.
/// `planes` are the model's input bands at `size`.
pub fn probabilities(
    model: &mut OfflineModel,
    planes: &[&[f32]],
    size: (usize, usize),
    plan: &TestTime,
) -> Result<Vec<f32>, OfflineError> {
    let (w, h) = size;
    let classes = model.classes().len();
    // The manifest's and the CLI's plans are checked where they are read; a plan set
    // through the library is checked here (an empty one would average nothing).
    if let Some(problem) = plan.problem_for((model.width, model.height), classes) {
        return Err(OfflineError::Input(format!("test-time plan: {problem}")));
    }
    let mut sum = vec![0.0f32; classes * w * h];
    let mut passes = 0usize;
    for &k in &plan.scales {
        let scaled = TestTime::scaled_size(k, (model.width, model.height));
        let mut resized = Vec::with_capacity(planes.len());
        for plane in planes {
            resized.push(model.resize_plane(plane, size, scaled)?);
        }
        for mirrored in [false, true] {
            if mirrored && !plan.flip {
                break;
            }
            if mirrored {
                resized.iter_mut().for_each(|p| mirror(p, scaled.0));
            }
            let mut probs = tiled(model, &resized, scaled)?;
            let plane_len = scaled.0 * scaled.1;
            for c in 0..classes {
                let plane = &mut probs[c * plane_len..(c + 1) * plane_len];
                if mirrored {
                    mirror(plane, scaled.0);
                }
                let back = model.resize_plane(plane, scaled, size)?;
                for (s, v) in sum[c * w * h..(c + 1) * w * h].iter_mut().zip(back) {
                    *s += v;
                }
            }
            passes += 1;
        }
    }
    let inv = 1.0 / passes as f32;
    sum.iter_mut().for_each(|v| *v *= inv);
    Ok(sum)
}

/// The model over `planes` (at `size`, at least the model input) in overlapping tiles;
/// class-major probabilities at `size`.
fn tiled(
    model: &mut OfflineModel,
    planes: &[Vec<f32>],
    size: (usize, usize),
) -> Result<Vec<f32>, OfflineError> {
    let (sw, sh) = size;
    let (mw, mh) = (model.width, model.height);
    let classes = model.classes().len();
    let xs = tile_origins(sw, mw);
    let origins: Vec<(usize, usize)> = tile_origins(sh, mh)
        .into_iter()
        .flat_map(|y| xs.iter().map(move |&x| (x, y)))
        .collect();
    let mut acc = vec![0.0f32; classes * sw * sh];
    let mut count = vec![0u16; sw * sh];
    for chunk in origins.chunks(TILES_PER_CALL) {
        let mut input = Vec::with_capacity(chunk.len() * planes.len() * mw * mh);
        for &(x0, y0) in chunk {
            for plane in planes {
                for y in y0..y0 + mh {
                    input.extend_from_slice(&plane[y * sw + x0..y * sw + x0 + mw]);
                }
            }
        }
        let out = model.run(&input, chunk.len())?;
        for (t, &(x0, y0)) in chunk.iter().enumerate() {
            let tile = &out[t * classes * mw * mh..(t + 1) * classes * mw * mh];
            for c in 0..classes {
                for y in 0..mh {
                    let src = &tile[c * mw * mh + y * mw..c * mw * mh + (y + 1) * mw];
                    let row = c * sw * sh + (y0 + y) * sw + x0;
                    for (a, v) in acc[row..row + mw].iter_mut().zip(src) {
                        *a += v;
                    }
                }
            }
            for y in y0..y0 + mh {
                count[y * sw + x0..y * sw + x0 + mw]
                    .iter_mut()
                    .for_each(|n| *n += 1);
            }
        }
    }
    for c in 0..classes {
        for (a, n) in acc[c * sw * sh..(c + 1) * sw * sh].iter_mut().zip(&count) {
            *a /= f32::from((*n).max(1));
        }
    }
    Ok(acc)
}

/// Where tiles of `tile` pixels start along a side of `len` (≥ `tile`): every half tile,
/// plus one flush with the far edge, so every pixel is covered and most twice.
pub fn tile_origins(len: usize, tile: usize) -> Vec<usize> {
    let last = len.saturating_sub(tile);
    let mut origins: Vec<usize> = (0..last).step_by((tile / 2).max(1)).collect();
    origins.push(last);
    origins
}

/// Mirrors a row-major plane of `width` columns left to right, in place.
fn mirror(plane: &mut [f32], width: usize) {
    plane.chunks_mut(width).for_each(|row| row.reverse());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_every_pixel_and_end_flush_with_the_edge() {
        assert_eq!(tile_origins(480, 480), vec![0]);
        assert_eq!(tile_origins(720, 480), vec![0, 240]);
        assert_eq!(tile_origins(528, 352), vec![0, 176]);
        assert_eq!(tile_origins(1000, 480), vec![0, 240, 480, 520]);
        for (len, tile) in [(481, 480), (3840, 480), (700, 352)] {
            let origins = tile_origins(len, tile);
            let mut covered = vec![false; len];
            for o in &origins {
                assert!(o + tile <= len, "tile at {o} runs past {len}");
                covered[*o..o + tile].iter_mut().for_each(|c| *c = true);
            }
            assert!(covered.iter().all(|c| *c), "{len}/{tile} leaves a gap");
        }
    }

    #[test]
    fn mirroring_twice_restores_the_plane() {
        let mut plane: Vec<f32> = (0..12).map(|v| v as f32).collect();
        mirror(&mut plane, 4);
        assert_eq!(&plane[..4], &[3.0, 2.0, 1.0, 0.0]);
        mirror(&mut plane, 4);
        assert_eq!(plane, (0..12).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn scales_below_one_none_or_too_large_a_pass_are_refused_with_the_reason() {
        let plan = |scales: Vec<f64>| TestTime {
            scales,
            flip: false,
        };
        assert!(plan(vec![1.0, 1.5]).problem().is_none());
        assert!(plan(vec![]).problem().unwrap().contains("no scales"));
        assert!(plan(vec![0.5]).problem().unwrap().contains("0.5"));
        assert!(plan(vec![f64::NAN]).problem().is_some());
        assert!(plan(vec![9.0]).problem().unwrap().contains("1..=8"));
        // Scale 8 of a 480x352 model with 11 classes: 476 MiB a pass, accepted; the same
        // plan on a 1024x1024 model with 150 classes is refused, naming the limit.
        assert!(plan(vec![1.0, 8.0]).problem_for((480, 352), 11).is_none());
        let big = plan(vec![8.0]).problem_for((1024, 1024), 150).unwrap();
        assert!(big.contains("limit 1024 MiB"), "{big}");
    }
}
