//! fairrec over HTTP, in OpenAI's API ([`protocol`]):
//!
//! * [`client`]: P(Yes) of prompts from any OpenAI-compatible server (vLLM, TGI,
//!   llama.cpp's server, Ollama, hosted APIs): from the log-probabilities of the answer's
//!   first token, or from the share of sampled answers; with requests in flight in
//!   parallel, retries with backoff, and an on-disk response cache that lets a killed
//!   audit resume without resending anything.
//! * [`audit`]: an audit's prompts scored through the client.
//! * [`lists`]: FaiRLLM's list audit: ranked lists asked for through the client, parsed
//!   and matched to a dataset's catalogue.
//! * [`server`]: `fairrec serve`, the same API over fairrec's own engine.

pub mod audit;
pub mod client;
pub mod error;
pub mod hub;
pub mod lists;
pub mod protocol;
pub mod server;

pub use error::{Result, ServeError};
