//! One adapter layer for every parameter-efficient method: a frozen base projection plus
//! LoRA experts and an optional router, attached to the model's linear modules by name.
//!
//! * LoRA (Hu et al.): `f(x) = W0 x + s B A x`, `A: [r, in]`, `B: [out, r]`, with
//!   `s = alpha / r` (or `alpha / sqrt(r)` with rsLoRA), dropout on the adapter's input.
//!   `A` starts Kaiming-uniform, `B` at zero (PEFT's initialisation), so a new adapter is
//!   the identity.
//! * LoRA-MoE (paper A, Eq. 10-12): `f(x) = W0 x + sum_j R(x)_j s B_j A_j x` with the router
//!   `R(x) = softmax(x W_R)` (Eq. 11), per token; optional top-k keeps the k largest router
//!   weights (renormalised).

use crate::error::{LmError, Result};
use crate::grad::weight;
use candle_core::{DType, Device, Tensor, Var, D};
use fairrec_core::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The linear modules of a Llama-family block, the names adapters can target.
pub const TARGET_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The linear modules of a T5 block (`SelfAttention` / `EncDecAttention` `q`, `k`, `v`,
/// `o`; `DenseReluDense` `wi`, or `wi_0` and `wi_1` when gated, and `wo`).
pub const T5_TARGET_MODULES: [&str; 8] = ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"];

/// The T5 module a Llama-family target name stands for (`q_proj` -> `q`, `gate_proj` ->
/// `wi_0`, `up_proj` -> `wi_1`, `down_proj` -> `wo`), so that the methods' default targets
/// (`q_proj`, `v_proj`) mean T5's `q`, `v` (PEFT's default for T5); T5 names map to
/// themselves.
pub fn t5_target(name: &str) -> Option<&'static str> {
    Some(match name {
        "q_proj" => "q",
        "k_proj" => "k",
        "v_proj" => "v",
        "o_proj" => "o",
        "gate_proj" => "wi_0",
        "up_proj" => "wi_1",
        "down_proj" => "wo",
        other => T5_TARGET_MODULES.iter().find(|t| **t == other)?,
    })
}

/// What to attach.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdapterConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Scale by `alpha / sqrt(r)` instead of `alpha / r`.
    pub rslora: bool,
    /// Module names to adapt (`q_proj`, `v_proj`, `gate_proj`, ...).
    pub targets: Vec<String>,
    /// Number of LoRA experts (1: plain LoRA).
    pub experts: usize,
    /// Keep only the k largest router weights (MoE only).
    pub top_k: Option<usize>,
}

impl AdapterConfig {
    /// Plain LoRA on `targets`.
    pub fn lora(r: usize, alpha: f64, targets: &[&str]) -> Self {
        AdapterConfig {
            r,
            alpha,
            dropout: 0.0,
            rslora: false,
            targets: targets.iter().map(|s| s.to_string()).collect(),
            experts: 1,
            top_k: None,
        }
    }

    /// The scale `s` of the update.
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }
}

/// One LoRA expert.
#[derive(Debug)]
pub struct LoraExpert {
    /// `[r, in]`
    pub a: Var,
    /// `[out, r]`
    pub b: Var,
}

/// The trainable part attached to one linear module.
#[derive(Debug)]
pub struct Adapter {
    pub experts: Vec<LoraExpert>,
    /// `W_R` stored as `[experts, in]` (MoE only).
    pub router: Option<Var>,
    pub scale: f64,
    pub dropout: f64,
    pub top_k: Option<usize>,
    training: AtomicBool,
    /// Keep the router weights of training forward passes (see [`Adapter::take_routes`]).
    record: AtomicBool,
    routes: Mutex<Vec<Tensor>>,
    /// Source of dropout masks; reseeded per step by the trainer so that a run (and a
    /// resumed run) is reproducible.
    dropout_rng: Mutex<Rng>,
}

