//! Simulated relevance-feedback sessions over a labelled set, scored with NDCG@K as in
//! the paper (§3): every query ranks all the other images; a simulated user marks some
//! of the shown results relevant or irrelevant; the ranking is recomputed; NDCG@1..K is
//! averaged over the queries after each round.
//!
//! Graded relevance of an image to a query (the paper used a radiologists' reference
//! standard; here the labels and the ontology stand in for it): 2 same label, 1 same
//! ontology category (top-level branch), 0 otherwise.
//!
//! The simulated user, per round: among the top K shown and not marked before, up to
//! `marks` images of grade ≥ 1 marked relevant and up to `marks` of grade 0 irrelevant,
//! chosen at random (seeded) — the paper's users marked 3 + 3 on average.
//!
//! Baselines on the same vectors: Euclidean and cosine ranking; and Euclidean with the
//! classic Rocchio query-point feedback (α 1, β 0.75, γ 0.15) on the same marks, so the
//! paper's term-matrix learning is compared with the usual way of using feedback.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use super::RetrievalError;
use super::ndcg::ndcg_at;
use super::search::{Metric, Retriever};

/// An indexed image with its ground-truth label.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub input: String,
    pub label: String,
    pub vector: Vec<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Results shown per round, and the largest K scored.
    pub k: usize,
    pub rounds: usize,
    /// Relevant and irrelevant marks per round (each).
    pub marks: usize,
    pub queries: usize,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            k: 25,
            rounds: 3,
            marks: 3,
            queries: 10,
            seed: 0,
        }
    }
}

/// Mean NDCG@1..K of one method after one round.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub method: String,
    /// Whether this method's feedback learns the term matrix (so `term_pairs_moved` is
    /// its measure, not a constant 0).
    pub term_feedback: bool,
    /// Whether this curve is the term-group bound: an oracle estimate, not a method.
    pub bound: bool,
    pub round: usize,
    /// ndcg[K−1] = mean NDCG@K over the queries.
    pub ndcg: Vec<f64>,
    /// Mean marks given before this round was ranked (0 for round 0).
    pub marked_relevant: f64,
    pub marked_irrelevant: f64,
    /// Mean term pairs the term-matrix feedback moved before this round (0 otherwise).
    pub term_pairs_moved: f64,
}

impl Curve {
    pub fn at(&self, k: usize) -> f64 {
        self.ndcg[k.min(self.ndcg.len()) - 1]
    }

