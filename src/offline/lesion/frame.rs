//! The black-frame mask M0 (paper §3.2, Fig. 5): the dark vignette or frame around the
//! bright disc of skin. Blur, erode with a large square (201×201 at 4000 px), threshold;
//! M0 pixels never count as lesion and are left out of Otsu and K-means.
//!
//! Thresholding the eroded image (`min over the square < t`) is the same as dilating the
//! thresholded image (`any pixel in the square < t`) with that square; the latter is what
//! is computed, because imageproc's binary dilation is a distance transform, O(pixels),
//! where a 201×201 grey erosion is 40 000 operations per pixel.

use image::{GrayImage, Luma};
use imageproc::distance_transform::Norm;
use imageproc::morphology::dilate;

use super::params::LesionParams;
use super::regions::Regions;

/// M0 as 0/255 for a grey image.
pub fn frame_mask(gray: &GrayImage, params: &LesionParams) -> GrayImage {
    let blurred = if params.frame_blur_sigma > 0.0 {
        imageproc::filter::gaussian_blur_f32(gray, params.frame_blur_sigma)
    } else {
        gray.clone()
    };
    let mut dark = GrayImage::from_fn(gray.width(), gray.height(), |x, y| {
        Luma([if blurred.get_pixel(x, y)[0] < params.frame_threshold {
            255
        } else {
            0
        }])
    });
    if params.frame_must_touch_border {
        dark = keep_border_components(&dark);
    }
    let radius = params.scaled_radius(params.frame_erosion, gray.width() as usize);
    if radius == 0 {
        dark
    } else {
        dilate(&dark, Norm::LInf, radius)
    }
}

/// The foreground (255) regions of `mask` that touch the image border.
pub fn keep_border_components(mask: &GrayImage) -> GrayImage {
    let (w, h) = mask.dimensions();
    let regions = Regions::of(mask);
    regions.mask_where(|l| regions.regions[l].touches_border(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dark_corners_are_frame_and_a_dark_centre_is_not() {
        let (w, h) = (200u32, 150u32);
        let gray = GrayImage::from_fn(w, h, |x, y| {
            let (dx, dy) = (x as f32 - 100.0, y as f32 - 75.0);
            let r = (dx * dx + dy * dy).sqrt();
            Luma([if (10.0..=90.0).contains(&r) { 180 } else { 5 }])
        });
        let params = LesionParams {
            size_reference_width: 0,
            frame_erosion: 5,
            frame_blur_sigma: 0.0,
            ..LesionParams::default()
        };
        let m0 = frame_mask(&gray, &params);
        assert_eq!(m0.get_pixel(0, 0)[0], 255);
        assert_eq!(
            m0.get_pixel(100, 75)[0],
            0,
            "the dark centre is a lesion, not frame"
        );
        // Grown by the erosion's half side (2) beyond the dark ring (r > 90).
        assert_eq!(m0.get_pixel(11, 75)[0], 255);
        assert_eq!(m0.get_pixel(14, 75)[0], 0);
    }
}
