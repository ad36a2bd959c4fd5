//! Helpers shared by the metrics crate's integration tests.

use fairrec_metrics::Prediction;

/// A prediction of sample `id` in `variant` with no context of its own.
pub fn pred(id: &str, variant: &str, label: bool, p: f64) -> Prediction {
    Prediction {
        sample_id: id.into(),
        variant: variant.parse().unwrap(),
        label,
        p_yes: p,
        attributes: None,
        user_id: None,
        target: None,
        history: None,
        censored: false,
    }
}
