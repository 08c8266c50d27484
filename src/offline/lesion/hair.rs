//! DullRazor hair removal (Lee et al. 1997, as used by the paper, §3.1):
//!
//! 1. **Detection** — per RGB channel, the generalized grayscale closing: the maximum of
//!    the closings with four directional line elements (0°, 90°, 45°, 135°). A dark hair
//!    thinner than an element is filled by at least one closing; a lesion, wider than all
//!    of them, is not. `closing − value > threshold` marks hair; the three channel masks
//!    are united. With `hair_light`, light hairs too: `value − opening > threshold` over
//!    the minimum of the directional openings (the dual).
//! 2. **Verification** — a hair pixel must lie on a long thin structure: a connected
//!    structure at least `hair_min_length` long, on average at most `hair_max_width`
//!    thick and with at most `hair_max_holes` holes (a curve, not a mesh of pigment
//!    network; see [`verify`] for why per structure rather than per straight run).
//! 3. **Replacement** — across the longest run (perpendicular to the hair) walk to the hair
//!    border on both sides, go `hair_interpolation_distance` further, and interpolate
//!    linearly between the two pixels found there.
//! 4. **Smoothing** — a median filter over the replaced pixels only.
//!
//! Morphology, connected components, median filter and dilation come from imageproc; the
//! run lengths and the perpendicular interpolation are DullRazor's own and exist in no crate.

use image::{GrayImage, Luma, RgbImage};
use imageproc::distance_transform::Norm;
use imageproc::morphology::{Mask, dilate, grayscale_close, grayscale_open};

use super::params::LesionParams;
use super::regions::Regions;

/// The four directions of the paper's elements, as unit pixel steps.
pub const DIRECTIONS: [(i32, i32); 4] = [(1, 0), (0, 1), (1, 1), (1, -1)];

/// For each direction, the index of the one across it.
const PERPENDICULAR: [usize; 4] = [1, 0, 3, 2];

/// What hair removal produced, with its intermediate masks (0/255) for `--debug-dir`.
pub struct HairRemoval {
    pub image: RgbImage,
    /// Union of the three channel masks (detection).
    pub candidates: GrayImage,
    /// Pixels that passed the long-and-thin check, dilated: what was replaced.
    pub replaced: GrayImage,
}

/// A line element of `length` pixels along `direction`, centred.
pub fn line_mask(length: u8, direction: (i32, i32)) -> Mask {
    let side = u32::from(length.max(1));
    let half = (side - 1) / 2;
    let mut image = GrayImage::new(side, side);
    for i in 0..side {
        let offset = i as i32 - half as i32;
        let x = half as i32 + offset * direction.0;
        let y = half as i32 + offset * direction.1;
        image.put_pixel(x as u32, y as u32, Luma([255]));
    }
    Mask::from_image(&image, half as u8, half as u8)
}

/// Detection: the union over R, G, B of `max_k closing_k(c) − c > threshold` (dark hair)
/// and, with `hair_light`, of `c − min_k opening_k(c) > threshold` (light hair).
pub fn detect(image: &RgbImage, params: &LesionParams) -> GrayImage {
    let (w, h) = image.dimensions();
    let masks: Vec<Mask> = DIRECTIONS
        .iter()
        .zip(params.hair_kernel_lengths)
        .map(|(&d, length)| line_mask(length, d))
        .collect();
    let mut hair = GrayImage::new(w, h);
    for channel in 0..3 {
        let plane = GrayImage::from_fn(w, h, |x, y| Luma([image.get_pixel(x, y)[channel]]));
        mark_thin_lines(
            &plane,
            &masks,
            Polarity::Dark,
            params.hair_threshold,
            &mut hair,
        );
        if params.hair_light {
            mark_thin_lines(
                &plane,
                &masks,
                Polarity::Light,
                params.hair_threshold,
                &mut hair,
            );
        }
    }
    hair
}

#[derive(Clone, Copy, PartialEq)]
enum Polarity {
    Dark,
    Light,
}

