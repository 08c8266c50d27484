//! The term hierarchy and the ontological dissimilarity between two terms (paper, Step 2):
//!
//! s_Θ(a, b) = log(√(pathlen(a, b) · CS(a, b)) + γ) / ω,  CS(a, b) = D_c − depth(LCA(a, b))
//!
//! pathlen is the number of edges between the terms in the tree, LCA their lowest common
//! ancestor, D_c the depth of their common cluster (the deepest node of the top-level
//! branch both belong to; the whole tree's depth when they are in different branches), γ
//! keeps the log defined (γ = 1: identical terms are at 0), ω the largest value over all
//! pairs, so values lie in [0, 1].
//!
//! File format (TOML): one table `parents`, `term = "parent"`; a term that is nobody's child
//! and has no parent is a root. Several roots are joined under an implicit one.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::RetrievalError;

#[derive(Debug, Clone)]
pub struct Ontology {
    /// Node names; index 0 is the (possibly implicit) root.
    names: Vec<String>,
    parent: Vec<Option<usize>>,
    depth: Vec<usize>,
    index: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    parents: BTreeMap<String, String>,
}

const IMPLICIT_ROOT: &str = "(root)";

impl Ontology {
    /// Reads and parses an ontology file.
    pub fn read(path: &std::path::Path) -> Result<Ontology, RetrievalError> {
        let text = std::fs::read_to_string(path).map_err(|e| RetrievalError::Ontology {
            path: path.display().to_string(),
            message: format!(
                "cannot read it ({e}); write the term hierarchy there (docs/retrieval.md), fix the model manifest's \"ontology\" field, or pass --ontology FILE"
            ),
        })?;
        Ontology::parse(&text, &path.display().to_string())
    }

