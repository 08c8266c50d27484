//! The term dissimilarity matrix M (paper, Step 2 and §2.2): the image-based part s_Γ —
//! Euclidean distance between the terms' visual signatures (a linear classifier's weight
//! rows: the direction of each term's separating hyperplane) normalised by the largest —
//! mixed with the ontological part s_Θ, ½ + ½ by default; and its update from relevance
//! feedback.

use super::RetrievalError;
use super::ontology::normalise;

/// s_Γ over the rows of `signatures` (one per term), normalised to [0, 1].
pub fn signature_dissimilarities(signatures: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let mut m: Vec<Vec<f64>> = signatures
        .iter()
        .map(|a| {
            signatures
                .iter()
                .map(|b| {
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| f64::from(x - y).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect()
        })
        .collect();
    normalise(&mut m);
    m
}

/// w·image + (1 − w)·ontology (the paper: w = ½).
pub fn combine(
    image: &[Vec<f64>],
    ontology: &[Vec<f64>],
    image_weight: f64,
) -> Result<Vec<Vec<f64>>, RetrievalError> {
    if image.len() != ontology.len() {
        return Err(RetrievalError::Length {
            what: "ontology matrix",
            expected: image.len(),
            got: ontology.len(),
        });
    }
    Ok(image
        .iter()
        .zip(ontology)
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| image_weight * x + (1.0 - image_weight) * y)
                .collect()
        })
        .collect())
}

/// Relevance-feedback settings (paper: ρ = 0.1; τ and the "comparable likelihood" margin
/// are not given).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Feedback {
    /// Penalty added to or taken from a dissimilarity.
    pub rho: f64,
    /// A query term takes part when its likelihood exceeds τ.
    pub tau: f64,
    /// Likelihoods within this margin are "comparable".
    pub margin: f64,
}

impl Default for Feedback {
    fn default() -> Self {
        Feedback {
            rho: 0.1,
            tau: 0.2,
            margin: 0.2,
        }
    }
}

/// One round of the paper's penalty algorithm: for each query term i with a_i > τ, and in
/// each relevant (irrelevant) image each term j of the same category with |a_j − a_i| ≤
/// margin, M[i][j] (and M[j][i]) decreases (increases) by ρ, kept within [0, 1].
/// The diagonal stays 0. Returns how many updates changed a value (one already at 0 or 1
/// does not count; a pair moved twice counts twice): 0 says the marks taught the matrix
/// nothing.
pub fn apply_feedback(
    m: &mut [Vec<f64>],
    categories: &[String],
    query: &[f64],
    relevant: &[&[f64]],
    irrelevant: &[&[f64]],
    settings: Feedback,
) -> usize {
    let k = m.len();
    let mut moved = 0;
    for (images, sign) in [(relevant, -1.0), (irrelevant, 1.0)] {
        for image in images {
            for i in (0..k).filter(|&i| query[i] > settings.tau) {
                for j in 0..k {
                    if j == i
                        || categories[j] != categories[i]
                        || (image[j] - query[i]).abs() > settings.margin
                    {
                        continue;
                    }
                    let v = (m[i][j] + sign * settings.rho).clamp(0.0, 1.0);
                    if v != m[i][j] {
                        moved += 1;
                    }
                    m[i][j] = v;
                    m[j][i] = v;
                }
            }
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_distances_are_euclidean_and_normalised() {
        let m = signature_dissimilarities(&[vec![0.0, 0.0], vec![3.0, 4.0], vec![0.0, 1.0]]);
        assert_eq!(m[0][1], 1.0); // 5 / 5
        assert!((m[0][2] - 0.2).abs() < 1e-12);
        assert!((m[1][2] - 18f64.sqrt() / 5.0).abs() < 1e-12);
    }

    #[test]
    fn feedback_pulls_terms_of_relevant_images_closer_and_pushes_irrelevant_ones_away() {
        let mut m = vec![
            vec![0.0, 0.5, 0.5],
            vec![0.5, 0.0, 0.5],
            vec![0.5, 0.5, 0.0],
        ];
        let cats: Vec<String> = ["a", "a", "a"].iter().map(|s| s.to_string()).collect();
        let query = [0.9, 0.05, 0.05];
        let relevant = [0.1, 0.85, 0.05];
        let irrelevant = [0.0, 0.0, 0.8];
        let moved = apply_feedback(
            &mut m,
            &cats,
            &query,
            &[&relevant],
            &[&irrelevant],
            Feedback::default(),
        );
        assert_eq!(moved, 2, "one pair pulled, one pushed");
        assert!((m[0][1] - 0.4).abs() < 1e-12, "{m:?}");
        assert!((m[0][2] - 0.6).abs() < 1e-12, "{m:?}");
        assert_eq!(m[1][2], 0.5, "terms the query does not hold are left alone");
        assert_eq!(m[0][0], 0.0);
    }
}
