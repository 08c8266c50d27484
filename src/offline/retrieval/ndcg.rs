//! NDCG@K with graded relevance (Järvelin & Kekäläinen), the paper's measure: DCG@K =
//! Σ_{r=1..K} rel_r / log2(r + 1) over the returned order, divided by the same sum over
//! the ideal order (all relevances sorted). Same definition as scikit-learn's
//! `ndcg_score` with linear gains and no ties.

/// NDCG@K of `relevance` given in the order the system returned the items; `all`: the
/// relevances of every candidate (for the ideal order). K beyond the list is cut to it.
/// No relevant item at all: 0 (nothing could be found; scikit-learn returns 0 too).
pub fn ndcg_at(returned: &[f64], all: &[f64], k: usize) -> f64 {
    let dcg = |rels: &[f64]| -> f64 {
        rels.iter()
            .take(k)
            .enumerate()
            .map(|(r, rel)| rel / ((r + 2) as f64).log2())
            .sum()
    };
    let mut ideal = all.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let best = dcg(&ideal);
    if best > 0.0 {
        dcg(returned) / best
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        // Ideal order: perfect.
        assert_eq!(ndcg_at(&[3.0, 2.0, 1.0], &[3.0, 2.0, 1.0], 3), 1.0);
        // [1, 3, 2] vs ideal [3, 2, 1] at K=3:
        // DCG = 1 + 3/log2(3) + 2/2 ; IDCG = 3 + 2/log2(3) + 1/2.
        let l3 = 3f64.log2();
        let want = (1.0 + 3.0 / l3 + 1.0) / (3.0 + 2.0 / l3 + 0.5);
        assert!((ndcg_at(&[1.0, 3.0, 2.0], &[3.0, 2.0, 1.0], 3) - want).abs() < 1e-12);
        // K larger than the list, no relevant item.
        assert_eq!(ndcg_at(&[0.0, 0.0], &[0.0, 0.0], 10), 0.0);
    }
}
