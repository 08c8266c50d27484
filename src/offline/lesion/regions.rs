//! Connected regions of a 0/255 mask with the per-region facts the pipelines ask about:
//! area and bounding box (hair: long and thin?; frame and M1: touching the border?) and
//! the number of holes (hair: a curve, or a mesh like pigment network?). Labelling is
//! imageproc's; this gathers the facts in two passes. imageproc has no Euler number, so
//! the holes come from Gray's bit-quad counts, written here.

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
    /// Background areas it encloses (4-connected holes of an 8-connected region).
    pub holes: usize,
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
            holes: 0,
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
        for (l, euler) in euler_numbers(&labels, n).into_iter().enumerate().skip(1) {
            // One component: Euler number = 1 − holes.
            regions[l].holes = (1 - euler).max(0) as usize;
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

/// The 8-connectivity Euler number of each label's pixels, from the 2×2 windows over the
/// image padded with background (Gray 1971): E = (Q1 − Q3 − 2·QD) / 4, Q1 windows holding
/// one pixel of the label, Q3 three, QD two on a diagonal.
fn euler_numbers(labels: &ImageBuffer<Luma<u32>, Vec<u32>>, n: usize) -> Vec<i64> {
    let (w, h) = (labels.width() as i64, labels.height() as i64);
    let at = |x: i64, y: i64| -> u32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0
        } else {
            labels.as_raw()[(y * w + x) as usize]
        }
    };
    let mut quads = vec![0i64; n + 1];
    for y in -1..h {
        for x in -1..w {
            let window = [at(x, y), at(x + 1, y), at(x, y + 1), at(x + 1, y + 1)];
            for (i, &l) in window.iter().enumerate() {
                // Each label once per window: at its first slot.
                if l == 0 || window[..i].contains(&l) {
                    continue;
                }
                let on = window.map(|v| v == l);
                let count = on.iter().filter(|&&b| b).count();
                quads[l as usize] += match count {
                    1 => 1,
                    3 => -1,
                    2 if on[0] == on[3] => -2,
                    _ => 0,
                };
            }
        }
    }
    quads.into_iter().map(|q| q / 4).collect()
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
        assert_eq!((block.holes, dot.holes), (0, 0));
    }

    #[test]
    fn holes_of_a_ring_a_grid_and_a_curve() {
        // A 5×5 ring (one hole), a 3×3-cell grid of lines (9 holes), a diagonal curve (0);
        // 8-connected diagonal steps do not close a hole.
        let mut m = GrayImage::new(40, 20);
        for i in 0..5 {
            for (x, y) in [(i, 0), (i, 4), (0, i), (4, i)] {
                m.put_pixel(x, y, Luma([255]));
            }
        }
        for i in 0..13 {
            for k in 0..4 {
                m.put_pixel(10 + 4 * k, 2 + i, Luma([255]));
                m.put_pixel(10 + i, 2 + 4 * k, Luma([255]));
            }
        }
        for i in 0..15 {
            m.put_pixel(25 + i, i, Luma([255]));
        }
        let r = Regions::of(&m);
        let holes = |x, y| r.regions[r.labels.get_pixel(x, y)[0] as usize].holes;
        assert_eq!(holes(0, 0), 1);
        assert_eq!(holes(10, 2), 9);
        assert_eq!(holes(25, 0), 0);
    }
}
