//! The model card (README.md) written beside a trained model.

use crate::trainer::Trainer;

/// A model by its folder's name: the card names no path of the training machine.
fn model_name(path: &str) -> String {
    let p = std::path::Path::new(path);
    p.file_name()
        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The loss and what it was given: the scale of the contrastive losses, the teacher of
/// distillation (by folder name: the card names no path of the training machine).
fn loss_line(tr: &Trainer) -> String {
    let r = &tr.recipe;
    match &r.teacher {
        Some(t) => {
            let name = model_name(&t.model);
            let prompt = tr
                .model
                .prompt
                .as_ref()
                .map_or(String::new(), |p| format!("; inputs prefixed with `{p}`"));
            format!(
                "{} onto the embeddings of the teacher `{name}` (knowledge distillation, Reimers \
                 & Gurevych 2020: every text of a row learns the teacher's embedding of the \
                 row's source){prompt}",
                tr.loss_name()
            )
        }
        None => {
            let mini = if r.loss.kind.cached() {
                format!(", mini-batch {}", r.loss.mini_batch_size)
            } else {
                String::new()
            };
            format!("{} (scale {}{mini})", tr.loss_name(), r.loss.scale)
        }
    }
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
    format!(
        "---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\ntags:\n\
         - sentence-transformers\n- feature-extraction\n- sentence-similarity\n---\n\n\
         # Sentence embedding model trained with pairtrain\n\n\
         Fine-tuned from `{base}` with pairtrain. It maps text to a {dim}-dimensional vector \
         ({pool} pooling{norm}), max sequence length {msl}.\n\n\
         ## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\
         model = SentenceTransformer(\"path/to/this/folder\")\n\
         embeddings = model.encode([\"How do I keep coffee fresh?\"])\n```\n\n\
         ## Training\n\n\
         - Data: {data}\n- Loss: {loss}\n\
         - Steps: {steps} at batch size {bs}; lr {lr:e}, {warm} warmup steps then linear decay; \
         AdamW (weight decay {wd}, none on biases and LayerNorm), gradient clipping at {clip}; \
         seed {seed}\n\n\
         ## Results\n\n\
         - Final training loss: {final_loss}\n- Mean loss over the last {window} steps: \
         {mean_tail:.4}\n{evals}",
        base = model_name(&r.model.base),
        dim = tr.model.dim(),
        pool = tr.model.pooling.name(),
        norm = if tr.model.normalize {
            ", L2-normalised"
        } else {
            ""
        },
        msl = tr.model.max_seq_length,
        data = tr.data_description(),
        loss = loss_line(tr),
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
