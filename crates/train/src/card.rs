//! The model card (README.md) written beside a trained model.

use crate::trainer::Trainer;

/// A model's id for the card: `org/name` for a folder of the Hugging Face cache
/// (`models--org--name/snapshots/<rev>`) or a sentence-transformers folder whose README loads
/// it by that id, else the folder's name. Never a path of the training machine.
pub fn model_id(path: &str) -> String {
    let p = std::path::Path::new(path);
    for part in p.components().rev() {
        let s = part.as_os_str().to_string_lossy();
        if let Some(rest) = s.strip_prefix("models--") {
            if let Some((org, name)) = rest.split_once("--") {
                return format!("{org}/{name}");
            }
        }
    }
    let folder = p
        .file_name()
        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned());
    if let Ok(readme) = std::fs::read_to_string(p.join("README.md")) {
        for quote in ['\'', '"'] {
            let needle = format!("SentenceTransformer({quote}");
            if let Some(at) = readme.find(&needle) {
                let id = readme[at + needle.len()..]
                    .split(quote)
                    .next()
                    .unwrap_or("");
                let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
                if let Some((org, name)) = id.split_once('/') {
                    if name == folder && org.chars().all(valid) && name.chars().all(valid) {
                        return id.to_string();
                    }
                }
            }
        }
    }
    folder
}

/// The loss and what it was given, as sentence-transformers names them: the settings of the
/// loss, the guide of GISTEmbed and the teacher of distillation (by model id or folder name: the
/// card names no path of the training machine), the Matryoshka sizes around it.
fn loss_line(tr: &Trainer) -> String {
    use crate::recipe::LossKind::*;
    let r = &tr.recipe;
    let l = &r.loss;
    let name = l.kind.st_name();
    let mini = if l.kind.cached() {
        format!(", mini-batch {}", l.mini_batch_size)
    } else {
        String::new()
    };
    let sim = l.similarity().util_name();
    let inner = match l.kind {
        Mse => {
            let teacher = r
                .teacher
                .as_ref()
                .map_or(String::new(), |t| model_id(&t.model));
            let prompt = tr
                .model
                .prompt
                .as_ref()
                .map_or(String::new(), |p| format!("; inputs prefixed with `{p}`"));
            format!(
                "{name} onto the embeddings of the teacher `{teacher}` (knowledge distillation, \
                 Reimers & Gurevych 2020: every text of a row learns the teacher's embedding of \
                 the row's source){prompt}"
            )
        }
        Gist | CachedGist => format!(
            "{name} (guide `{}`, temperature {}, margin_strategy {:?}, margin {}{mini})",
            l.guide.as_deref().map(model_id).unwrap_or_default(),
            l.temperature,
            l.margin_strategy,
            l.margin
        ),
        Triplet => format!(
            "{name} (distance {:?}, margin {})",
            l.triplet_distance, l.triplet_margin
        ),
        Angle => format!("{name} (scale {})", l.scale),
        CosineSimilarity => name.to_string(),
        MarginMse => format!("{name} (similarity {sim})"),
        _ => format!("{name} (scale {}, similarity {sim}{mini})", l.scale),
    };
    if l.matryoshka_dims.is_empty() {
        return inner;
    }
    let weights = l
        .matryoshka_weights
        .as_ref()
        .map_or(String::new(), |w| format!(", weights {w:?}"));
    format!(
        "MatryoshkaLoss (dimensions {:?}{weights}) over {inner}",
        l.matryoshka_dims
    )
}

