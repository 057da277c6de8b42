//! The training recipe (TOML), as ARCHITECTURE.md describes it. Unknown keys are errors, so a
//! misspelt setting never silently falls back to a default.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub model: ModelSection,
    #[serde(default)]
    pub loss: LossSection,
    pub train: TrainSection,
    /// Knowledge distillation: the frozen model whose embeddings of each row's source every text
    /// of the row learns to reproduce (`[loss] kind = "mse"`).
    pub teacher: Option<TeacherSection>,
    #[serde(default)]
    pub data: Vec<DataSection>,
    /// Evaluations run every `eval_every` steps and at the end.
    #[serde(default)]
    pub eval: Vec<eval::TaskSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A sentence-transformers or plain Hugging Face model folder.
    pub base: String,
    /// mean | cls | max | mean_sqrt_len_tokens (default: the folder's, else mean).
    pub pooling: Option<model::Pooling>,
    /// L2-normalise embeddings (default: the folder's modules.json).
    pub normalize: Option<bool>,
    pub max_seq_length: Option<usize>,
    /// Text put before every input (e5 models expect `query: `); saved as the model's default
    /// prompt, so sentence-transformers applies it too. Default: the folder's default prompt.
    pub prompt: Option<String>,
    /// Named prompts saved with the model (config_sentence_transformers.json `prompts`), for
    /// `encode --prompt-name` and sentence-transformers' `prompt_name`; added to the folder's.
    pub prompts: Option<std::collections::BTreeMap<String, String>>,
    /// Which named prompt is the default: put before every input (in training too, where no
    /// column prompt is given) and saved as `default_prompt_name`.
    pub default_prompt_name: Option<String>,
    /// false: pooling leaves out the prompt's tokens (sentence-transformers' Pooling
    /// `include_prompt`, saved with the model). Default: the folder's, else true.
    pub include_prompt: Option<bool>,
    /// true: every batch runs padded to its longest text, as sentence-transformers runs it.
    /// Default false: on the CPU batches run packed (unpadded; `model::packing`), which gives
    /// the same embeddings and gradients to float rounding without spending arithmetic on
    /// padding; with dropout on, the hidden-state dropout masks differ (drawn over the packed
    /// tokens), as another seed's would.
    #[serde(default)]
    pub padded: bool,
}

/// Prompts per column in a recipe: one string for every column, or a table naming columns by
/// position (`anchor`, `positive`, `negative`), as sentence-transformers' trainer `prompts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompts(pub pairs::ColumnPrompts);