    /// Parses the TOML text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Ontology, RetrievalError> {
        let err = |message: String| RetrievalError::Ontology {
            path: path.to_owned(),
            message,
        };
        let file: File = toml::from_str(text).map_err(|e| err(e.to_string().replace('\n', " ")))?;
        let mut names = vec![IMPLICIT_ROOT.to_owned()];
        let mut index = HashMap::from([(IMPLICIT_ROOT.to_owned(), 0)]);
        for (child, parent) in &file.parents {
            for name in [child, parent] {
                if !index.contains_key(name) {
                    index.insert(name.clone(), names.len());
                    names.push(name.clone());
                }
            }
        }
        let mut parent = vec![None; names.len()];
        for (child, p) in &file.parents {
            if child == p {
                return Err(err(format!("{child:?} is its own parent")));
            }
            parent[index[child]] = Some(index[p]);
        }
        for node in parent.iter_mut().skip(1) {
            node.get_or_insert(0);
        }
        // Depths by walking up; a walk longer than the node count is a cycle.
        let mut depth = vec![0; names.len()];
        for start in 1..names.len() {
            let (mut node, mut steps) = (start, 0);
            while let Some(p) = parent[node] {
                node = p;
                steps += 1;
                if steps > names.len() {
                    return Err(err(format!(
                        "cycle through {:?}; every chain of parents must end at a root",
                        names[start]
                    )));
                }
            }
            depth[start] = steps;
        }
        Ok(Ontology {
            names,
            parent,
            depth,
            index,
        })
    }

    pub fn contains(&self, term: &str) -> bool {
        self.index.contains_key(term)
    }

    fn id(&self, term: &str) -> Result<usize, RetrievalError> {
        self.index
            .get(term)
            .copied()
            .ok_or_else(|| RetrievalError::UnknownTerm(term.to_owned()))
    }

    fn ancestors(&self, mut node: usize) -> Vec<usize> {
        let mut out = vec![node];
        while let Some(p) = self.parent[node] {
            out.push(p);
            node = p;
        }
        out
    }

    /// The top-level branch (child of the root) a node belongs to; the root for itself.
    fn branch(&self, node: usize) -> usize {
        let chain = self.ancestors(node);
        if chain.len() >= 2 {
            chain[chain.len() - 2]
        } else {
            0
        }
    }

    /// The deepest depth below (and including) `top`.
    fn max_depth_under(&self, top: usize) -> usize {
        (0..self.names.len())
            .filter(|&n| top == 0 || self.ancestors(n).contains(&top))
            .map(|n| self.depth[n])
            .max()
            .unwrap_or(0)
    }

    /// (edges between a and b, depth of their LCA, the category of the pair for CS).
    fn relation(&self, a: usize, b: usize) -> (usize, usize, usize) {
        let up_a = self.ancestors(a);
        let up_b = self.ancestors(b);
        let lca = up_a.iter().copied().find(|n| up_b.contains(n)).unwrap_or(0);
        let path = self.depth[a] + self.depth[b] - 2 * self.depth[lca];
        let cluster = if self.branch(a) == self.branch(b) {
            self.branch(a)
        } else {
            0
        };
        (path, self.depth[lca], cluster)
    }

    /// Unnormalised s_Θ with γ = 1.
    fn raw(&self, a: usize, b: usize) -> f64 {
        let (path, lca_depth, cluster) = self.relation(a, b);
        let dc = self.max_depth_under(cluster);
        let cs = dc.saturating_sub(lca_depth);
        ((path * cs) as f64).sqrt().ln_1p()
    }

    /// The k×k matrix of s_Θ over `terms`, normalised by its largest value (ω).
    pub fn dissimilarities(&self, terms: &[String]) -> Result<Vec<Vec<f64>>, RetrievalError> {
        let ids = terms
            .iter()
            .map(|t| self.id(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut m: Vec<Vec<f64>> = ids
            .iter()
            .map(|&a| ids.iter().map(|&b| self.raw(a, b)).collect())
            .collect();
        normalise(&mut m);
        Ok(m)
    }

    /// The category of a term for relevance feedback: its top-level branch.
    pub fn category(&self, term: &str) -> Result<String, RetrievalError> {
        Ok(self.names[self.branch(self.id(term)?)].clone())
    }
}

/// Divides every entry by the largest (ω); an all-zero matrix stays zero.
pub fn normalise(m: &mut [Vec<f64>]) {
    let max = m.iter().flatten().copied().fold(0.0, f64::max);
    if max > 0.0 {
        for v in m.iter_mut().flatten() {
            *v /= max;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = r#"
[parents]
vegetation = "land"
water = "land"
forest = "vegetation"
crops = "vegetation"
river = "water"
sea = "water"
"#;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn siblings_are_closer_than_cousins_and_values_are_hand_checked() {
        let o = Ontology::parse(TREE, "t.toml").unwrap();
        let m = o
            .dissimilarities(&names(&["forest", "crops", "river"]))
            .unwrap();
        // land is depth 1 (under the implicit root), vegetation/water 2, leaves 3.
        // forest–crops: path 2, LCA vegetation (depth 2), one branch (land) whose deepest
        // node is at 3: CS = 1 → ln(1 + √2). forest–river: path 4, LCA land (1), CS 2 →
        // ln(1 + √8), the largest, so ω = ln(1 + √8).
        let omega = (1.0 + 8f64.sqrt()).ln();
        assert!((m[0][1] - (1.0 + 2f64.sqrt()).ln() / omega).abs() < 1e-12);
        assert!((m[0][2] - 1.0).abs() < 1e-12);
        assert_eq!(m[0][0], 0.0);
        assert_eq!(m[1][0], m[0][1]);
        assert_eq!(o.category("river").unwrap(), "land");
    }

    #[test]
    fn cycles_self_parents_and_unknown_terms_are_named() {
        let e =
            Ontology::parse("[parents]\na = \"b\"\nb = \"c\"\nc = \"a\"\n", "o.toml").unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = Ontology::parse("[parents]\na = \"a\"\n", "o.toml").unwrap_err();
        assert!(e.to_string().contains("its own parent"), "{e}");
        let o = Ontology::parse(TREE, "t.toml").unwrap();
        let e = o
            .dissimilarities(&names(&["forest", "desert"]))
            .unwrap_err();
        assert_eq!(e, RetrievalError::UnknownTerm("desert".into()));
        let e = Ontology::parse("[parent]\na = \"b\"\n", "o.toml").unwrap_err();
        assert!(e.to_string().contains("o.toml"), "{e}");
    }
}
