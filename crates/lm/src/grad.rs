//! Inference without a graph. candle records every op whose inputs include a trainable
//! variable, and the recorded graph keeps every intermediate alive until the output is
//! dropped; with adapters attached, scoring a batch would hold all activations (measured:
//! 15 GB peak for an audit of SmolLM2 with LoRA, 0.9 GB without). Inside [`no_grad`] the
//! model reads its weights detached, so no graph is built.

use candle_core::Tensor;
use std::cell::Cell;

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        NO_GRAD.with(|c| c.set(self.0));
    }
}

/// Run `f` with gradient tracking off on this thread (restored afterwards, even on panic).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    let _restore = Restore(NO_GRAD.with(|c| c.replace(true)));
    f()
}

/// Whether gradient tracking is on for this thread.
pub fn enabled() -> bool {
    !NO_GRAD.with(|c| c.get())
}

/// A weight as the forward pass should read it: detached inside [`no_grad`].
pub fn weight(t: &Tensor) -> Tensor {
    if enabled() {
        t.clone()
    } else {
        t.detach()
    }
}
