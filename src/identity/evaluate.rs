//! Pairwise precision, recall and F1 of a clustering against the truth — the definition of
//! `shared/data/pairwise.py`: records missing from the prediction count as singletons.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairwiseScore {
    pub records: u64,
    pub true_pairs: u64,
    pub predicted_pairs: u64,
    pub true_positives: u64,
    pub missing: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

fn pairs<K: std::hash::Hash + Eq>(counts: &HashMap<K, u64>) -> u64 {
    counts.values().map(|n| n * n.saturating_sub(1) / 2).sum()
}

/// Score `predicted` (record → cluster) against `truth` (record → person).
pub fn pairwise(truth: &HashMap<String, String>, predicted: &HashMap<String, String>) -> PairwiseScore {
    let mut both: HashMap<(&str, &str), u64> = HashMap::new();
    let mut t: HashMap<&str, u64> = HashMap::new();
    let mut p: HashMap<&str, u64> = HashMap::new();
    let mut missing = 0;
    for (rid, person) in truth {
        let cluster = match predicted.get(rid) {
            Some(c) => c.as_str(),
            None => {
                missing += 1;
                rid.as_str() // a singleton of its own (record ids are unique)
            }
        };
        let cluster_key = if predicted.contains_key(rid) { cluster } else { rid.as_str() };
        *both.entry((person.as_str(), cluster_key)).or_default() += 1;
        *t.entry(person.as_str()).or_default() += 1;
        *p.entry(cluster_key).or_default() += 1;
    }
    let tp = pairs(&both);
    let (tpairs, ppairs) = (pairs(&t), pairs(&p));
    let precision = if ppairs > 0 { tp as f64 / ppairs as f64 } else { 1.0 };
    let recall = if tpairs > 0 { tp as f64 / tpairs as f64 } else { 1.0 };
    let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
    PairwiseScore {
        records: truth.len() as u64,
        true_pairs: tpairs,
        predicted_pairs: ppairs,
        true_positives: tp,
        missing,
        precision,
        recall,
        f1,
    }
}

impl std::fmt::Display for PairwiseScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "records={} true_pairs={} predicted_pairs={} tp={} missing={}",
            self.records, self.true_pairs, self.predicted_pairs, self.true_positives, self.missing
        )?;
        write!(f, "precision={:.4} recall={:.4} f1={:.4}", self.precision, self.recall, self.f1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &[(&str, &str)]) -> HashMap<String, String> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn scores_pairs_like_pairwise_py() {
        let truth = map(&[("r1", "p1"), ("r2", "p1"), ("r3", "p1"), ("r4", "p2"), ("r5", "p2")]);
        let pred = map(&[("r1", "a"), ("r2", "a"), ("r3", "b"), ("r4", "b")]);
        let s = pairwise(&truth, &pred);
        assert_eq!((s.true_pairs, s.predicted_pairs, s.true_positives, s.missing), (4, 2, 1, 1));
        assert!((s.precision - 0.5).abs() < 1e-9 && (s.recall - 0.25).abs() < 1e-9);
    }
}