    /// The lowest NDCG over K = 1..K (the paper quotes "for all values of K").
    pub fn min(&self) -> f64 {
        self.ndcg.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub images: usize,
    pub queries: Vec<String>,
    pub k: usize,
    pub curves: Vec<Curve>,
}

/// Relevance of `label` to a query labelled `query`.
pub fn grade(query: &str, label: &str, category: &dyn Fn(&str) -> Option<String>) -> f64 {
    if query == label {
        2.0
    } else if category(query).is_some() && category(query) == category(label) {
        1.0
    } else {
        0.0
    }
}

/// Queries spread over the labels: a seeded shuffle of each label's images, then one of
/// each label in turn.
fn pick_queries(items: &[Labelled], count: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    let mut labels: Vec<&str> = items.iter().map(|i| i.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut pools: Vec<Vec<usize>> = labels
        .iter()
        .map(|l| {
            let mut pool: Vec<usize> = (0..items.len()).filter(|&i| items[i].label == *l).collect();
            shuffle(&mut pool, rng);
            pool
        })
        .collect();
    let mut picked = Vec::new();
    while picked.len() < count.min(items.len()) {
        for pool in pools.iter_mut() {
            if let Some(i) = pool.pop()
                && picked.len() < count
            {
                picked.push(i);
            }
        }
    }
    picked
}

fn shuffle(v: &mut [usize], rng: &mut Xoshiro256PlusPlus) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Up to `per_label` items of each label (0: all), a seeded random choice so runs
/// repeat; grouped by label in label order.
pub fn sample_per_label<T>(
    items: Vec<(T, String)>,
    per_label: usize,
    seed: u64,
) -> Vec<(T, String)> {
    let mut by_label: std::collections::BTreeMap<String, Vec<T>> = Default::default();
    for (item, label) in items {
        by_label.entry(label).or_default().push(item);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut out = Vec::new();
    for (label, mut group) in by_label {
        if per_label > 0 {
            let mut order: Vec<usize> = (0..group.len()).collect();
            shuffle(&mut order, &mut rng);
            order.truncate(per_label);
            order.sort_unstable();
            let mut slots: Vec<Option<T>> = group.drain(..).map(Some).collect();
            group = order.iter().filter_map(|&i| slots[i].take()).collect();
        }
        out.extend(group.into_iter().map(|item| (item, label.clone())));
    }
    out
}

/// Up to `n` of `candidates`, chosen at random.
fn choose(mut candidates: Vec<usize>, n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    shuffle(&mut candidates, rng);
    candidates.truncate(n);
    candidates
}

/// How the ranking is moved by feedback.
#[derive(Clone, Copy, PartialEq)]
enum Learner {
    /// The paper: penalties on the term matrix, new dendrogram.
    TermMatrix,
    /// Rocchio: the query vector moves towards relevant, away from irrelevant images.
    Rocchio,
    /// Both at once: the paper's term matrix and a Rocchio-moved query vector.
    TermMatrixAndRocchio,
    /// No feedback (a plain baseline: only round 0 is meaningful).
    None,
}

pub fn evaluate(
    items: &[Labelled],
    initial: &Retriever,
    category: impl Fn(&str) -> Option<String>,
    settings: Settings,
) -> Result<Report, RetrievalError> {
    if items.len() < 2 {
        return Err(RetrievalError::Invalid(format!(
            "retrieval evaluation needs at least 2 labelled images, got {}",
            items.len()
        )));
    }
    if settings.k == 0 {
        return Err(RetrievalError::Invalid("K must be at least 1".into()));
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.seed);
    let queries = pick_queries(items, settings.queries.max(1), &mut rng);
    let trial = Trial {
        items,
        initial,
        category: &category,
        k: settings.k.min(items.len() - 1),
        settings,
    };
    let methods = [
        ("hsbd + term feedback", Metric::Hsbd, Learner::TermMatrix),
        ("euclidean + rocchio", Metric::Euclidean, Learner::Rocchio),
        (
            "hsbd + term + rocchio",
            Metric::Hsbd,
            Learner::TermMatrixAndRocchio,
        ),
        ("euclidean", Metric::Euclidean, Learner::None),
        ("cosine", Metric::Cosine, Learner::None),
    ];
    let mut curves = Vec::new();
    for (name, metric, learner) in methods {
        curves.extend(trial.curves(name, metric, learner, &queries));
    }
    if peaked(items) {
        curves.push(trial.term_group_bound(&queries));
    }
    Ok(Report {
        images: items.len(),
        queries: queries.iter().map(|&q| items[q].input.clone()).collect(),
        k: trial.k,
        curves,
    })
}

/// Whether the vectors are a single-label classifier's (the top term holds ≥ 80 % of each
/// vector's mass on average): only then does grouping images by their top term describe
/// what a term matrix can reorder (the term-group bound).
fn peaked(items: &[Labelled]) -> bool {
    let share = |v: &[f64]| {
        let sum: f64 = v.iter().sum();
        if sum > 0.0 {
            v.iter().copied().fold(0.0, f64::max) / sum
        } else {
            0.0
        }
    };
    let mean = items.iter().map(|i| share(&i.vector)).sum::<f64>() / items.len().max(1) as f64;
    mean >= 0.8
}

/// One evaluation's fixed parts: the labelled set, the starting retriever, the grading.
struct Trial<'a> {
    items: &'a [Labelled],
    initial: &'a Retriever,
    category: &'a dyn Fn(&str) -> Option<String>,
    k: usize,
    settings: Settings,
}

/// NDCG sums per round and position, marks given and term pairs moved per round, over
/// queries.
struct Totals {
    ndcg: Vec<Vec<f64>>,
    marks: Vec<(usize, usize)>,
    moved: Vec<usize>,
}

impl Trial<'_> {
    /// One method over every query: its mean NDCG curve per feedback round.
    fn curves(
        &self,
        name: &str,
        metric: Metric,
        learner: Learner,
        queries: &[usize],
    ) -> Vec<Curve> {
        let rounds = if learner == Learner::None {
            0
        } else {
            self.settings.rounds
        };
        let mut totals = Totals {
            ndcg: vec![vec![0.0; self.k]; rounds + 1],
            marks: vec![(0, 0); rounds + 1],
            moved: vec![0; rounds + 1],
        };
        // Each method sees the same marking randomness.
        let mut marker = Xoshiro256PlusPlus::seed_from_u64(self.settings.seed ^ 0x5eed);
        for &q in queries {
            self.session(q, metric, learner, rounds, &mut marker, &mut totals);
        }
        let n = queries.len() as f64;
        totals
            .ndcg
            .into_iter()
            .enumerate()
            .map(|(round, sum)| Curve {
                method: name.to_owned(),
                term_feedback: matches!(
                    learner,
                    Learner::TermMatrix | Learner::TermMatrixAndRocchio
                ),
                bound: false,
                round,
                ndcg: sum.into_iter().map(|s| s / n).collect(),
                marked_relevant: totals.marks[round].0 as f64 / n,
                marked_irrelevant: totals.marks[round].1 as f64 / n,
                term_pairs_moved: totals.moved[round] as f64 / n,
            })
            .collect()
    }

    /// What any term-matrix feedback can at most reach when likelihood vectors are peaked
    /// ([`peaked`]):
    /// the images are grouped by their most likely term; HSBD between two identical
    /// vectors is 0 whatever the matrix, so the query's own group stays first (in HSBD
    /// order); the other groups follow by their mean grade (the labels as an oracle),
    /// each in HSBD order. An estimate of the most a learnt term matrix can reach, not a
    /// method (and not a proof: ordering groups by mean grade is not always the best order
    /// for NDCG@K); when it equals round 0, there is nothing for the matrix to learn.
    fn term_group_bound(&self, queries: &[usize]) -> Curve {
        let items = self.items;
        let top_term = |v: &[f64]| {
            (0..v.len())
                .max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a)))
                .unwrap_or(0)
        };
        let mut sums = vec![0.0; self.k];
        for &q in queries {
            let (grades, all) = self.grades(q);
            let ranked = self.initial.rank(
                Metric::Hsbd,
                &items[q].vector,
                items.iter().map(|i| i.vector.as_slice()),
                items.len(),
                |i| i == q,
            );
            let groups: Vec<usize> = ranked
                .iter()
                .map(|h| top_term(&items[h.0].vector))
                .collect();
            let mut mean = std::collections::HashMap::<usize, (f64, f64)>::new();
            for (h, &g) in ranked.iter().zip(&groups) {
                let e = mean.entry(g).or_default();
                e.0 += grades[h.0];
                e.1 += 1.0;
            }
            let own = top_term(&items[q].vector);
            let key = |g: usize| -> (bool, f64) {
                let (sum, n) = mean[&g];
                (g != own, -(sum / n))
            };
            let mut order: Vec<usize> = (0..ranked.len()).collect();
            // Stable: within a group, and between groups of equal mean, HSBD order stays.
            order.sort_by(|&a, &b| {
                let (ka, kb) = (key(groups[a]), key(groups[b]));
                ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
            });
            let returned: Vec<f64> = order.iter().map(|&i| grades[ranked[i].0]).collect();
            for (kk, sum) in sums.iter_mut().enumerate() {
                *sum += ndcg_at(&returned, &all, kk + 1);
            }
        }
        let n = queries.len() as f64;
        Curve {
            method: "term-group bound".into(),
            term_feedback: false,
            bound: true,
            round: 0,
            ndcg: sums.into_iter().map(|s| s / n).collect(),
            marked_relevant: 0.0,
            marked_irrelevant: 0.0,
            term_pairs_moved: 0.0,
        }
    }

    /// Each image's relevance to query `q`, and the grades of every candidate (all images
    /// but the query: what NDCG's ideal order is drawn from).
    fn grades(&self, q: usize) -> (Vec<f64>, Vec<f64>) {
        let grades: Vec<f64> = self
            .items
            .iter()
            .map(|i| grade(&self.items[q].label, &i.label, self.category))
            .collect();
        let candidates = (0..grades.len())
            .filter(|&i| i != q)
            .map(|i| grades[i])
            .collect();
        (grades, candidates)
    }

    /// One query and its feedback rounds, as a user marking results would run them.
    fn session(
        &self,
        q: usize,
        metric: Metric,
        learner: Learner,
        rounds: usize,
        marker: &mut Xoshiro256PlusPlus,
        totals: &mut Totals,
    ) {
        let items = self.items;
        let (grades, all) = self.grades(q);
        let mut retriever = self.initial.clone();
        let mut query = items[q].vector.clone();
        let mut marked = vec![false; items.len()];
        for round in 0..=rounds {
            let hits = retriever.rank(
                metric,
                &query,
                items.iter().map(|i| i.vector.as_slice()),
                self.k,
                |i| i == q,
            );
            let returned: Vec<f64> = hits.iter().map(|h| grades[h.0]).collect();
            for (kk, sum) in totals.ndcg[round].iter_mut().enumerate() {
                *sum += ndcg_at(&returned, &all, kk + 1);
            }
            if round == rounds {
                break;
            }
            let fresh = |want: bool| -> Vec<usize> {
                hits.iter()
                    .map(|h| h.0)
                    .filter(|&i| !marked[i] && (grades[i] >= 1.0) == want)
                    .collect()
            };
            let relevant = choose(fresh(true), self.settings.marks, marker);
            let irrelevant = choose(fresh(false), self.settings.marks, marker);
            for &i in relevant.iter().chain(&irrelevant) {
                marked[i] = true;
            }
            totals.marks[round + 1].0 += relevant.len();
            totals.marks[round + 1].1 += irrelevant.len();
            let vectors = |chosen: &[usize]| -> Vec<&[f64]> {
                chosen.iter().map(|&i| items[i].vector.as_slice()).collect()
            };
            let (rel, irr) = (vectors(&relevant), vectors(&irrelevant));
            match learner {
                Learner::TermMatrix => {
                    totals.moved[round + 1] += retriever.learn(&items[q].vector, &rel, &irr);
                }
                Learner::Rocchio => query = rocchio(&query, &rel, &irr),
                Learner::TermMatrixAndRocchio => {
                    totals.moved[round + 1] += retriever.learn(&items[q].vector, &rel, &irr);
                    query = rocchio(&query, &rel, &irr);
                }
                Learner::None => {}
            }
        }
    }
}

