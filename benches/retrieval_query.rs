//! Retrieval over 100 000 indexed images (issue 9's scale target), the way
//! `spectrald offline retrieve query` does it:
//!
//!     cargo bench --bench retrieval_query [-- IMAGES]
//!
//! 1. IMAGES result lines (10-term likelihoods: softmax of deterministic pseudo-random
//!    logits, like the satellite classifier's) are written into a fresh result store;
//! 2. the index is synced from them (first query after a big batch) and loaded again
//!    (every later query: nothing new to sync);
//! 3. 50 queries rank every image by HSBD and keep the 25 nearest, with one feedback
//!    round (matrix update + new dendrogram) each; Euclidean ranking of the same vectors
//!    is the reference the ratio is taken against.

use std::time::Instant;

use spectrald::offline::retrieval::index::Index;
use spectrald::offline::retrieval::ontology::Ontology;
use spectrald::offline::retrieval::search::{Metric, Retriever};
use spectrald::offline::retrieval::terms::Feedback;
use spectrald::offline::store::Store;

const TERMS: usize = 10;
const TOP: usize = 25;
const MODEL: &str = "bench@000000000000";

/// xorshift64*: deterministic, no dependency.
fn next(state: &mut u64) -> f64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

fn likelihoods(state: &mut u64) -> Vec<f64> {
    let logits: Vec<f64> = (0..TERMS).map(|_| 6.0 * next(state)).collect();
    let sum: f64 = logits.iter().map(|l| l.exp()).sum();
    logits.iter().map(|l| l.exp() / sum).collect()
}

fn percentile(mut ms: Vec<f64>, p: f64) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() - 1) as f64 * p).round() as usize]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let images: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let terms: Vec<String> = (0..TERMS).map(|t| format!("t{t}")).collect();
    // Two categories of five terms, three levels deep.
    let mut tree = String::from("[parents]\n");
    for (t, term) in terms.iter().enumerate() {
        tree += &format!("{term} = \"g{}\"\n", t / 2);
    }
    for g in 0..TERMS / 2 {
        tree += &format!("g{g} = \"c{}\"\n", g * 2 / 5);
    }
    let ontology = Ontology::parse(&tree, "bench")?;
    let mut retriever = Retriever::new(&terms, &ontology, None, 0.0, Feedback::default())?;

    let dir = tempfile::tempdir()?;
    let mut store = Store::open(&dir.path().join("results.sqlite"))?;
    let mut state = 0x9E37_79B9_7F4A_7C15;
    let t = Instant::now();
    let manifest: spectrald::infer::Manifest = serde_json::from_value(serde_json::json!({
        "name": "bench", "task": "classify", "version": "0", "file": "bench.onnx",
        "sha256": "000000000000", "input": {"name": "image", "shape": [-1, 3, 64, 64]},
        "outputs": [{"name": "probabilities", "shape": [-1, TERMS]}], "classes": terms,
    }))?;
    store.register_model(&manifest)?;
    store.insert_many(
        "classify",
        (0..images).map(|i| {
            let v = likelihoods(&mut state);
            let probabilities: serde_json::Map<_, _> = terms
                .iter()
                .zip(&v)
                .map(|(t, p)| (t.clone(), serde_json::json!(p)))
                .collect();
            let sha = format!("{i:064x}");
            let line =
                serde_json::json!({"input": format!("img{i}.png"), "probabilities": probabilities});
            (
                MODEL.to_owned(),
                format!("img{i}.png"),
                sha,
                line.to_string(),
            )
        }),
    )?;
    let insert_ms = ms(t);
    let t = Instant::now();
    let index = Index::load(&mut store, MODEL, &terms)?;
    let sync_ms = ms(t);
    let t = Instant::now();
    let index = {
        drop(index);
        Index::load(&mut store, MODEL, &terms)?
    };
    let load_ms = ms(t);
    assert_eq!(index.entries.len(), images);

    let vectors = || index.entries.iter().map(|e| e.vector.as_slice());
    let (mut hsbd, mut euclid, mut learn) = (Vec::new(), Vec::new(), Vec::new());
    for q in 0..50 {
        let query = &index.entries[(q * 7919) % images].vector;
        let t = Instant::now();
        let hits = retriever.rank(Metric::Hsbd, query, vectors(), TOP, |_| false);
        hsbd.push(ms(t));
        let t = Instant::now();
        std::hint::black_box(retriever.rank(Metric::Euclidean, query, vectors(), TOP, |_| false));
        euclid.push(ms(t));
        let t = Instant::now();
        let relevant: Vec<&[f64]> = hits[..3]
            .iter()
            .map(|h| index.entries[h.0].vector.as_slice())
            .collect();
        let irrelevant: Vec<&[f64]> = hits[22..]
            .iter()
            .map(|h| index.entries[h.0].vector.as_slice())
            .collect();
        retriever.learn(query, &relevant, &irrelevant);
        learn.push(ms(t));
    }
    let row = |name: &str, v: &[f64]| {
        println!(
            "{name:<40} {:>10.2} {:>10.2}",
            percentile(v.to_vec(), 0.5),
            percentile(v.to_vec(), 0.99)
        )
    };
    println!("{images} images, {TERMS} terms, top {TOP}");
    println!(
        "store: {insert_ms:.0} ms to write the results, index sync {sync_ms:.0} ms (first query after them), load {load_ms:.0} ms (later queries)"
    );
    println!("{:<40} {:>10} {:>10}", "per query", "p50 ms", "p99 ms");
    row("HSBD ranking", &hsbd);
    row("Euclidean ranking (reference)", &euclid);
    row("feedback round (matrix + dendrogram)", &learn);
    println!(
        "HSBD / Euclidean: {:.2}x",
        percentile(hsbd, 0.5) / percentile(euclid, 0.5)
    );
    Ok(())
}