impl<'de> Deserialize<'de> for Prompts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::String(p) => Ok(Prompts(pairs::ColumnPrompts::all(&p))),
            toml::Value::Table(t) => {
                let mut out = pairs::ColumnPrompts::default();
                for (column, p) in t {
                    let toml::Value::String(p) = p else {
                        return Err(D::Error::custom(format!(
                            "prompts: the prompt of \"{column}\" is not a string"
                        )));
                    };
                    out.set(&column, p)
                        .map_err(|e| D::Error::custom(format!("prompts: {e}")))?;
                }
                Ok(Prompts(out))
            }
            _ => Err(D::Error::custom(
                "prompts is a string (every column) or a table such as \
                 { anchor = \"query: \", positive = \"passage: \" }",
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSection {
    /// A sentence-transformers or plain Hugging Face model folder; frozen, no dropout.
    pub model: String,
    /// Text put before every source the teacher embeds (default: the folder's default prompt).
    pub prompt: Option<String>,
    pub max_seq_length: Option<usize>,
    /// Embed each data file's sources with the teacher once, into a cache beside the file (or in
    /// `cache_dir`), instead of running the teacher at every step.
    #[serde(default)]
    pub cache: bool,
    /// Where the teacher caches go (default: beside each data file).
    pub cache_dir: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSection {
    #[serde(default)]
    pub kind: LossKind,
    #[serde(default = "d_scale")]
    pub scale: f64,
    /// cos | dot: how the ranking losses score a pair (dot: the multi-qa *-dot models, with CLS
    /// pooling, `normalize = false` and scale 1). Default cos; dot for margin-mse, as in
    /// sentence-transformers. See `similarity()`.
    pub similarity: Option<crate::losses::Similarity>,
    /// cached-*: rows embedded at once (memory), while negatives come from the whole batch.
    #[serde(default = "d_mini")]
    pub mini_batch_size: usize,
    /// MatryoshkaLoss around the loss: also train the first d dimensions of every embedding as an
    /// embedding of its own, for each d here (e.g. [768, 512, 256, 128, 64]).
    #[serde(default)]
    pub matryoshka_dims: Vec<usize>,
    /// A weight per matryoshka dimension (default 1 each).
    pub matryoshka_weights: Option<Vec<f64>>,
    /// triplet: euclidean | cosine | manhattan.
    #[serde(default)]
    pub triplet_distance: crate::losses::TripletDistance,
    /// triplet: how much farther the negative must be than the positive (default 5).
    #[serde(default = "d_triplet_margin")]
    pub triplet_margin: f64,
    /// gist, cached-gist: the frozen guide model (folder or hub id) that picks the negatives.
    pub guide: Option<String>,
    /// gist: divides the cosine similarities (sentence-transformers' default 0.01).
    #[serde(default = "d_temperature")]
    pub temperature: f64,
    /// gist: absolute | relative.
    #[serde(default)]
    pub margin_strategy: crate::losses::MarginStrategy,
    /// gist: candidates the guide scores above the positive's score less this margin are
    /// dropped (relative: less |score|·margin).
    #[serde(default)]
    pub margin: f64,
    /// gist: contrast anchors with the other anchors, positives with the other positives.
    #[serde(default = "d_true")]
    pub contrast_anchors: bool,
    #[serde(default = "d_true")]
    pub contrast_positives: bool,
}

impl LossSection {
    /// The similarity the loss scores with: the recipe's, else the loss's default.
    pub fn similarity(&self) -> crate::losses::Similarity {
        use crate::losses::Similarity;
        self.similarity.unwrap_or(match self.kind {
            LossKind::MarginMse => Similarity::Dot,
            _ => Similarity::Cos,
        })
    }

    /// The rows the loss takes (checked as they are read).
    pub fn row_shape(&self) -> pairs::RowShape {
        use pairs::RowShape;
        let name = self.kind.st_name();
        match self.kind {
            LossKind::Cosent | LossKind::Angle | LossKind::CosineSimilarity => {
                RowShape::scored_pair(name)
            }
            LossKind::MarginMse => RowShape::margins(name),
            LossKind::Triplet => RowShape::texts(name, 3),
            _ => RowShape::texts(name, 2),
        }
    }
}

impl Default for LossSection {
    fn default() -> Self {
        Self {
            kind: LossKind::default(),
            scale: d_scale(),
            similarity: None,
            mini_batch_size: d_mini(),
            matryoshka_dims: Vec::new(),
            matryoshka_weights: None,
            triplet_distance: Default::default(),
            triplet_margin: d_triplet_margin(),
            guide: None,
            temperature: d_temperature(),
            margin_strategy: Default::default(),
            margin: 0.0,
            contrast_anchors: true,
            contrast_positives: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    pub batch_size: usize,
    /// Prompts for every dataset's columns (a `[[data]]` entry's own come first).
    pub prompts: Option<Prompts>,
    /// Required to train; a data-only recipe (`pairtrain data bench`) may leave it out.
    #[serde(default)]
    pub steps: usize,
    #[serde(default = "d_lr")]
    pub lr: f64,
    #[serde(default)]
    pub warmup_steps: usize,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    /// Global gradient-norm clip; 0 turns clipping off.
    #[serde(default = "d_clip")]
    pub max_grad_norm: f64,
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Each batch is split between this many datasets, chosen by weight (2021 used 2).
    #[serde(default = "d_one")]
    pub datasets_per_batch: usize,
    /// Sample datasets with p ∝ rows^(1/T) instead of by weight.
    pub temperature: Option<f64>,
    /// error | skip: what a bad row in the data does.
    #[serde(default = "d_on_bad_row")]
    pub on_bad_row: String,
    /// Skip rows with a text already in the batch (the 2021 rule, and sentence-transformers'
    /// NO_DUPLICATES batch sampler). Default: on for the losses with in-batch negatives, where
    /// a repeated text would be a false negative; off for the others (scored pairs repeat texts
    /// by design).
    pub dedup: Option<bool>,
    /// Rows per dataset in the shuffle buffer (a `[[data]]` entry can override it).
    #[serde(default = "d_shuffle_buffer")]
    pub shuffle_buffer: usize,
    /// Tokenization threads ahead of the trainer.
    #[serde(default = "d_workers")]
    pub tokenize_workers: usize,
    /// Tokenized batches kept ready.
    #[serde(default = "d_prefetch")]
    pub prefetch: usize,
    /// Round each column's padded length up to a multiple of this (8 suits GPU tensor cores).
    #[serde(default = "d_one")]
    pub pad_to_multiple_of: usize,
    /// Save a checkpoint every N steps (0: only on Ctrl-C and at the end).
    #[serde(default)]
    pub save_every: usize,
    /// Keep only the newest N checkpoints (sentence-transformers' `save_total_limit`); default:
    /// all.
    pub save_total_limit: Option<usize>,
    /// Publish the final model to this hub repository (`org/name`), as `pairtrain push` does
    /// (sentence-transformers' `push_to_hub` / `hub_model_id`); needs a token (HF_TOKEN).
    #[serde(default)]
    pub push_to: Option<String>,
    /// Create the `push_to` repository private.
    #[serde(default)]
    pub push_private: bool,
    /// Also publish every checkpoint as `checkpoint-N/` of the `push_to` repository
    /// (transformers' `hub_strategy = "all_checkpoints"`); a failed checkpoint push is a warning.
    #[serde(default)]
    pub push_checkpoints: bool,
    /// Seconds a rank waits in a collective (a gather, an all-reduce) before it gives up and ends
    /// the job (another rank stopped, a host gone); PAIRTRAIN_COLLECTIVE_TIMEOUT_S overrides.
    #[serde(default = "d_collective_timeout")]
    pub collective_timeout_s: f64,
    #[serde(default)]
    pub eval_every: usize,
    /// The run's folder; required to train.
    #[serde(default)]
    pub output: String,
    /// cpu | cuda | cuda:N (cuda needs a binary built with `--features cuda`).
    #[serde(default = "d_device")]
    pub device: String,
    /// f32 | bf16: the dtype of matrix multiplies and activations. bf16 keeps f32 master
    /// weights, AdamW moments, LayerNorm statistics, softmax and the loss.
    #[serde(default = "d_dtype")]
    pub dtype: String,
    /// Shuffle rows each pass (false: file order, as the parity runs need).
    #[serde(default = "d_true")]
    pub shuffle: bool,
    #[serde(default = "d_beta1")]
    pub adam_beta1: f64,
    #[serde(default = "d_beta2")]
    pub adam_beta2: f64,
    #[serde(default = "d_eps")]
    pub adam_eps: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub name: Option<String>,
    /// A pair file (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`) or a glob of shards; see
    /// ARCHITECTURE.md for the row formats.
    pub path: String,
    /// Relative sampling weight (default 1).
    pub weight: Option<f64>,
    /// Row count, as `pairtrain data stats` reports it (for temperature sampling).
    pub rows: Option<u64>,
    pub shuffle_buffer: Option<usize>,
    /// Parquet files: the columns to read, in order (e.g. ["query", "answer"]); default: the
    /// first of anchor/positive/negative, query/answer, sentence1/sentence2, text1/text2, …
    pub columns: Option<Vec<String>>,
    /// This dataset's prompts: `"query: "` for every column, or
    /// `{ anchor = "query: ", positive = "passage: " }`.
    pub prompts: Option<Prompts>,
}

fn d_scale() -> f64 {
    20.0
}
fn d_mini() -> usize {
    32
}
fn d_triplet_margin() -> f64 {
    5.0
}
fn d_temperature() -> f64 {
    0.01
}
// Defaults are those of sentence-transformers 6.2's trainer (transformers' TrainingArguments),
// so that a recipe that says nothing trains as it would there (README lists where they differ
// from the 2021 script, whose recipes state its values).
fn d_lr() -> f64 {
    5e-5
}
fn d_wd() -> f64 {
    0.0
}
fn d_clip() -> f64 {
    1.0
}
fn d_seed() -> u64 {
    42
}
fn d_one() -> usize {
    1
}
fn d_true() -> bool {
    true
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_collective_timeout() -> f64 {
    // PyTorch's default for its process groups: 10 minutes.
    600.0
}
fn d_device() -> String {
    "cpu".into()
}
fn d_dtype() -> String {
    "f32".into()
}
fn d_on_bad_row() -> String {
    "error".into()
}
fn d_shuffle_buffer() -> usize {
    10_000
}
fn d_workers() -> usize {
    2
}
fn d_prefetch() -> usize {
    4
}

/// The losses a recipe can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossKind {
    #[default]
    Mnrl,
    MnrlSymmetric,
    CachedMnrl,
    CachedMnrlSymmetric,
    /// Distillation onto a teacher's embeddings (needs `[teacher]`).
    Mse,
    /// TripletLoss on (anchor, positive, negative) rows.
    Triplet,
    /// GISTEmbedLoss: in-batch negatives filtered by a guide model (`[loss] guide`).
    Gist,
    CachedGist,
    /// CoSENTLoss on scored pairs (text1, text2, score).
    Cosent,
    /// AnglELoss on scored pairs.
    Angle,
    /// CosineSimilarityLoss on scored pairs (scores in [-1, 1]).
    CosineSimilarity,
    /// MarginMSELoss on (query, positive, negatives…, margins or scores) rows.
    MarginMse,
}

impl LossKind {
    pub const ALL: [LossKind; 12] = [
        LossKind::Mnrl,
        LossKind::MnrlSymmetric,
        LossKind::CachedMnrl,
        LossKind::CachedMnrlSymmetric,
        LossKind::Mse,
        LossKind::Triplet,
        LossKind::Gist,
        LossKind::CachedGist,
        LossKind::Cosent,
        LossKind::Angle,
        LossKind::CosineSimilarity,
        LossKind::MarginMse,
    ];

    /// The class sentence-transformers implements it as (messages, model cards).
    pub fn st_name(self) -> &'static str {
        match self {
            LossKind::Mnrl => "MultipleNegativesRankingLoss",
            LossKind::MnrlSymmetric => "MultipleNegativesSymmetricRankingLoss",
            LossKind::CachedMnrl => "CachedMultipleNegativesRankingLoss",
            LossKind::CachedMnrlSymmetric => "CachedMultipleNegativesSymmetricRankingLoss",
            LossKind::Mse => "MSELoss",
            LossKind::Triplet => "TripletLoss",
            LossKind::Gist => "GISTEmbedLoss",
            LossKind::CachedGist => "CachedGISTEmbedLoss",
            LossKind::Cosent => "CoSENTLoss",
            LossKind::Angle => "AnglELoss",
            LossKind::CosineSimilarity => "CosineSimilarityLoss",
            LossKind::MarginMse => "MarginMSELoss",
        }
    }

    /// The paper to cite beside Sentence-BERT, where the loss has its own (the MNRL family cites
    /// Henderson et al. 2017, distillation Reimers & Gurevych 2020: the card adds those).
    pub fn citation(self) -> Option<crate::losses::citations::Citation> {
        use crate::losses::citations as c;
        Some(match self {
            LossKind::Gist | LossKind::CachedGist => c::GIST,
            LossKind::Cosent => c::COSENT,
            LossKind::Angle => c::ANGLE,
            LossKind::MarginMse => c::MARGIN_MSE,
            LossKind::Triplet => c::TRIPLET,
            _ => return None,
        })
    }

    /// Whether it learns from scores in the rows.
    pub fn scored(self) -> bool {
        matches!(
            self,
            LossKind::Cosent | LossKind::Angle | LossKind::CosineSimilarity | LossKind::MarginMse
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            LossKind::Mnrl => "mnrl",
            LossKind::MnrlSymmetric => "mnrl-symmetric",
            LossKind::CachedMnrl => "cached-mnrl",
            LossKind::CachedMnrlSymmetric => "cached-mnrl-symmetric",
            LossKind::Mse => "mse",
            LossKind::Triplet => "triplet",
            LossKind::Gist => "gist",
            LossKind::CachedGist => "cached-gist",
            LossKind::Cosent => "cosent",
            LossKind::Angle => "angle",
            LossKind::CosineSimilarity => "cosine-similarity",
            LossKind::MarginMse => "margin-mse",
        }
    }

    /// GradCache: embeddings in mini-batches, negatives from the whole batch.
    pub fn cached(self) -> bool {
        matches!(
            self,
            LossKind::CachedMnrl | LossKind::CachedMnrlSymmetric | LossKind::CachedGist
        )
    }

    /// Whether batches skip repeated texts unless `[train] dedup` says: for the losses with
    /// in-batch negatives (a repeated text would be a false negative) and for distillation (as
    /// before this default depended on the loss); not for scored pairs, which repeat texts by
    /// design, nor triplets.
    pub fn dedup_by_default(self) -> bool {
        !self.scored() && self != LossKind::Triplet
    }

    /// Whether the loss needs a guide model.
    pub fn guided(self) -> bool {
        matches!(self, LossKind::Gist | LossKind::CachedGist)
    }

    pub fn symmetric(self) -> bool {
        matches!(
            self,
            LossKind::MnrlSymmetric | LossKind::CachedMnrlSymmetric
        )
    }
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        LossKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = LossKind::ALL.iter().map(|k| k.name()).collect();
                format!("[loss] kind \"{s}\" is not one of {}", names.join(", "))
            })
    }
}

impl<'de> Deserialize<'de> for LossKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Recipe {
    /// A recipe to train from: everything is checked.
    pub fn load(path: &Path) -> Result<Self> {
        let r = Self::parse(path)?;
        r.check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(r)
    }

    /// A recipe whose data is all that will be read (`pairtrain data bench`): only what the
    /// loader uses is checked, so `[train] steps` and `output` may be missing.
    pub fn load_data_only(path: &Path) -> Result<Self> {
        let r = Self::parse(path)?;
        r.check_data()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(r)
    }

    /// The recipe as written, unknown keys refused but settings unchecked (`data check-recipe`
    /// reports on recipes that are not ready to train yet).
    pub fn load_unchecked(path: &Path) -> Result<Self> {
        Self::parse(path)
    }

    fn parse(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn check_data(&self) -> Result<()> {
        if self.train.batch_size < 2 {
            bail!("[train] batch_size must be at least 2 (in-batch negatives need company)");
        }
        if self.data.is_empty() {
            bail!("no [[data]] entries");
        }
        if let Err(e) = self.train.on_bad_row.parse::<pairs::BadRowPolicy>() {
            bail!("[train] on_bad_row: {e}");
        }
        Ok(())
    }

    /// The collective timeout: PAIRTRAIN_COLLECTIVE_TIMEOUT_S, else `[train] collective_timeout_s`.
    pub fn collective_timeout(&self) -> Result<std::time::Duration> {
        let (secs, from) = match std::env::var("PAIRTRAIN_COLLECTIVE_TIMEOUT_S") {
            Ok(v) => (
                v.trim().parse::<f64>().unwrap_or(f64::NAN),
                "PAIRTRAIN_COLLECTIVE_TIMEOUT_S",
            ),
            Err(_) => (
                self.train.collective_timeout_s,
                "[train] collective_timeout_s",
            ),
        };
        if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
            bail!("{from} must be a number of seconds above 0 (got {secs})");
        }
        Ok(std::time::Duration::from_secs_f64(secs))
    }

    /// Whether batches skip rows with a text already in them (see `[train] dedup`).
    pub fn dedup(&self) -> bool {
        self.train
            .dedup
            .unwrap_or(self.loss.kind.dedup_by_default())
    }

    /// Each dataset's column prompts (its own, then `[train] prompts`), in `[[data]]` order.
    pub fn column_prompts(&self) -> Vec<pairs::ColumnPrompts> {
        let all = self.train.prompts.clone().unwrap_or_default().0;
        self.data
            .iter()
            .map(|d| d.prompts.clone().unwrap_or_default().0.or(&all))
            .collect()
    }

    /// Rejects what a user can type but cannot mean.
    pub fn check(&self) -> Result<()> {
        self.check_data()?;
        self.collective_timeout()?;
        if let Some(r) = &self.train.push_to {
            if let Some(why) = hub::names::bad_repo_id(r) {
                bail!("[train] push_to {r:?} is not a repository id: {why}");
            }
        } else if self.train.push_checkpoints || self.train.push_private {
            bail!("[train] push_checkpoints and push_private need push_to = \"org/name\"");
        }
        if self.train.save_total_limit == Some(0) {
            bail!("[train] save_total_limit must be at least 1 (leave it out to keep every checkpoint)");
        }
        let m = &self.model;
        if m.prompt.is_some() && m.default_prompt_name.is_some() {
            bail!("[model] give prompt or default_prompt_name, not both");
        }
        let (t, l) = (&self.train, &self.loss);
        if t.steps == 0 {
            bail!("[train] steps must be at least 1");
        }
        if t.output.is_empty() {
            bail!("[train] output (the run's folder) is required");
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            bail!("[train] lr must be above 0 (got {})", t.lr);
        }
        if t.warmup_steps > t.steps {
            bail!(
                "[train] warmup_steps ({}) is more than steps ({})",
                t.warmup_steps,
                t.steps
            );
        }
        if !(l.scale.is_finite() && l.scale > 0.0) {
            bail!("[loss] scale must be above 0 (got {})", l.scale);
        }
        if l.kind.cached() && (l.mini_batch_size == 0 || l.mini_batch_size > t.batch_size) {
            bail!(
                "[loss] mini_batch_size ({}) must be between 1 and [train] batch_size ({})",
                l.mini_batch_size,
                t.batch_size
            );
        }
        if l.similarity.is_some()
            && matches!(
                l.kind,
                LossKind::Mse | LossKind::Angle | LossKind::CosineSimilarity | LossKind::Triplet
            )
        {
            bail!(
                "[loss] similarity does not apply to kind = \"{}\" ({} fixes how it compares \
                 embeddings)",
                l.kind.name(),
                l.kind.st_name()
            )
        }
        match (l.kind == LossKind::Mse, &self.teacher) {
            (true, None) => {
                bail!("[loss] kind = \"mse\" distils from a teacher: add [teacher] model")
            }
            (false, Some(_)) => bail!(
                "[teacher] is set but [loss] kind is \"{}\": distillation uses kind = \"mse\"",
                l.kind.name()
            ),
            _ => {}
        }
        match (l.kind.guided(), &l.guide) {
            (true, None) => bail!(
                "[loss] kind = \"{}\" filters negatives with a guide model: add [loss] guide",
                l.kind.name()
            ),
            (false, Some(_)) => bail!(
                "[loss] guide is for kind = \"gist\" or \"cached-gist\", not \"{}\"",
                l.kind.name()
            ),
            _ => {}
        }
        if l.kind.guided() && !(l.temperature.is_finite() && l.temperature > 0.0) {
            bail!("[loss] temperature must be above 0 (got {})", l.temperature);
        }
        if let Some(w) = &l.matryoshka_weights {
            if w.len() != l.matryoshka_dims.len() {
                bail!(
                    "[loss] matryoshka_weights has {} values for {} matryoshka_dims",
                    w.len(),
                    l.matryoshka_dims.len()
                );
            }
        }
        if l.matryoshka_dims.contains(&0) {
            bail!("[loss] matryoshka_dims must be positive");
        }
        model::device::check_device(&t.device).map_err(|e| anyhow::anyhow!("[train] {e}"))?;
        model::device::parse_dtype(&t.dtype).map_err(|e| anyhow::anyhow!("[train] {e}"))?;
        Ok(())
    }

    /// Makes the recipe's relative paths (base model, data, output) relative to `root` instead
    /// of the working directory.
    pub fn rebase(&mut self, root: &Path) {
        let fix = |p: &mut String| {
            if Path::new(p.as_str()).is_relative() {
                *p = root.join(p.as_str()).display().to_string();
            }
        };
        fix(&mut self.model.base);
        if let Some(t) = &mut self.teacher {
            fix(&mut t.model);
            if let Some(d) = &mut t.cache_dir {
                fix(d);
            }
        }
        fix(&mut self.train.output);
        for d in &mut self.data {
            fix(&mut d.path);
        }
        for e in &mut self.eval {
            fix(&mut e.path);
            if let Some(t) = &mut e.teacher {
                fix(t);
            }
        }
    }

    pub fn output_dir(&self) -> PathBuf {
        PathBuf::from(&self.train.output)
    }
}
