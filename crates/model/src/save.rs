//! Writing a model in the classic sentence-transformers layout (see shared/ST_FORMAT.md), which
//! loads in sentence-transformers 3.x and 6.x alike.

use crate::error::{Error, Result};
use crate::sentence_model::SentenceModel;
use candle_core::DType;
use std::collections::HashMap;
use std::path::Path;

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| Error::io(from, e))
}

/// Writes every parameter as F32 safetensors with `{"format": "pt"}` metadata (transformers
/// checks it), no key prefix.
pub fn write_safetensors(model: &SentenceModel, path: &Path) -> Result<()> {
    write_params(model.encoder.params(), path, "")
}

/// Writes `params` as F32 safetensors, each key prefixed with `prefix` (e.g. `roberta.`).
pub fn write_params(params: &crate::Params, path: &Path, prefix: &str) -> Result<()> {
    let mut data: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::with_capacity(params.len());
    for (name, t) in params.iter() {
        let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        data.push((format!("{prefix}{name}"), bytes, t.dims().to_vec()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, b, shape)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Weights {
                    path: path.to_path_buf(),
                    msg: e.to_string(),
                })
        })
        .collect::<Result<_>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Saves `model` into `dir` (created; existing files of the layout are replaced): modules.json,
/// sentence_bert_config.json, 1_Pooling/config.json, config.json and tokenizer files copied from
/// the base model, model.safetensors, config_sentence_transformers.json and `card` as README.md.
pub fn save_sentence_model(model: &SentenceModel, dir: &Path, card: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("1_Pooling")).map_err(|e| Error::io(dir, e))?;
    let mut modules = vec![
        serde_json::json!({"idx": 0, "name": "0", "path": "",
            "type": "sentence_transformers.models.Transformer"}),
        serde_json::json!({"idx": 1, "name": "1", "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling"}),
    ];
    if let Some(d) = &model.dense {
        let i = modules.len();
        modules.push(serde_json::json!({"idx": i, "name": i.to_string(),
            "path": format!("{i}_Dense"), "type": "sentence_transformers.models.Dense"}));
        d.save(&dir.join(format!("{i}_Dense")))?;
    }
    if model.normalize {
        let i = modules.len();
        modules.push(serde_json::json!({"idx": i, "name": i.to_string(),
            "path": format!("{i}_Normalize"), "type": "sentence_transformers.models.Normalize"}));
    }
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    write(
        &dir.join("modules.json"),
        pretty(&serde_json::Value::Array(modules)),
    )?;
    write(
        &dir.join("sentence_bert_config.json"),
        pretty(
            &serde_json::json!({"max_seq_length": model.max_seq_length, "do_lower_case": false}),
        ),
    )?;
    let p = model.pooling;
    use crate::Pooling::*;
    let mut pooling = serde_json::json!({
        "word_embedding_dimension": model.encoder.config().hidden_size,
        "pooling_mode_cls_token": p == Cls,
        "pooling_mode_mean_tokens": p == Mean,
        "pooling_mode_max_tokens": p == Max,
        "pooling_mode_mean_sqrt_len_tokens": p == MeanSqrtLen,
    });
    // Only when false: sentence-transformers before 2.4 refuses keys it does not know.
    if !model.include_prompt {
        pooling["include_prompt"] = false.into();
    }
    write(&dir.join("1_Pooling/config.json"), pretty(&pooling))?;
    // The named prompts go as they are; a prompt the model was trained with that is not one of
    // them becomes the default ("default"), so sentence-transformers applies it to every input
    // as pairtrain does.
    let mut prompts = model.prompts.clone();
    let mut default_prompt = model.default_prompt_name.clone();
    if let Some(p) = &model.prompt {
        let named = default_prompt
            .as_ref()
            .is_some_and(|n| prompts.get(n) == Some(p));
        if !named {
            prompts.insert("default".into(), p.clone());
            default_prompt = Some("default".into());
        }
    }
    let default_prompt = match default_prompt {
        Some(n) if prompts.contains_key(&n) => serde_json::json!(n),
        _ => serde_json::Value::Null,
    };
    let mut config = serde_json::json!({
        "__version__": {"sentence_transformers": "2.0.0", "transformers": "4.6.1",
                        "pytorch": "1.8.1"},
        "prompts": prompts, "default_prompt_name": default_prompt,
        "similarity_fn_name": model.similarity_fn_name
    });
    // Only when set: sentence-transformers before 3.0 does not know the key.
    if let Some(d) = model.truncate_dim {
        config["truncate_dim"] = d.into();
    }
    write(
        &dir.join("config_sentence_transformers.json"),
        pretty(&config),
    )?;
    let src = &model.transformer_dir;
    copy(&src.join("config.json"), &dir.join("config.json"))?;
    copy(&src.join("tokenizer.json"), &dir.join("tokenizer.json"))?;
    for optional in [
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ] {
        if src.join(optional).is_file() && src != dir {
            copy(&src.join(optional), &dir.join(optional))?;
        }
    }
    write_safetensors(model, &dir.join("model.safetensors"))?;
    write(&dir.join("README.md"), card)
}
