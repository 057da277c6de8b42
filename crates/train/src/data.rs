//! The recipe's `[[data]]` entries turned into the streaming pipeline of crate `pairs`, and its
//! token batches turned into tensors.

use crate::recipe::Recipe;
use crate::step::{Column, TrainBatch};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use model::SentenceModel;
use pairs::{BadRowPolicy, BatchTokenizer, DatasetSpec, Loader, LoaderConfig, Sampler};

/// The datasets of a recipe: globs expanded, probabilities from the weights, or from the row
/// counts when `[train] temperature` is set (rows not given in the recipe are counted now).
pub fn dataset_specs(recipe: &Recipe) -> Result<Vec<DatasetSpec>> {
    let t = &recipe.train;
    let mut specs = Vec::new();
    let mut rows = Vec::new();
    for (i, d) in recipe.data.iter().enumerate() {
        let files = crate::sources::data_files(&d.path)?;
        let name = d.name.clone().unwrap_or_else(|| format!("data{i}"));
        if t.temperature.is_some() && d.weight.is_some() {
            bail!("[[data]] {name}: give weights or [train] temperature, not both");
        }
        if t.temperature.is_some() {
            rows.push(match d.rows {
                Some(r) => r,
                None => {
                    eprintln!(
                        "counting the rows of {name} for temperature sampling \
                         (put `rows = N` in its [[data]] entry to skip this)"
                    );
                    let policy: BadRowPolicy = t.on_bad_row.parse().map_err(anyhow::Error::msg)?;
                    pairs::stats::stats(&files, policy, 2, &|_| {})?.rows
                }
            });
        }
        specs.push(DatasetSpec {
            name,
            files,
            weight: d.weight.unwrap_or(1.0),
            shuffle_buffer: d.shuffle_buffer.unwrap_or(t.shuffle_buffer),
            columns: d.columns.clone(),
            shape: Some(recipe.loss.row_shape()),
        });
    }
    if let Some(temp) = t.temperature {
        if !temp.is_finite() || temp <= 0.0 {
            bail!("[train] temperature must be above 0");
        }
        let p = pairs::sampler::probabilities(&[], Some((&rows, temp)));
        for (s, p) in specs.iter_mut().zip(p) {
            s.weight = p;
        }
    }
    Ok(specs)
}

/// Starts the loader for `recipe`, tokenizing with `tokenizer`.
pub fn start_loader(recipe: &Recipe, tokenizer: BatchTokenizer) -> Result<Loader> {
    let t = &recipe.train;
    let cfg = pairs::SamplerConfig {
        batch_size: t.batch_size,
        datasets_per_batch: t.datasets_per_batch,
        seed: t.seed,
        shuffle: t.shuffle,
        policy: t.on_bad_row.parse().map_err(anyhow::Error::msg)?,
        dedup: recipe.dedup(),
    };
    let sampler = Sampler::new(dataset_specs(recipe)?, cfg)?;
    Ok(Loader::start(
        sampler,
        tokenizer,
        LoaderConfig {
            workers: t.tokenize_workers,
            prefetch: t.prefetch,
        },
    ))
}

/// The loader's tokenizer for `recipe`, from the model folders alone (no weights): the model's,
/// with its prompt; when distilling, also the teacher's (with the teacher's prompt) for the
/// sources in column 0.
pub fn recipe_tokenizer(recipe: &Recipe) -> Result<BatchTokenizer> {
    let side = |dir: &str, max: Option<usize>, prompt: &Option<String>| -> Result<BatchTokenizer> {
        let dir = &model::resolve_folder(std::path::Path::new(dir))?;
        let (tok, pad) = model::load_tokenizer(dir, max)
            .with_context(|| format!("loading the tokenizer of {}", dir.display()))?;
        let prompt = match prompt {
            Some(p) => Some(p.clone()),
            None => model::read_default_prompt(dir)?,
        };
        Ok(tokenizer_for(&tok, pad, recipe.train.pad_to_multiple_of)?.with_prefix(prompt)?)
    };
    let m = &recipe.model;
    let prompt = match (&m.prompt, &m.default_prompt_name) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(name)) => {
            let base = model::resolve_folder(std::path::Path::new(&m.base))?;
            Some(named_prompt(recipe, &base, name)?)
        }
        (None, None) => None,
    };
    let mut tokenizer =
        side(&m.base, m.max_seq_length, &prompt)?.with_column_prompts(recipe.column_prompts())?;
    // A cached teacher needs no tokens: its embeddings are looked up by the source text.
    if let Some(t) = recipe.teacher.as_ref().filter(|t| !t.cache) {
        tokenizer = tokenizer.with_teacher(side(&t.model, t.max_seq_length, &t.prompt)?);
    }
    Ok(tokenizer)
}

