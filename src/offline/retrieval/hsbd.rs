//! The hierarchical semantic-based distance (HSBD, Kurtz et al.): terms are merged in the
//! order of an agglomerative (AHC) dendrogram over the term dissimilarity matrix; at each
//! level the two likelihood vectors are coarsened (merged terms' values summed) and their
//! Manhattan distance taken; HSBD is the mean of that series over the k levels (level 0:
//! the plain Manhattan distance; level k−1: |ΣA − ΣB|). The paper says the series is
//! "fused" without the formula; the mean keeps HSBD on the Manhattan scale.

/// A dendrogram as its merges, in order: each merges two clusters, named by the index of
/// their first-created member slot (term indices for leaves; see [`Dendrogram::build`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Dendrogram {
    pub terms: usize,
    /// (kept cluster, absorbed cluster, linkage dissimilarity) per merge.
    pub merges: Vec<(usize, usize, f64)>,
}

impl Dendrogram {
    /// Average-linkage AHC over a symmetric k×k dissimilarity matrix. Ties break towards
    /// the lowest indices, so the same matrix always gives the same tree. O(k³), k is the
    /// vocabulary (tens of terms).
    pub fn build(m: &[Vec<f64>]) -> Dendrogram {
        let k = m.len();
        let mut members: Vec<Vec<usize>> = (0..k).map(|i| vec![i]).collect();
        let mut alive: Vec<bool> = vec![true; k];
        let mut merges = Vec::with_capacity(k.saturating_sub(1));
        let linkage = |a: &[usize], b: &[usize]| -> f64 {
            let sum: f64 = a
                .iter()
                .flat_map(|&i| b.iter().map(move |&j| m[i][j]))
                .sum();
            sum / (a.len() * b.len()) as f64
        };
        for _ in 1..k {
            let mut best: Option<(usize, usize, f64)> = None;
            for a in (0..k).filter(|&a| alive[a]) {
                for b in (a + 1..k).filter(|&b| alive[b]) {
                    let d = linkage(&members[a], &members[b]);
                    if best.is_none_or(|(_, _, bd)| d < bd) {
                        best = Some((a, b, d));
                    }
                }
            }
            let Some((a, b, d)) = best else { break };
            let absorbed = std::mem::take(&mut members[b]);
            members[a].extend(absorbed);
            alive[b] = false;
            merges.push((a, b, d));
        }
        Dendrogram { terms: k, merges }
    }

    /// HSBD between two likelihood vectors of length `terms`.
    pub fn distance(&self, a: &[f64], b: &[f64]) -> f64 {
        let mut diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let mut level = diff.iter().map(|d| d.abs()).sum::<f64>();
        let mut total = level;
        for &(kept, absorbed, _) in &self.merges {
            level -= diff[kept].abs() + diff[absorbed].abs();
            diff[kept] += diff[absorbed];
            diff[absorbed] = 0.0;
            level += diff[kept].abs();
            total += level;
        }
        total / (self.merges.len() + 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_follow_the_closest_terms_and_distance_is_hand_checked() {
        // Terms 0 and 1 are alike, 2 is far from both.
        let m = vec![
            vec![0.0, 0.1, 0.9],
            vec![0.1, 0.0, 0.8],
            vec![0.9, 0.8, 0.0],
        ];
        let d = Dendrogram::build(&m);
        assert_eq!(d.merges.len(), 2);
        assert_eq!((d.merges[0].0, d.merges[0].1), (0, 1));
        assert!(
            (d.merges[1].2 - 0.85).abs() < 1e-12,
            "average of 0.9 and 0.8"
        );
        // A = (1, 0, 0), B = (0, 1, 0): levels |1|+|−1|+0 = 2, then {0,1}: 0, then all: 0.
        assert!((d.distance(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0]) - 2.0 / 3.0).abs() < 1e-12);
        // A = (1, 0, 0), C = (0, 0, 1): 2, then |1|+|−1| = 2, then 0 → 4/3: farther, as
        // the dendrogram says terms 0 and 2 are less alike than 0 and 1.
        assert!((d.distance(&[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0]) - 4.0 / 3.0).abs() < 1e-12);
        assert_eq!(d.distance(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]), 0.0);
    }
}
