//! Learning-rate schedules: linear warmup from 0 to the peak over `warmup` steps, then
//! constant, linear decay to 0, or cosine decay to 0 at `total` steps (transformers'
//! `get_linear_schedule_with_warmup` / `get_cosine_schedule_with_warmup`).

/// The decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decay {
    Constant,
    Linear,
    Cosine,
}

impl std::str::FromStr for Decay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(Decay::Constant),
            "linear" => Ok(Decay::Linear),
            "cosine" => Ok(Decay::Cosine),
            o => Err(format!(
                "schedule `{o}`: expected constant, linear or cosine"
            )),
        }
    }
}

/// Learning rate of optimizer step `step` (0-based) out of `total`.
pub fn lr_at(peak: f64, decay: Decay, warmup: u64, total: u64, step: u64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    match decay {
        Decay::Constant => peak,
        Decay::Linear => peak * (1.0 - progress),
        Decay::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        // warmup 4 steps of 10 total: 0.25, 0.5, 0.75, 1.0 of the peak
        assert_eq!(lr_at(1.0, Decay::Linear, 4, 10, 0), 0.25);
        assert_eq!(lr_at(1.0, Decay::Linear, 4, 10, 3), 1.0);
        assert_eq!(lr_at(1.0, Decay::Linear, 4, 10, 4), 1.0);
        assert!((lr_at(1.0, Decay::Linear, 4, 10, 7) - 0.5).abs() < 1e-12);
        assert!((lr_at(1.0, Decay::Cosine, 4, 10, 7) - 0.5).abs() < 1e-12);
        assert!(
            (lr_at(1.0, Decay::Cosine, 4, 10, 5)
                - 0.5 * (1.0 + (std::f64::consts::PI / 6.0).cos()))
            .abs()
                < 1e-12
        );
        assert_eq!(lr_at(2.0, Decay::Constant, 0, 10, 9), 2.0);
        assert_eq!(lr_at(1.0, Decay::Linear, 0, 10, 10), 0.0);
    }
}