/// The prompt `[model] default_prompt_name` names: one of `[model] prompts`, else of the base
/// folder's; an error names the key and the names there are.
pub fn named_prompt(recipe: &Recipe, base: &std::path::Path, name: &str) -> Result<String> {
    let (mut prompts, _) = model::read_prompts(base)?;
    prompts.extend(recipe.model.prompts.clone().unwrap_or_default());
    prompts.get(name).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "[model] default_prompt_name \"{name}\" is not a prompt of [model] prompts or of {} \
             (there: {})",
            base.display(),
            if prompts.is_empty() {
                "none".to_string()
            } else {
                prompts.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        )
    })
}

/// The loader's tokenizer for loaded models (the trainer's): `model`'s with its prompt and each
/// dataset's column prompts (`prompts`, in `[[data]]` order) and, when given, `teacher`'s with
/// the teacher's prompt for the sources in column 0. The same as `recipe_tokenizer` builds
/// from the folders, without reading the tokenizer files again.
pub fn loader_tokenizer(
    model: &SentenceModel,
    prompts: Vec<pairs::ColumnPrompts>,
    teacher: Option<&SentenceModel>,
    multiple_of: usize,
) -> Result<BatchTokenizer> {
    let mut tokenizer = batch_tokenizer(model, multiple_of)?
        .with_prefix(model.prompt.clone())?
        .with_column_prompts(prompts)?;
    if let Some(t) = teacher {
        tokenizer =
            tokenizer.with_teacher(batch_tokenizer(t, multiple_of)?.with_prefix(t.prompt.clone())?);
    }
    Ok(tokenizer)
}

/// The model's tokenizer, truncating at its max_seq_length, padding with its pad id.
pub fn batch_tokenizer(model: &SentenceModel, multiple_of: usize) -> Result<BatchTokenizer> {
    tokenizer_for(&model.tokenizer, model.pad_id(), multiple_of)
}

pub fn tokenizer_for(
    tok: &model::TextTokenizer,
    pad_id: u32,
    multiple_of: usize,
) -> Result<BatchTokenizer> {
    BatchTokenizer::new(tok.inner().clone(), tok.max_len(), pad_id, multiple_of)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}: cannot set up the tokenizer", tok.path().display()))
}

/// The teacher's embeddings [rows, D] of this rank's sources (`TokenBatch::teacher`), no
/// gradient.
pub fn teacher_embeddings(teacher: &SentenceModel, col: pairs::TokenColumn) -> Result<Tensor> {
    let rows = col.lengths.len();
    let mask = Tensor::from_vec(col.mask(), (rows, col.len), &teacher.device)?;
    let ids = Tensor::from_vec(col.ids, (rows, col.len), &teacher.device)?;
    Ok(teacher
        .embed_padded(teacher.encoder.as_ref(), &ids, &mask, None)?
        .detach())
}

/// Tensors for this rank's rows of a token batch, on the model's device.
pub fn to_train_batch(model: &SentenceModel, b: pairs::TokenBatch) -> Result<TrainBatch> {
    let rows = b.local_rows();
    let mut columns = Vec::with_capacity(b.columns.len());
    let mut texts = Vec::with_capacity(b.columns.len());
    for c in b.columns {
        let mask = Tensor::from_vec(c.mask(), (rows, c.len), &model.device)?;
        let ids = Tensor::from_vec(c.ids, (rows, c.len), &model.device)?;
        let prompt_lengths =
            (!model.include_prompt && !c.prompt_lengths.is_empty()).then_some(c.prompt_lengths);
        columns.push(Column {
            ids,
            mask,
            prompt_lengths,
        });
        texts.push(c.texts);
    }
    Ok(TrainBatch {
        columns,
        texts,
        offset: b.offset,
        targets: None,
        guide: None,
        scores: b.scores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(dir: &std::path::Path, extra: &str) -> Recipe {
        let p = dir.join("d.jsonl");
        std::fs::write(&p, "[\"a\", \"b\"]\n[\"c\", \"d\"]\n").unwrap();
        let text = format!(
            "[model]\nbase = \"m\"\n[train]\nbatch_size = 2\nsteps = 1\noutput = \"o\"\n\
             temperature = 2.0\n\
             [[data]]\nname = \"small\"\npath = \"{p}\"\nrows = 100\n{extra}\
             [[data]]\nname = \"big\"\npath = \"{p}\"\nrows = 10000\n",
            p = p.display()
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn temperature_sets_weights_from_row_counts() {
        let d = tempfile::tempdir().unwrap();
        let specs = dataset_specs(&recipe(d.path(), "")).unwrap();
        // p ∝ rows^(1/2): 10 and 100.
        assert!((specs[0].weight - 10.0 / 110.0).abs() < 1e-12);
        assert!((specs[1].weight - 100.0 / 110.0).abs() < 1e-12);
        let e = dataset_specs(&recipe(d.path(), "weight = 3\n")).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }
}
