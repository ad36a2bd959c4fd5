//! Inference without a graph. candle records every op whose inputs include a trainable
//! variable, and the recorded graph keeps every intermediate alive until the output is
//! dropped; with adapters attached, scoring a batch would hold all activations (measured:
//! 15 GB peak for an audit of SmolLM2 with LoRA, 0.9 GB without). Inside [`no_grad`] the
//! model reads its weights detached, so no graph is built.

use candle_core::Tensor;
use std::cell::Cell;
use std::thread::LocalKey;

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with the thread-local flag `key` set to `value`, restoring its previous value
/// afterwards, even on panic (also [`crate::ops::reference`]'s switch).
pub(crate) fn with_flag<T>(
    key: &'static LocalKey<Cell<bool>>,
    value: bool,
    f: impl FnOnce() -> T,
) -> T {
    struct Restore(&'static LocalKey<Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(key, key.with(|c| c.replace(value)));
    f()
}

/// Run `f` with gradient tracking off on this thread (restored afterwards, even on panic).
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    with_flag(&NO_GRAD, true, f)
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
