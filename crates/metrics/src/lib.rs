//! Model-agnostic metrics of fairrec: anything that writes a predictions JSONL file can be
//! audited. No tensor code.
//!
//! * [`classification`]: F1, precision, recall at a threshold, AUC (Mann-Whitney).
//! * [`fairness`]: paper A's GD (Eq. 2), Rate (Eq. 3) and the squared Rate of its tables.
//! * [`stereotype`]: paper B's stereotype-aware fairness (our precise reading of its prose);
//!   [`stereo_dist`]: its items' z-score distribution (Figure 3).
//! * [`lists`]: FaiRLLM's ranked-list fairness (SNSR, SNSV).
//! * [`audit`]: all of it over a predictions file, with bootstrap confidence intervals.
//! * [`predictions`]: the predictions JSONL format; [`join`]: prepared samples as the audit's
//!   context; [`file`]: `metrics.json`; [`report`]: Markdown and self-contained HTML with
//!   SVG charts from an audit.

pub mod audit;
pub mod classification;
pub mod compare;
pub mod error;
pub mod fairness;
pub mod file;
pub mod join;
pub mod lists;
pub mod predictions;
pub mod report;
pub mod stereo_dist;
pub mod stereotype;

pub use audit::{audit, AuditConfig, Context, Metrics, StereotypeInput};
pub use error::{MetricsError, Result};
pub use file::{Inputs, MetricsFile};
pub use predictions::{parse_predictions, parse_predictions_bytes, read_predictions, Prediction};