/// The prompts the run put before its inputs, per dataset, and whether pooling took them in.
fn prompts_line(tr: &Trainer) -> String {
    let r = &tr.recipe;
    let mut parts = Vec::new();
    for (i, p) in r.column_prompts().iter().enumerate() {
        if p.is_empty() {
            continue;
        }
        let name = r.data[i].name.clone().unwrap_or_else(|| format!("data{i}"));
        let cols: Vec<String> = pairs::prompts::COLUMNS
            .iter()
            .enumerate()
            .filter_map(|(c, col)| p.get(c).map(|t| format!("{col} `{t}`")))
            .collect();
        parts.push(format!("{name}: {}", cols.join(", ")));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!(
        "- Prompts: {}{}\n",
        parts.join("; "),
        if tr.model.include_prompt {
            ""
        } else {
            " (left out of pooling: include_prompt false)"
        }
    )
}

/// Usage lines beyond the plain `encode`: a named prompt, the smallest Matryoshka size.
fn usage_extras(tr: &Trainer) -> (String, String) {
    let named = tr
        .model
        .prompts
        .iter()
        .find(|(_, p)| !p.is_empty())
        .map(|(n, _)| n.clone());
    let small = tr.recipe.loss.matryoshka_dims.iter().min().copied();
    let mut py = Vec::new();
    let mut sh = String::new();
    if let Some(n) = &named {
        py.push(format!("prompt_name=\"{n}\""));
        sh.push_str(&format!(" --prompt-name {n}"));
    }
    if let Some(d) = small {
        py.push(format!("truncate_dim={d}"));
        sh.push_str(&format!(" --truncate-dim {d}"));
    }
    if py.is_empty() {
        return (String::new(), String::new());
    }
    (
        format!(
            "\nshorter = model.encode([\"How do I keep coffee fresh?\"], {})",
            py.join(", ")
        ),
        format!("\npairtrain encode --model path/to/this/folder --input texts.txt --output short.npy{sh}"),
    )
}

/// Rows of each dataset the run trained on, from the step log, with the recipe's weights.
fn data_table(tr: &Trainer) -> String {
    let r = &tr.recipe;
    let mut seen: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in &tr.history {
        for (name, n) in &s.data {
            *seen.entry(name.as_str()).or_insert(0) += n;
        }
    }
    let mut t =
        String::from("| dataset | files | rows seen | weight |\n| --- | --- | --- | --- |\n");
    for (i, d) in r.data.iter().enumerate() {
        let name = d.name.clone().unwrap_or_else(|| format!("data{i}"));
        let files = std::path::Path::new(&d.path)
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let weight = match (r.train.temperature, d.weight) {
            (Some(temp), _) => format!("rows^(1/{temp})"),
            (None, w) => format!("{}", w.unwrap_or(1.0)),
        };
        let rows = seen.get(name.as_str()).copied().unwrap_or(0);
        t.push_str(&format!("| {name} | `{files}` | {rows} | {weight} |\n"));
    }
    t
}

const CITATION: &str = "```bibtex\n@inproceedings{reimers-2019-sentence-bert,\n    title = \
\"Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks\",\n    author = \"Reimers, Nils \
and Gurevych, Iryna\",\n    booktitle = \"Proceedings of the 2019 Conference on Empirical \
Methods in Natural Language Processing\",\n    year = \"2019\",\n    publisher = \"Association \
for Computational Linguistics\",\n    url = \"https://arxiv.org/abs/1908.10084\",\n}\n```\n";

const CITATION_DISTILLATION: &str =
    "```bibtex\n@inproceedings{reimers-2020-multilingual-sentence-bert,\n    \
title = \"Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation\",\n    \
author = \"Reimers, Nils and Gurevych, Iryna\",\n    booktitle = \"Proceedings of the 2020 \
Conference on Empirical Methods in Natural Language Processing\",\n    year = \"2020\",\n    \
publisher = \"Association for Computational Linguistics\",\n    url = \
\"https://arxiv.org/abs/2004.09813\",\n}\n```\n";

const CITATION_MNRL: &str = "```bibtex\n@misc{henderson2017efficient,\n    title = \
{Efficient Natural Language Response Suggestion for Smart Reply},\n    author = {Matthew \
Henderson and Rami Al-Rfou and Brian Strope and Yun-hsuan Sung and Laszlo Lukacs and Ruiqi Guo \
and Sanjiv Kumar and Balint Miklos and Ray Kurzweil},\n    year = {2017},\n    eprint = \
{1705.00652},\n    archivePrefix = {arXiv},\n    primaryClass = {cs.CL}\n}\n```\n";

/// A citation as BibTeX: an arXiv entry, or an online one with its URL.
fn bibtex(c: crate::losses::citations::Citation) -> String {
    let (key, title, author, year, at) = c;
    let (kind, where_) = if at.starts_with("https://") {
        ("online", format!("url = {{{at}}}"))
    } else {
        (
            "misc",
            format!("eprint = {{{at}}},\n    archivePrefix = {{arXiv}}"),
        )
    };
    format!(
        "```bibtex\n@{kind}{{{key},\n    title = {{{title}}},\n    author = {{{author}}},\n    \
         year = {{{year}}},\n    {where_},\n}}\n```\n"
    )
}

pub fn model_card(tr: &Trainer) -> String {
    let r = &tr.recipe;
    let t = &r.train;
    let last = tr.history.last();
    let window = tr.history.len().min(20);
    let mean_tail = if window > 0 {
        tr.history[tr.history.len() - window..]
            .iter()
            .map(|s| s.loss)
            .sum::<f64>()
            / window as f64
    } else {
        f64::NAN
    };
    let mut evals = String::new();
    if let Some(e) = tr.evals.last() {
        evals.push_str(&format!(
            "\nEvaluation after step {}:\n\n| task | metric | value |\n| --- | --- | --- |\n",
            e.step
        ));
        for (task, metrics) in &e.eval {
            for (k, v) in metrics {
                evals.push_str(&format!("| {task} | {k} | {v:.5} |\n"));
            }
        }
    }
    let base = model_id(&r.model.base);
    let base_line = if base.contains('/') {
        format!("base_model: {base}\n")
    } else {
        String::new()
    };
    let mut loss_citation = match r.loss.kind.citation() {
        Some(c) => bibtex(c),
        None if r.teacher.is_some() => CITATION_DISTILLATION.to_string(),
        None => CITATION_MNRL.to_string(),
    };
    if r.loss.kind.cached() {
        loss_citation.push('\n');
        loss_citation.push_str(&bibtex(crate::losses::citations::GRADCACHE));
    }
    if !r.loss.matryoshka_dims.is_empty() {
        loss_citation.push('\n');
        loss_citation.push_str(&bibtex(crate::losses::citations::MATRYOSHKA));
    }
    let (usage_py, usage_sh) = usage_extras(tr);
    let prompt = tr.model.prompt.as_ref().map_or(String::new(), |p| {
        format!(
            " Every input is prefixed with `{p}` (the model's default prompt: sentence-transformers \
             and pairtrain add it for you)."
        )
    });
    format!(
        "---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n{base_line}\
         tags:\n- sentence-transformers\n- feature-extraction\n- sentence-similarity\n- pairtrain\n\
         ---\n\n\
         # {base} fine-tuned with pairtrain\n\n\
         Fine-tuned from `{base}`. It maps text to a {dim}-dimensional vector ({pool} pooling{norm}), \
         max sequence length {msl} tokens.{prompt}\n\n\
         ## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\
         model = SentenceTransformer(\"path/to/this/folder\")\n\
         embeddings = model.encode([\"How do I keep coffee fresh?\"]){usage_py}\n```\n\n\
         ```sh\npairtrain encode --model path/to/this/folder --input texts.txt --output emb.npy{usage_sh}\n```\n\n\
         ## Training\n\n{data}\n\
         - Loss: {loss}\n{prompts}\
         - Steps: {steps} at batch size {bs}; lr {lr:e}, {warm} warmup steps then linear decay; \
         AdamW (weight decay {wd}, none on biases and LayerNorm), gradient clipping at {clip}; \
         seed {seed}\n\n\
         ## Results\n\n\
         - Final training loss: {final_loss}\n- Mean loss over the last {window} steps: \
         {mean_tail:.4}\n{evals}\n\
         ## Citation\n\n{CITATION}\n{loss_citation}",
        dim = tr.model.full_dim(),
        pool = tr.model.pooling.name(),
        norm = if tr.model.normalize {
            ", L2-normalised"
        } else {
            ""
        },
        msl = tr.model.max_seq_length,
        data = data_table(tr),
        loss = loss_line(tr),
        prompts = prompts_line(tr),
        steps = tr.step,
        bs = t.batch_size,
        lr = t.lr,
        warm = t.warmup_steps,
        wd = t.weight_decay,
        clip = t.max_grad_norm,
        seed = t.seed,
        final_loss = last.map_or("n/a".to_string(), |s| format!("{:.4}", s.loss)),
    )
}

#[cfg(test)]
mod tests {
    use super::model_id;

    #[test]
    fn model_ids_name_no_local_path() {
        let d = tempfile::tempdir().unwrap();
        let snap = d
            .path()
            .join("hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        assert_eq!(
            model_id(snap.to_str().unwrap()),
            "sentence-transformers/all-MiniLM-L6-v2"
        );
        // A sentence-transformers folder whose README loads it by its hub id.
        let st = d.path().join("all-mpnet-base-v2");
        std::fs::create_dir_all(&st).unwrap();
        std::fs::write(
            st.join("README.md"),
            "model = SentenceTransformer('sentence-transformers/all-mpnet-base-v2')\n",
        )
        .unwrap();
        assert_eq!(
            model_id(st.to_str().unwrap()),
            "sentence-transformers/all-mpnet-base-v2"
        );
        // Any other folder: its name only.
        let other = d.path().join("my-student");
        assert_eq!(model_id(other.to_str().unwrap()), "my-student");
    }
}