/// q' = q + 0.75·mean(relevant) − 0.15·mean(irrelevant), negatives clipped (likelihoods).
fn rocchio(query: &[f64], relevant: &[&[f64]], irrelevant: &[&[f64]]) -> Vec<f64> {
    let mean = |set: &[&[f64]], t: usize| -> f64 {
        if set.is_empty() {
            0.0
        } else {
            set.iter().map(|v| v[t]).sum::<f64>() / set.len() as f64
        }
    };
    (0..query.len())
        .map(|t| (query[t] + 0.75 * mean(relevant, t) - 0.15 * mean(irrelevant, t)).max(0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::retrieval::ontology::Ontology;
    use crate::offline::retrieval::terms::Feedback;

    #[test]
    fn grades_follow_label_then_category() {
        let cat = |l: &str| match l {
            "forest" | "crops" => Some("green".to_string()),
            "river" => Some("blue".to_string()),
            _ => None,
        };
        assert_eq!(grade("forest", "forest", &cat), 2.0);
        assert_eq!(grade("forest", "crops", &cat), 1.0);
        assert_eq!(grade("forest", "river", &cat), 0.0);
        assert_eq!(
            grade("x", "y", &cat),
            0.0,
            "unknown labels: only equality counts"
        );
    }

    #[test]
    fn too_few_images_and_zero_k_are_refused() {
        let o = Ontology::parse("[parents]\na = \"r\"\n", "o").unwrap();
        let r = Retriever::new(&["a".to_string()], &o, None, 0.0, Feedback::default()).unwrap();
        let one = vec![Labelled {
            input: "x".into(),
            label: "a".into(),
            vector: vec![1.0],
        }];
        assert!(evaluate(&one, &r, |_| None, Settings::default()).is_err());
        let two = vec![one[0].clone(), one[0].clone()];
        let zero = Settings {
            k: 0,
            ..Settings::default()
        };
        assert!(evaluate(&two, &r, |_| None, zero).is_err());
        // K beyond the index is cut to the other images.
        let report = evaluate(&two, &r, |_| None, Settings::default()).unwrap();
        assert_eq!(report.k, 1);
        assert!(report.curves.iter().all(|c| c.ndcg.len() == 1));
    }
}
