//! The training engine, independent of any method: the loop ([`trainer`]), the optimiser
//! ([`optim`]), the learning-rate schedule ([`schedule`]), checkpoints ([`checkpoint`]) and
//! the objectives' common ground ([`objective`]: the answer loss `L_LLM`, the `Objective`
//! trait, the load-balance loss).

pub mod checkpoint;
pub mod objective;
pub mod optim;
pub mod schedule;
pub mod trainer;
