//! Classification metrics of the Yes/No task: precision, recall and F1 at a threshold on
//! P(Yes), and AUC.
//!
//! * precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN);
//!   each is undefined (`None`) when its denominator is 0, never NaN.
//! * AUC (Mann-Whitney U): the probability that a random positive scores above a random
//!   negative, ties counting 1/2; `U / (n_pos n_neg)` with mid-ranks. Undefined without
//!   both classes.

/// Confusion counts (as f64 so that bootstrap weights can be summed in).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Confusion {
    pub tp: f64,
    pub fp: f64,
    pub tn: f64,
    pub fn_: f64,
}

impl Confusion {
    /// Count one prediction.
    pub fn add(&mut self, label: bool, predicted: bool, weight: f64) {
        match (label, predicted) {
            (true, true) => self.tp += weight,
            (false, true) => self.fp += weight,
            (false, false) => self.tn += weight,
            (true, false) => self.fn_ += weight,
        }
    }

    /// Sum of two confusion matrices, each scaled.
    pub fn add_scaled(&mut self, other: &Confusion, w: f64) {
        self.tp += w * other.tp;
        self.fp += w * other.fp;
        self.tn += w * other.tn;
        self.fn_ += w * other.fn_;
    }

    pub fn n(&self) -> f64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    pub fn f1(&self) -> Option<f64> {
        ratio(2.0 * self.tp, 2.0 * self.tp + self.fp + self.fn_)
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Confusion matrix of `(label, p_yes)` pairs at `threshold` (P(Yes) >= threshold is Yes).
pub fn confusion<'a>(
    pairs: impl IntoIterator<Item = (bool, f64)> + 'a,
    threshold: f64,
) -> Confusion {
    let mut c = Confusion::default();
    for (label, p) in pairs {
        c.add(label, p >= threshold, 1.0);
    }
    c
}

/// AUC by the Mann-Whitney statistic with mid-ranks for ties.
pub fn auc(pairs: &[(bool, f64)]) -> Option<f64> {
    let n_pos = pairs.iter().filter(|(l, _)| *l).count();
    let n_neg = pairs.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut v: Vec<(f64, bool)> = pairs.iter().map(|&(l, p)| (p, l)).collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1].0 == v[i].0 {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0; // ranks are 1-based
        rank_sum_pos += mid * v[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUC by brute force over all positive-negative pairs.
    fn auc_pairs(pairs: &[(bool, f64)]) -> Option<f64> {
        let pos: Vec<f64> = pairs.iter().filter(|x| x.0).map(|x| x.1).collect();
        let neg: Vec<f64> = pairs.iter().filter(|x| !x.0).map(|x| x.1).collect();
        if pos.is_empty() || neg.is_empty() {
            return None;
        }
        let mut s = 0.0;
        for p in &pos {
            for n in &neg {
                s += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        Some(s / (pos.len() * neg.len()) as f64)
    }

    #[test]
    fn auc_matches_all_pairs_with_ties() {
        let mut r = fairrec_core::Rng::new(1);
        for _ in 0..50 {
            let n = 1 + r.below(40) as usize;
            // scores on a coarse grid to force ties
            let pairs: Vec<(bool, f64)> = (0..n)
                .map(|_| (r.below(2) == 1, r.below(5) as f64 / 4.0))
                .collect();
            let (a, b) = (auc(&pairs), auc_pairs(&pairs));
            match (a, b) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{a} {b}"),
                (None, None) => {}
                _ => panic!("{a:?} {b:?}"),
            }
        }
        assert_eq!(auc(&[(true, 0.5), (false, 0.5)]), Some(0.5));
        assert_eq!(auc(&[(true, 0.9), (false, 0.1)]), Some(1.0));
        assert_eq!(auc(&[(true, 0.9)]), None);
    }

    #[test]
    fn f1_precision_recall_by_hand() {
        // labels: T T T F F ; preds: T F T T F -> TP 2, FN 1, FP 1, TN 1
        let c = confusion(
            [
                (true, 0.9),
                (true, 0.2),
                (true, 0.5),
                (false, 0.7),
                (false, 0.1),
            ],
            0.5,
        );
        assert_eq!((c.tp, c.fn_, c.fp, c.tn), (2.0, 1.0, 1.0, 1.0));
        assert_eq!(c.precision(), Some(2.0 / 3.0));
        assert_eq!(c.recall(), Some(2.0 / 3.0));
        assert_eq!(c.f1(), Some(4.0 / 6.0));
        // threshold is inclusive
        assert_eq!(confusion([(true, 0.5)], 0.5).tp, 1.0);
        // no positives and no positive predictions: all undefined, not NaN
        let none = confusion([(false, 0.1), (false, 0.2)], 0.5);
        assert_eq!(
            (none.precision(), none.recall(), none.f1()),
            (None, None, None)
        );
        // positives all missed: F1 = 0 (defined), precision undefined
        let missed = confusion([(true, 0.1)], 0.5);
        assert_eq!(
            (missed.f1(), missed.precision(), missed.recall()),
            (Some(0.0), None, Some(0.0))
        );
    }
}