/// Marks (255) the pixels of `plane` that a directional line element changes by more than
/// `threshold`: for dark lines the largest closing minus the value (closing never
/// darkens, so this is the paper's |b − max|), for light lines the value minus the
/// smallest opening (opening never brightens).
fn mark_thin_lines(
    plane: &GrayImage,
    masks: &[Mask],
    polarity: Polarity,
    threshold: u8,
    hair: &mut GrayImage,
) {
    let filtered: Vec<GrayImage> = masks
        .iter()
        .map(|m| match polarity {
            Polarity::Dark => grayscale_close(plane, m),
            Polarity::Light => grayscale_open(plane, m),
        })
        .collect();
    for (i, &value) in plane.as_raw().iter().enumerate() {
        let values = filtered.iter().map(|f| f.as_raw()[i]);
        let change = match polarity {
            Polarity::Dark => values.max().unwrap_or(value).saturating_sub(value),
            Polarity::Light => value.saturating_sub(values.min().unwrap_or(value)),
        };
        if change > threshold {
            hair.as_mut()[i] = 255;
        }
    }
}

/// For every pixel, the length in steps of the run of mask pixels through it along
/// `direction` (0 off the mask). Two passes over each line: O(pixels).
pub fn run_lengths(mask: &GrayImage, direction: (i32, i32)) -> Vec<u32> {
    let (w, h) = (mask.width() as i32, mask.height() as i32);
    let on = |x: i32, y: i32| {
        x >= 0 && y >= 0 && x < w && y < h && mask.as_raw()[(y * w + x) as usize] > 0
    };
    let mut runs = vec![0u32; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            // Start of a run: on the mask, and the previous pixel along the line is not.
            if !on(x, y) || on(x - direction.0, y - direction.1) {
                continue;
            }
            let mut length = 0;
            let (mut cx, mut cy) = (x, y);
            while on(cx, cy) {
                length += 1;
                cx += direction.0;
                cy += direction.1;
            }
            let (mut cx, mut cy) = (x, y);
            for _ in 0..length {
                runs[(cy * w + cx) as usize] = length;
                cx += direction.0;
                cy += direction.1;
            }
        }
    }
    runs
}

/// Pixel distance of one step along a direction (diagonal steps are √2 long).
fn step_length(direction: (i32, i32)) -> f32 {
    if direction.0 != 0 && direction.1 != 0 {
        std::f32::consts::SQRT_2
    } else {
        1.0
    }
}

/// Verification: the candidate pixels on long, thin structures, and for each of them the
/// direction of its longest run (index into [`DIRECTIONS`]; 255 elsewhere).
///
/// "Long and thin" is judged per connected structure: its extent (bounding-box diagonal)
/// at least `hair_min_length`, its mean thickness (area / extent) at most
/// `hair_max_width`, its holes at most `hair_max_holes` (a curve, not a mesh). DullRazor
/// measures straight runs through each pixel instead; those are only long for hairs along
/// one of the four directions, and real hairs lie at every angle and curve. The runs still
/// give the direction to interpolate across.
pub fn verify(candidates: &GrayImage, params: &LesionParams) -> (GrayImage, Vec<u8>) {
    let regions = Regions::of(candidates);
    let hair: Vec<bool> = regions
        .regions
        .iter()
        .map(|r| {
            let extent = r.extent();
            r.area > 0
                && extent >= f64::from(params.hair_min_length)
                && r.area as f64 / extent <= f64::from(params.hair_max_width)
                && r.holes <= params.hair_max_holes as usize
        })
        .collect();
    let runs: Vec<Vec<u32>> = DIRECTIONS
        .iter()
        .map(|&d| run_lengths(candidates, d))
        .collect();
    let mut valid = GrayImage::new(candidates.width(), candidates.height());
    let mut along = vec![255u8; runs[0].len()];
    for (i, l) in regions.labels.as_raw().iter().enumerate() {
        if *l == 0 || !hair[*l as usize] {
            continue;
        }
        let length = |k: usize| runs[k][i] as f32 * step_length(DIRECTIONS[k]);
        let longest = (0..4)
            .max_by(|&a, &b| length(a).total_cmp(&length(b)))
            .unwrap_or(0);
        valid.as_mut()[i] = 255;
        along[i] = longest as u8;
    }
    (valid, along)
}

