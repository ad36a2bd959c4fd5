//! Typed configuration of Llama-family decoders (Llama, Qwen2, SmolLM/SmolLM2), read from
//! an HF `config.json` or from GGUF metadata.

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
        Ok(cfg)
    }

    /// Key/value heads (grouped-query attention); defaults to the attention heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Dimension of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v have biases.
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type.as_deref() == Some("qwen2")
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
