//! How a prompt text becomes the text a model reads: the model's chat template (a Jinja
//! template from `tokenizer_config.json` or GGUF metadata, rendered with minijinja), or the
//! raw `Input: {prompt}\nOutput:` form; and which answer strings ("Yes" or " Yes") follow
//! it. Shared by the local scorer ([`crate::score`]) and anything that sends prompt texts
//! to a served model.

use crate::error::{LmError, Result};

/// A compiled chat template.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
}

impl ChatTemplate {
    pub fn new(source: &str) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| LmError::Tokenizer(format!("chat template: {e}")))?;
        Ok(ChatTemplate { env })
    }

    /// The conversation `(role, content)` rendered, with the assistant's generation prompt
    /// appended when `generation_prompt` (no BOS or EOS text: the tokenizer adds none).
    pub fn render(&self, messages: &[(&str, &str)], generation_prompt: bool) -> Result<String> {
        let t = self
            .env
            .get_template("chat")
            .map_err(|e| LmError::Tokenizer(e.to_string()))?;
        let messages: Vec<minijinja::Value> = messages
            .iter()
            .map(|(role, content)| minijinja::context! { role => role, content => content })
            .collect();
        t.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => generation_prompt,
            bos_token => "", eos_token => "",
        })
        .map_err(|e| LmError::Tokenizer(format!("chat template: {e}")))
    }
}

/// The text fed to the model for one prompt: the prompt as the user message of `template`
/// with the generation prompt, or `Input: {prompt}\nOutput:` without a template.
pub fn render_prompt(template: Option<&ChatTemplate>, prompt: &str) -> Result<String> {
    match template {
        Some(t) => t.render(&[("user", prompt)], true),
        None => Ok(format!("Input: {prompt}\nOutput:")),
    }
}

/// Whether the answer tokens carry a leading space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnswerSpace {
    Auto,
    Leading,
    None,
}

impl AnswerSpace {
    /// The answer strings (Yes, No): after a chat template the assistant turn starts on a
    /// new line ("Yes"); after a raw prompt ending in `Output:` a space comes first (" Yes").
    /// `Auto` picks by `chat`; `Leading` / `None` force one form.
    pub fn answers(self, chat: bool) -> (&'static str, &'static str) {
        let leading = match self {
            AnswerSpace::Leading => true,
            AnswerSpace::None => false,
            AnswerSpace::Auto => !chat,
        };
        if leading {
            (" Yes", " No")
        } else {
            ("Yes", "No")
        }
    }
}

impl std::str::FromStr for AnswerSpace {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => AnswerSpace::Auto,
            "leading" => AnswerSpace::Leading,
            "none" => AnswerSpace::None,
            other => {
                return Err(LmError::Invalid(format!(
                    "--answer-space `{other}`: expected auto, leading or none"
                )))
            }
        })
    }
}