/// The whole DullRazor pass.
pub fn remove_hair(image: &RgbImage, params: &LesionParams) -> HairRemoval {
    let candidates = detect(image, params);
    let (valid, along) = verify(&candidates, params);
    let replaced = if params.hair_mask_dilation > 0 {
        dilate(&valid, Norm::LInf, params.hair_mask_dilation)
    } else {
        valid
    };
    // Interpolation pixels must not be hair of any kind (verified or not).
    let avoid = GrayImage::from_fn(image.width(), image.height(), |x, y| {
        Luma([candidates.get_pixel(x, y)[0].max(replaced.get_pixel(x, y)[0])])
    });
    // The direction of a dilated pixel is that of the nearest verified pixel; looked up in
    // the 3×3 neighbourhood, which covers the default 1-pixel dilation; wider dilations
    // fall back to across-horizontal.
    let w = image.width() as i32;
    let h = image.height() as i32;
    let direction_at = |x: i32, y: i32| -> usize {
        for (dx, dy) in [
            (0, 0),
            (-1, 0),
            (1, 0),
            (0, -1),
            (0, 1),
            (-1, -1),
            (1, 1),
            (-1, 1),
            (1, -1),
        ] {
            let (nx, ny) = (x + dx, y + dy);
            if nx >= 0 && ny >= 0 && nx < w && ny < h {
                let d = along[(ny * w + nx) as usize];
                if d != 255 {
                    return d as usize;
                }
            }
        }
        0
    };
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            if replaced.get_pixel(x as u32, y as u32)[0] == 0 {
                continue;
            }
            let across = DIRECTIONS[PERPENDICULAR[direction_at(x, y)]];
            let side = |sign: i32| -> Option<(u32, [u8; 3])> {
                let (mut cx, mut cy, mut steps) = (x, y, 0u32);
                let inside = |cx: i32, cy: i32| cx >= 0 && cy >= 0 && cx < w && cy < h;
                while inside(cx, cy) && avoid.get_pixel(cx as u32, cy as u32)[0] > 0 {
                    cx += sign * across.0;
                    cy += sign * across.1;
                    steps += 1;
                }
                for _ in 0..params.hair_interpolation_distance {
                    cx += sign * across.0;
                    cy += sign * across.1;
                    steps += 1;
                }
                inside(cx, cy).then(|| (steps, image.get_pixel(cx as u32, cy as u32).0))
            };
            let value = match (side(1), side(-1)) {
                (Some((d1, a)), Some((d2, b))) => {
                    let (d1, d2) = (d1 as f32, d2 as f32);
                    std::array::from_fn(|c| {
                        ((f32::from(a[c]) * d2 + f32::from(b[c]) * d1) / (d1 + d2)).round() as u8
                    })
                }
                (Some((_, a)), None) | (None, Some((_, a))) => a,
                (None, None) => continue,
            };
            out.put_pixel(x as u32, y as u32, image::Rgb(value));
        }
    }
    if params.hair_smoothing_radius > 0 {
        let r = params.hair_smoothing_radius;
        let smoothed = imageproc::filter::median_filter(&out, r, r);
        for (i, flag) in replaced.as_raw().iter().enumerate() {
            if *flag > 0 {
                out.as_mut()[3 * i..3 * i + 3]
                    .copy_from_slice(&smoothed.as_raw()[3 * i..3 * i + 3]);
            }
        }
    }
    HairRemoval {
        image: out,
        candidates,
        replaced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_elements_have_the_papers_lengths_and_angles() {
        // A single dark pixel row is filled by the vertical element's closing only if the
        // element is longer than the row is thick: check the element shapes directly.
        let d = line_mask(9, (1, -1));
        let img = GrayImage::from_fn(21, 21, |x, y| {
            Luma([if x == 10 && y == 10 { 255 } else { 0 }])
        });
        let spread = imageproc::morphology::grayscale_dilate(&img, &d);
        let lit: Vec<(u32, u32)> = spread
            .enumerate_pixels()
            .filter(|(_, _, p)| p[0] > 0)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(lit.len(), 9);
        assert!(lit.iter().all(|&(x, y)| x + y == 20), "{lit:?}");
    }

    #[test]
    fn run_lengths_count_each_line() {
        let mut m = GrayImage::new(6, 3);
        for x in 1..5 {
            m.put_pixel(x, 1, Luma([255]));
        }
        let runs = run_lengths(&m, (1, 0));
        assert_eq!(&runs[6..12], &[0, 4, 4, 4, 4, 0]);
        let runs = run_lengths(&m, (0, 1));
        assert_eq!(runs[7], 1);
    }

    #[test]
    fn a_thin_long_dark_line_is_removed_and_a_wide_blob_is_not() {
        let (w, h) = (120u32, 120u32);
        let mut img = RgbImage::from_pixel(w, h, image::Rgb([200, 150, 130]));
        // Blob: 40×40 dark square (a lesion: wider than every element).
        for y in 60..100 {
            for x in 60..100 {
                img.put_pixel(x, y, image::Rgb([90, 60, 50]));
            }
        }
        // Hair: a 2-pixel-thick horizontal line across the whole image above the blob.
        for x in 0..w {
            for y in 30..32 {
                img.put_pixel(x, y, image::Rgb([30, 25, 20]));
            }
        }
        let out = remove_hair(&img, &LesionParams::default());
        for x in 5..115 {
            let p = out.image.get_pixel(x, 30);
            assert!(p[0] > 180, "hair pixel at {x},30 still {p:?}");
        }
        // The blob is untouched.
        assert_eq!(out.image.get_pixel(80, 80).0, [90, 60, 50]);
        assert_eq!(out.replaced.get_pixel(80, 80)[0], 0);
    }

    /// Skin with a dark mesh of thin lines (pigment network: 14-px cells, 4 closed, thin and long
    /// enough overall to pass DullRazor's test) and one dark
    /// hair beside it; with a holes limit the mesh stays and the hair goes. Light hair is
    /// found only with `hair_light`.
    fn skin_with_mesh_and_hairs() -> RgbImage {
        let skin = image::Rgb([200, 150, 130]);
        let mut img = RgbImage::from_pixel(160, 160, skin);
        for y in 20..62 {
            for x in 20..62 {
                if x % 14 < 2 || y % 14 < 2 {
                    img.put_pixel(x, y, image::Rgb([80, 50, 40]));
                }
            }
        }
        for x in 0..160 {
            img.put_pixel(x, 130, image::Rgb([30, 25, 20]));
            img.put_pixel(x, 131, image::Rgb([30, 25, 20]));
            img.put_pixel(x, 145, image::Rgb([250, 245, 240]));
        }
        img
    }

    #[test]
    fn a_mesh_is_not_hair_and_a_light_hair_is_found_when_asked() {
        let img = skin_with_mesh_and_hairs();
        let replaced =
            |params: &LesionParams, x, y| remove_hair(&img, params).replaced.get_pixel(x, y)[0];
        let plain = LesionParams::default();
        // DullRazor's own test takes the mesh for hair.
        let without = LesionParams {
            hair_max_holes: u32::MAX,
            ..plain.clone()
        };
        assert_eq!(
            replaced(&without, 42, 40),
            255,
            "mesh line replaced without the holes test"
        );
        let with = LesionParams {
            hair_max_holes: 2,
            ..plain.clone()
        };
        let out = remove_hair(&img, &with);
        assert_eq!(out.replaced.get_pixel(42, 40)[0], 0, "mesh kept");
        assert_eq!(out.replaced.get_pixel(80, 130)[0], 255, "dark hair removed");
        assert_eq!(
            out.replaced.get_pixel(80, 145)[0],
            0,
            "light hair ignored by default"
        );
        let light = LesionParams {
            hair_light: true,
            ..with
        };
        assert_eq!(
            replaced(&light, 80, 145),
            255,
            "light hair found with hair_light"
        );
        assert_eq!(replaced(&light, 42, 40), 0, "mesh still kept");
    }
}
