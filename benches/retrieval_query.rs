//! Retrieval query latency over 100 000 indexed images (issue 9's scale target).
//!
//!     cargo bench --bench retrieval_query [-- IMAGES]
//!
//! Each image is a 10-term likelihood vector (softmax of deterministic pseudo-random
//! logits, like the satellite classifier's outputs). A query ranks every image by HSBD
//! (dendrogram over a 10×10 term dissimilarity matrix) and keeps the 25 nearest; the same
//! with plain Euclidean distance is the baseline. Median and p99 over 50 queries.

use std::time::Instant;

use spectrald::offline::retrieval::hsbd::Dendrogram;

const TERMS: usize = 10;
const TOP: usize = 25;

/// xorshift64*: deterministic, no dependency.
fn next(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

fn likelihoods(state: &mut u64) -> Vec<f64> {
    let logits: Vec<f64> = (0..TERMS).map(|_| 4.0 * next(state)).collect();
    let sum: f64 = logits.iter().map(|l| l.exp()).sum();
    logits.iter().map(|l| l.exp() / sum).collect()
}

fn top_k(scores: &mut [(f64, u32)]) -> Vec<u32> {
    let k = TOP.min(scores.len());
    scores.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
    let mut best = scores[..k].to_vec();
    best.sort_by(|a, b| a.0.total_cmp(&b.0));
    best.iter().map(|s| s.1).collect()
}

fn percentile(mut ms: Vec<f64>, p: f64) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let images: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut state = 0x9E37_79B9_7F4A_7C15;
    let index: Vec<Vec<f64>> = (0..images).map(|_| likelihoods(&mut state)).collect();
    let matrix: Vec<Vec<f64>> = (0..TERMS)
        .map(|i| {
            (0..TERMS)
                .map(|j| if i == j { 0.0 } else { next(&mut state) })
                .collect()
        })
        .collect();
    let symmetric: Vec<Vec<f64>> = (0..TERMS)
        .map(|i| {
            (0..TERMS)
                .map(|j| (matrix[i][j] + matrix[j][i]) / 2.0)
                .collect()
        })
        .collect();
    let started = Instant::now();
    let dendrogram = Dendrogram::build(&symmetric);
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut hsbd_ms = Vec::new();
    let mut euclid_ms = Vec::new();
    let mut scores = vec![(0.0, 0u32); images];
    for q in 0..50 {
        let query = &index[(q * 7919) % images];
        let t = Instant::now();
        for (i, v) in index.iter().enumerate() {
            scores[i] = (dendrogram.distance(query, v), i as u32);
        }
        std::hint::black_box(top_k(&mut scores));
        hsbd_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        for (i, v) in index.iter().enumerate() {
            let d: f64 = query.iter().zip(v).map(|(a, b)| (a - b).powi(2)).sum();
            scores[i] = (d, i as u32);
        }
        std::hint::black_box(top_k(&mut scores));
        euclid_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (h50, h99) = (percentile(hsbd_ms.clone(), 0.5), percentile(hsbd_ms, 0.99));
    let (e50, e99) = (
        percentile(euclid_ms.clone(), 0.5),
        percentile(euclid_ms, 0.99),
    );
    println!("{images} images, {TERMS} terms, top {TOP}; dendrogram built in {build_ms:.3} ms");
    println!("{:<28} {:>10} {:>10}", "ranking", "p50 ms", "p99 ms");
    println!("{:<28} {h50:>10.2} {h99:>10.2}", "HSBD (dendrogram)");
    println!("{:<28} {e50:>10.2} {e99:>10.2}", "Euclidean (baseline)");
    println!("HSBD / Euclidean: {:.2}x", h50 / e50);
}
