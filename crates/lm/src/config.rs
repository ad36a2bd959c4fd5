//! Typed configuration of Llama-family decoders (Llama, Qwen2, SmolLM/SmolLM2, and
//! Baichuan2-7B's layout), read from an HF `config.json` or from GGUF metadata.

/// The fields of an HF `config.json` that the model uses.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// q/k/v projections carry biases (Qwen2 always does).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Baichuan's positions, `rope` or `alibi` (a key of ours; absent: as vLLM tells the
    /// checkpoints apart, rotary when `hidden_size` is 4,096 (Baichuan2-7B), ALiBi
    /// otherwise (the 13B models)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding: Option<String>,
    /// Baichuan2's NormHead, every head row scaled to unit L2 norm (a key of ours; absent:
    /// on when `vocab_size` is Baichuan2's 125,696, as vLLM decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_head: Option<bool>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    4096
}

impl LlamaConfig {
    /// Parse an HF `config.json`. transformers >= 5 writes the rotary base inside
    /// `rope_parameters`; older versions write `rope_theta` at the top. Rotary scaling
    /// (`llama3`, `yarn`, `linear`, ...) is not implemented and is refused rather than
    /// silently ignored.
    pub fn from_hf_json(text: &str) -> std::result::Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut cfg: LlamaConfig = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        for key in ["rope_parameters", "rope_scaling"] {
            let Some(p) = v.get(key).filter(|p| !p.is_null()) else {
                continue;
            };
            let kind = p
                .get("rope_type")
                .or_else(|| p.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("default");
            if kind != "default" {
                return Err(format!(
                    "`{key}` asks for rotary scaling `{kind}`, which fairrec does not implement"
                ));
            }
            if let Some(t) = p.get("rope_theta").and_then(|t| t.as_f64()) {
                cfg.rope_theta = t;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The architecture families this code runs (`model_type`).
    pub const FAMILIES: [&'static str; 3] = ["llama", "qwen2", "baichuan"];

    /// Check that the numbers describe a model this code can run: every size positive,
    /// the heads dividing evenly (query heads into key/value groups, the hidden size into
    /// heads unless `head_dim` is given), an even head dimension (the rotary half-split),
    /// finite positive `rms_norm_eps` and `rope_theta`, and a Llama-family `model_type`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(format!("`{name}` is 0; it must be at least 1"));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(format!(
                "`num_attention_heads` ({}) is not a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "`hidden_size` ({}) is not a multiple of `num_attention_heads` ({}) and no `head_dim` is given",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let hd = self.head_dim();
        if hd == 0 || !hd.is_multiple_of(2) {
            return Err(format!(
                "the head dimension is {hd}; rotary embeddings need a positive even one"
            ));
        }
        for (name, v) in [
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_theta", self.rope_theta),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("`{name}` is {v}; it must be finite and positive"));
            }
        }
        if let Some(o) = self
            .baichuan_positions()
            .filter(|p| !["rope", "alibi"].contains(p))
        {
            return Err(format!(
                "`position_embedding` `{o}`: expected rope or alibi"
            ));
        }
        match self.model_type.as_deref() {
            Some(t) if !Self::FAMILIES.contains(&t) => Err(format!(
                "`model_type` `{t}` is not a model this code runs (it runs {})",
                Self::FAMILIES.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// Key/value heads (grouped-query attention); defaults to the attention heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Dimension of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Baichuan (`model_type` `baichuan`): q, k and v in one `W_pack` projection.
    pub fn is_baichuan(&self) -> bool {
        self.model_type.as_deref() == Some("baichuan")
    }

    /// Baichuan's positions: `position_embedding`, else rotary at the 7B's `hidden_size`
    /// 4,096 and ALiBi otherwise (the 13B models), as vLLM decides; `None` for others.
    fn baichuan_positions(&self) -> Option<&str> {
        self.is_baichuan().then(|| {
            let by_size = if self.hidden_size == 4096 {
                "rope"
            } else {
                "alibi"
            };
            self.position_embedding.as_deref().unwrap_or(by_size)
        })
    }

    /// Whether attention takes ALiBi biases instead of rotary positions (Baichuan-13B).
    pub fn alibi(&self) -> bool {
        self.baichuan_positions() == Some("alibi")
    }

    /// Whether the head's rows are scaled to unit norm before use (Baichuan2's NormHead).
    pub fn norm_head(&self) -> bool {
        self.is_baichuan() && self.norm_head.unwrap_or(self.vocab_size == 125_696)
    }

    /// Whether q/k/v have biases.
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type.as_deref() == Some("qwen2")
    }

    /// The configuration of a named architecture (the HF `config.json` values):
    /// `smollm2-135m`, `qwen2-0.5b`, `qwen2-1.5b` or `qwen2-7b` (benchmarks and random
    /// checkpoints of those shapes).
    pub fn named(name: &str) -> Result<Self, String> {
        let mut c = LlamaConfig::tiny(49152);
        let (h, i, l, nh, nkv, v, theta, tied, qwen) = match name {
            "smollm2-135m" => (576, 1536, 30, 9, 3, 49152, 100_000.0, true, false),
            "qwen2-0.5b" => (896, 4864, 24, 14, 2, 151_936, 1_000_000.0, true, true),
            "qwen2-1.5b" => (1536, 8960, 28, 12, 2, 151_936, 1_000_000.0, true, true),
            "qwen2-7b" => (3584, 18944, 28, 28, 4, 152_064, 1_000_000.0, false, true),
            o => {
                return Err(format!(
                    "`{o}`: expected smollm2-135m, qwen2-0.5b, qwen2-1.5b or qwen2-7b"
                ))
            }
        };
        c.hidden_size = h;
        c.intermediate_size = i;
        c.num_hidden_layers = l;
        c.num_attention_heads = nh;
        c.num_key_value_heads = Some(nkv);
        c.vocab_size = v;
        c.rope_theta = theta;
        c.tie_word_embeddings = tied;
        c.rms_norm_eps = if qwen { 1e-6 } else { 1e-5 };
        c.model_type = Some(if qwen { "qwen2" } else { "llama" }.into());
        c.max_position_embeddings = 8192;
        Ok(c)
    }

    /// A tiny configuration for tests and the quickstart.
    pub fn tiny(vocab_size: usize) -> Self {
        LlamaConfig {
            vocab_size,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            attention_bias: false,
            model_type: Some("llama".into()),
            max_position_embeddings: 2048,
            position_embedding: None,
            norm_head: None,
        }
    }

    /// Parameter count of the base model.
    pub fn parameters(&self) -> usize {
        let (h, i, hd) = (self.hidden_size, self.intermediate_size, self.head_dim());
        let q = h * self.num_attention_heads * hd;
        let kv = 2 * h * self.kv_heads() * hd;
        let bias = if self.qkv_bias() {
            (self.num_attention_heads + 2 * self.kv_heads()) * hd
        } else {
            0
        };
        let layer = q + kv + bias + self.num_attention_heads * hd * h + 3 * h * i + 2 * h;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        self.vocab_size * h + self.num_hidden_layers * layer + h + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_this_code_cannot_run_are_refused_with_the_field() {
        let ok = LlamaConfig::tiny(100);
        assert!(ok.validate().is_ok());
        let bad = |f: &dyn Fn(&mut LlamaConfig), field: &str| {
            let mut c = ok.clone();
            f(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(field), "{e}");
        };
        bad(&|c| c.num_attention_heads = 0, "num_attention_heads");
        bad(&|c| c.num_hidden_layers = 0, "num_hidden_layers");
        bad(&|c| c.num_key_value_heads = Some(3), "num_key_value_heads");
        bad(&|c| c.hidden_size = 66, "hidden_size");
        bad(&|c| c.head_dim = Some(7), "head dimension");
        bad(&|c| c.rms_norm_eps = f64::NAN, "rms_norm_eps");
        bad(&|c| c.rope_theta = -1.0, "rope_theta");
        bad(&|c| c.model_type = Some("gpt2".into()), "gpt2");
        let text = r#"{"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 0}"#;
        assert!(LlamaConfig::from_hf_json(text)
            .unwrap_err()
            .contains("num_attention_heads"));
    }
}