fn kaiming_uniform(rng: &mut Rng, rows: usize, cols: usize, device: &Device) -> Result<Tensor> {
    // PEFT: kaiming_uniform_(a = sqrt(5)) -> bound = sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(fan_in)
    let bound = 1.0 / (cols as f64).sqrt();
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| ((rng.f64() * 2.0 - 1.0) * bound) as f32)
        .collect();
    Ok(Tensor::from_vec(v, (rows, cols), device)?)
}

impl Adapter {
    /// A fresh adapter for a `[out, in]` projection.
    pub fn new(
        cfg: &AdapterConfig,
        in_dim: usize,
        out_dim: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self> {
        if cfg.r == 0 || cfg.experts == 0 {
            return Err(LmError::Invalid(
                "LoRA rank and expert count must be at least 1".into(),
            ));
        }
        let experts = (0..cfg.experts)
            .map(|_| {
                Ok(LoraExpert {
                    a: Var::from_tensor(&kaiming_uniform(rng, cfg.r, in_dim, device)?)?,
                    b: Var::from_tensor(&Tensor::zeros((out_dim, cfg.r), DType::F32, device)?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let router = if cfg.experts > 1 {
            Some(Var::from_tensor(&kaiming_uniform(
                rng,
                cfg.experts,
                in_dim,
                device,
            )?)?)
        } else {
            None
        };
        Ok(Adapter {
            experts,
            router,
            scale: cfg.scale(),
            dropout: cfg.dropout,
            top_k: cfg.top_k,
            training: AtomicBool::new(false),
            record: AtomicBool::new(false),
            routes: Mutex::new(Vec::new()),
            dropout_rng: Mutex::new(Rng::new(0)),
        })
    }

    /// Switch dropout on (training) or off (evaluation).
    pub fn set_training(&self, on: bool) {
        self.training.store(on, Ordering::Relaxed);
    }

    /// Keep (or stop keeping) the router weights of every training forward pass, with
    /// their graph, for a load-balance loss and usage logs. Whoever switches it on must
    /// drain them with [`Adapter::take_routes`] after each pass.
    pub fn record_routes(&self, on: bool) {
        self.record.store(on, Ordering::Relaxed);
        if !on {
            self.take_routes();
        }
    }

    /// The router weights `[.., experts]` recorded since the last call, oldest first.
    pub fn take_routes(&self) -> Vec<Tensor> {
        std::mem::take(&mut *self.routes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Restart the dropout masks from `rng`.
    pub fn reseed(&self, rng: Rng) {
        *self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner()) = rng;
    }

    /// Inverted dropout with a mask drawn from the adapter's own seeded stream.
    fn dropout(&self, x: &Tensor) -> Result<Tensor> {
        let p = self.dropout;
        let keep = 1.0 - p;
        let n = x.elem_count();
        let mut rng = self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner());
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if rng.f64() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok((x * mask)?)
    }

    /// Router weights `softmax(x W_R)` (Eq. 11), `[.., experts]`, top-k masked if asked.
    pub fn route(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let Some(r) = &self.router else {
            return Ok(None);
        };
        let w = candle_nn::ops::softmax(&x.broadcast_matmul(&weight(r).t()?)?, D::Minus1)?;
        let w = match self.top_k {
            Some(k) if k < self.experts.len() => {
                // mask = w >= k-th largest weight of the row; renormalise
                let sorted = w.detach().sort_last_dim(false)?.0;
                let kth = sorted.narrow(D::Minus1, k - 1, 1)?;
                let mask = w.broadcast_ge(&kth)?.to_dtype(DType::F32)?;
                let kept = (w * mask)?;
                kept.broadcast_div(&kept.sum_keepdim(D::Minus1)?)?
            }
            _ => w,
        };
        Ok(Some(w))
    }

    /// The adapter's contribution `sum_j R_j s B_j A_j x` for `x` `[.., in]`. The adapter
    /// keeps its variables in f32: a half-precision `x` is computed in f32 and the result
    /// cast back (what peft does with its default `autocast_adapter_dtype`).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() != DType::F32 {
            return Ok(self
                .forward_f32(&x.to_dtype(DType::F32)?)?
                .to_dtype(x.dtype())?);
        }
        self.forward_f32(x)
    }

    fn forward_f32(&self, x: &Tensor) -> Result<Tensor> {
        let (code, b) = self.factors(x)?;
        let y = code.matmul(&b.t()?)?;
        let mut out = x.dims().to_vec();
        *out.last_mut().expect("non-empty") = y.dim(1)?;
        Ok(y.reshape(out)?)
    }

    /// The adapter's contribution as two factors, `code b^T`: `code` `[rows, R]` (the
    /// rank-r codes `A_j x` of every row, each expert's scaled by its router weight) and
    /// `b` `[out, R]` (the `s B_j` side by side), for f32 `x` `[.., in]` (rows = every
    /// position). A fused frozen projection adds `code b^T` itself
    /// ([`crate::ops::frozen_linear_lowrank`]), so the `[rows, out]` product is not kept.
    pub fn factors(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let xd = if self.training.load(Ordering::Relaxed) && self.dropout > 0.0 {
            self.dropout(x)?
        } else {
            x.clone()
        };
        // One 2-D product over all rows (a batched product would also form one gradient
        // of A and B per batch row before summing them).
        let dims = x.dims().to_vec();
        let rows = x.elem_count() / dims[dims.len() - 1];
        let x2 = xd.reshape((rows, dims[dims.len() - 1]))?;
        // The scale goes on B (out x r), not on the output (rows x out).
        let scaled_b = |e: &LoraExpert| weight(&e.b) * self.scale;
        match self.route(x)? {
            None => {
                let e = &self.experts[0];
                Ok((x2.matmul(&weight(&e.a).t()?)?, scaled_b(e)?))
            }
            Some(w) => {
                if self.record.load(Ordering::Relaxed) && self.training.load(Ordering::Relaxed) {
                    self.routes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(w.clone());
                }
                // sum_j w_j (s B_j A_j x) = [s B_1 .. s B_E] [w_1 A_1 x; ..; w_E A_E x]: the
                // router weights scale the rank-r codes, and one product with the stacked
                // B's forms the output, so no expert's [rows, out] output is kept for
                // backward (E of them, plus the weighted copies and partial sums, were).
                let w = w.reshape((rows, self.experts.len()))?;
                let mut codes = Vec::with_capacity(self.experts.len());
                let mut bs = Vec::with_capacity(self.experts.len());
                for (j, e) in self.experts.iter().enumerate() {
                    let code = x2.matmul(&weight(&e.a).t()?)?;
                    codes.push(code.broadcast_mul(&w.narrow(1, j, 1)?)?);
                    bs.push(scaled_b(e)?);
                }
                Ok((Tensor::cat(&codes, 1)?, Tensor::cat(&bs, 1)?))
            }
        }
    }

    /// `s B A` (plain LoRA only), the update merged into the base weight.
    pub fn delta_weight(&self) -> Result<Tensor> {
        if self.router.is_some() {
            return Err(LmError::Invalid(
                "a routed mixture of experts cannot be merged into one weight".into(),
            ));
        }
        let e = &self.experts[0];
        Ok((e.b.as_tensor().matmul(e.a.as_tensor())? * self.scale)?)
    }

    /// Every trainable variable with its suffix (`lora_A.weight`, `lora_B.weight`, or
    /// `lora_A.{j}.weight` ... for experts, `router.weight`).
    pub fn vars(&self) -> Vec<(String, &Var)> {
        let mut out = Vec::new();
        let multi = self.experts.len() > 1;
        for (j, e) in self.experts.iter().enumerate() {
            let (a, b) = if multi {
                (format!("lora_A.{j}.weight"), format!("lora_B.{j}.weight"))
            } else {
                ("lora_A.weight".into(), "lora_B.weight".into())
            };
            out.push((a, &e.a));
            out.push((b, &e.b));
        }
        if let Some(r) = &self.router {
            out.push(("router.weight".into(), r));
        }
        out
    }
}
