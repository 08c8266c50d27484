//! Connected regions of a 0/255 mask with the per-region facts the pipelines ask about:
//! area and bounding box (hair: long and thin?; frame and M1: touching the border?).
//! Labelling is imageproc's; this only gathers the facts in one pass.

use image::{GrayImage, ImageBuffer, Luma};
use imageproc::region_labelling::{Connectivity, connected_components};

/// One 8-connected region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub area: usize,
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Region {
    /// Whether any of its pixels lies on the edge of a `width`×`height` image (its
    /// bounding box reaches the edge exactly when one of its pixels does).
    pub fn touches_border(&self, width: u32, height: u32) -> bool {
        self.x0 == 0 || self.y0 == 0 || self.x1 + 1 == width || self.y1 + 1 == height
    }

    /// The bounding box's diagonal, in pixels; 0 for an empty region (the background
    /// slot, whose box is still the inverted initial one).
    pub fn extent(&self) -> f64 {
        if self.area == 0 {
            return 0.0;
        }
        f64::from(self.x1 - self.x0 + 1).hypot(f64::from(self.y1 - self.y0 + 1))
    }
}

pub struct Regions {
    /// Region label per pixel; 0 is the background.
    pub labels: ImageBuffer<Luma<u32>, Vec<u32>>,
    /// Indexed by label; entry 0 (the background) has area 0.
    pub regions: Vec<Region>,
}

impl Regions {
    /// The 8-connected regions of the non-zero pixels of `mask`.
    pub fn of(mask: &GrayImage) -> Regions {
        let labels = connected_components(mask, Connectivity::Eight, Luma([0u8]));
        let n = labels.as_raw().iter().copied().max().unwrap_or(0) as usize;
        let empty = Region {
            area: 0,
            x0: u32::MAX,
            y0: u32::MAX,
            x1: 0,
            y1: 0,
        };
        let mut regions = vec![empty; n + 1];
        for (x, y, l) in labels.enumerate_pixels() {
            if l[0] == 0 {
                continue;
            }
            let r = &mut regions[l[0] as usize];
            r.area += 1;
            r.x0 = r.x0.min(x);
            r.y0 = r.y0.min(y);
            r.x1 = r.x1.max(x);
            r.y1 = r.y1.max(y);
        }
        Regions { labels, regions }
    }

    /// A 0/255 mask of the pixels whose region `keep` selects (by label).
    pub fn mask_where(&self, keep: impl Fn(usize) -> bool) -> GrayImage {
        let (w, h) = self.labels.dimensions();
        let raw = self
            .labels
            .as_raw()
            .iter()
            .map(|&l| if l > 0 && keep(l as usize) { 255 } else { 0 })
            .collect();
        GrayImage::from_raw(w, h, raw).unwrap_or_else(|| GrayImage::new(w, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_boxes_and_border_contact() {
        // 6×4: a 2×2 block touching the left edge, a single pixel inside.
        let mut m = GrayImage::new(6, 4);
        for (x, y) in [(0, 1), (1, 1), (0, 2), (1, 2), (4, 1)] {
            m.put_pixel(x, y, Luma([255]));
        }
        let r = Regions::of(&m);
        assert_eq!(r.regions.len(), 3);
        let block = r.regions[r.labels.get_pixel(0, 1)[0] as usize];
        let dot = r.regions[r.labels.get_pixel(4, 1)[0] as usize];
        assert_eq!(
            (block.area, block.x0, block.y0, block.x1, block.y1),
            (4, 0, 1, 1, 2)
        );
        assert!(block.touches_border(6, 4));
        assert!(!dot.touches_border(6, 4));
        let only_dot = r.mask_where(|l| r.regions[l].area == 1);
        assert_eq!(only_dot.as_raw().iter().filter(|&&v| v > 0).count(), 1);
    }
}
