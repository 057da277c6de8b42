//! Evaluation tasks as a recipe or a suite file names them, and running them.

use anyhow::{Context, Result};
use model::SentenceModel;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What an evaluation measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// STS: Spearman/Pearson of cosine against gold scores (EmbeddingSimilarityEvaluator).
    Sts,
    /// Retrieval on a BEIR folder (InformationRetrievalEvaluator).
    Retrieval,
    /// Bitext retrieval on parallel sentences, `source<TAB>translation` (TranslationEvaluator).
    Translation,
    /// Distance of the model's embeddings of the translations to a teacher's of the sources
    /// (MSEEvaluator); needs `teacher`.
    Mse,
    /// Conversational response retrieval on held-out (context, response) pairs: 1-of-100
    /// accuracy (Henderson et al., 2019).
    ResponseRetrieval,
}

impl TaskKind {
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Sts => "sts",
            TaskKind::Retrieval => "retrieval",
            TaskKind::Translation => "translation",
            TaskKind::Mse => "mse",
            TaskKind::ResponseRetrieval => "response-retrieval",
        }
    }
}

impl std::str::FromStr for TaskKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sts" => Ok(TaskKind::Sts),
            "retrieval" => Ok(TaskKind::Retrieval),
            "translation" => Ok(TaskKind::Translation),
            "mse" => Ok(TaskKind::Mse),
            "response-retrieval" => Ok(TaskKind::ResponseRetrieval),
            _ => Err(format!(
                "evaluation kind \"{s}\" is not one of sts, retrieval, translation, mse, \
                 response-retrieval"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for TaskKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One evaluation: `kind = "sts"` with a TSV file, or `kind = "retrieval"` with a BEIR folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Key of the results (default: the file or folder name).
    pub name: Option<String>,
    pub kind: TaskKind,
    pub path: String,
    /// Texts per forward pass.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// retrieval: corpus documents embedded and scored at once.
    #[serde(default = "d_chunk")]
    pub corpus_chunk_size: usize,
    /// mse: the teacher model's folder.
    pub teacher: Option<String>,
    /// response-retrieval: read only the file's first this many pairs.
    pub max_rows: Option<usize>,
    /// Score the first N dimensions of the embeddings (a Matryoshka model's shorter ones, as
    /// sentence-transformers' evaluators' `truncate_dim`).
    pub truncate_dim: Option<usize>,
}

fn d_batch() -> usize {
    32
}
fn d_chunk() -> usize {
    50_000
}

impl TaskSpec {
    pub fn new(kind: TaskKind, path: &Path) -> Self {
        Self {
            name: None,
            kind,
            path: path.display().to_string(),
            batch_size: d_batch(),
            corpus_chunk_size: d_chunk(),
            teacher: None,
            max_rows: None,
            truncate_dim: None,
        }
    }

    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let p = Path::new(&self.path);
            let stem = p.file_stem().or(p.file_name()).unwrap_or_default();
            stem.to_string_lossy().into_owned()
        })
    }
}

/// A suite file: `[[task]]` entries; relative paths are taken from the suite file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub task: Vec<TaskSpec>,
}

impl Suite {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let mut s: Suite =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().map(PathBuf::from).unwrap_or_default();
        for t in &mut s.task {
            if Path::new(&t.path).is_relative() {
                t.path = base.join(&t.path).display().to_string();
            }
            if let Some(teacher) = t.teacher.as_mut().filter(|p| Path::new(p).is_relative()) {
                *teacher = base.join(&*teacher).display().to_string();
            }
        }
        Ok(s)
    }
}

/// Loads a task's data and evaluates `model` on it.
pub fn run_task(model: &SentenceModel, task: &TaskSpec) -> Result<BTreeMap<String, f64>> {
    if let Some(d) = task.truncate_dim {
        let mut cut = model.detached();
        cut.set_truncate_dim(
            Some(d),
            &format!("task {}: truncate_dim", task.display_name()),
        )?;
        let task = TaskSpec {
            truncate_dim: None,
            ..task.clone()
        };
        return run_task(&cut, &task);
    }
    let path = Path::new(&task.path);
    match task.kind {
        TaskKind::Sts => {
            let data = crate::embedding_similarity::load_sts(path)?;
            crate::embedding_similarity::evaluate_sts(model, &data, task.batch_size)
        }
        TaskKind::Retrieval => {
            let data = crate::information_retrieval::load_beir(path)?;
            crate::information_retrieval::evaluate_retrieval(
                model,
                &data,
                task.batch_size,
                task.corpus_chunk_size,
            )
        }
        TaskKind::Translation => {
            let data = crate::translation::load_parallel(path)?;
            crate::translation::evaluate_translation(model, &data, task.batch_size)
        }
        TaskKind::ResponseRetrieval => {
            let data = crate::response_retrieval::load_pairs(path, task.max_rows)?;
            crate::response_retrieval::evaluate_response_retrieval(model, &data, task.batch_size)
        }
        TaskKind::Mse => {
            let Some(teacher) = &task.teacher else {
                anyhow::bail!(
                    "an mse evaluation needs its teacher model (teacher = \"…\", or --teacher)"
                );
            };
            let teacher = SentenceModel::load(Path::new(teacher), &Default::default())
                .with_context(|| format!("teacher {teacher}"))?;
            let data = crate::translation::load_parallel(path)?;
            crate::mse::evaluate_mse(model, &teacher, &data, task.batch_size)
        }
    }
}
