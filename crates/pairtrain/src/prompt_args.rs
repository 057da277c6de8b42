//! `--prompt` / `--prompt-name`: the text put before every input, as sentence-transformers'
//! `encode(prompt=…)` and `encode(prompt_name=…)`.

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug, Default, Clone)]
pub struct PromptArgs {
    /// Text put before every input (e5 models expect "query: "); default: the model folder's
    /// default prompt (config_sentence_transformers.json `default_prompt_name`); "" for none.
    #[arg(long, conflicts_with = "prompt_name")]
    pub prompt: Option<String>,
    /// One of the model's named prompts (config_sentence_transformers.json `prompts`, e.g.
    /// "query" or "document") put before every input.
    #[arg(long, value_name = "NAME")]
    pub prompt_name: Option<String>,
}

impl PromptArgs {
    /// Makes the chosen prompt `model`'s; an unknown name is an error listing the model's.
    pub fn apply(&self, model: &mut model::SentenceModel) -> Result<()> {
        if let Some(p) = &self.prompt {
            model.prompt = Some(p.clone()).filter(|p| !p.is_empty());
        }
        if let Some(name) = &self.prompt_name {
            model.use_prompt_name(name, "--prompt-name")?;
        }
        Ok(())
    }
}
