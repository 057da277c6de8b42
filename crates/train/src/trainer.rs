//! The training loop: batch → the step (`crate::step`) with the scheduled learning rate → log;
//! evaluations and checkpoints every N steps, on request (Ctrl-C) and at the end; the final model
//! in sentence-transformers layout.

use crate::checkpoint;
use crate::guide::Guide;
use crate::losses::{
    Loss, MSELoss, MultipleNegativesRankingLoss, MultipleNegativesSymmetricRankingLoss,
};
use crate::optim::{AdamW, AdamWConfig};
use crate::process_group::ProcessGroup;
use crate::recipe::LossKind;
use crate::recipe::Recipe;
use crate::schedule::linear_warmup_decay;
use crate::step::{Embedding, TrainBatch};
use anyhow::{Context, Result};
use candle_core::Var;
use model::{Dropout, LoadOptions, SentenceModel};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What one optimizer step did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based.
    pub step: usize,
    pub loss: f64,
    /// The learning rate this step used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub pairs_per_s: f64,
    /// Processes the step ran on (the batch is the global one, split between them).
    #[serde(default = "one")]
    pub world_size: usize,
    /// Rows of the batch per dataset, to check the mix against the weights.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub data: std::collections::BTreeMap<String, usize>,
}

fn one() -> usize {
    1
}

/// Steps between the checks that every rank holds the same parameters.
const SYNC_CHECK_EVERY: usize = 50;

/// The results of the recipe's evaluations after a step: task → metric → value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: usize,
    pub eval: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
}

pub struct Trainer {
    pub recipe: Recipe,
    pub model: SentenceModel,
    /// Distillation: the frozen teacher.
    pub teacher: Option<SentenceModel>,
    /// GISTEmbed: the frozen guide model.
    guide: Option<crate::guide::Guide>,
    /// Distillation with `[teacher] cache`: the teacher's embeddings of every data file's sources.
    teacher_caches: Vec<crate::teacher_cache::TeacherCache>,
    pub opt: AdamW,
    loss: Box<dyn Loss>,
    embedding: Embedding,
    group: Box<dyn ProcessGroup>,
    data: pairs::Loader,
    pub dropout: Dropout,
    /// Steps completed.
    pub step: usize,
    pub history: Vec<StepRecord>,
    pub evals: Vec<EvalRecord>,
    out: PathBuf,
}

/// The loss a recipe names, and how its embeddings are computed (GradCache for `cached-*`).
pub fn make_loss(recipe: &Recipe) -> Result<(Box<dyn Loss>, Embedding)> {
    use crate::losses::{
        CoSENTLoss, CosineSimilarityLoss, GISTEmbedLoss, MarginMSELoss, MatryoshkaLoss,
        PairwiseSimilarity, TripletLoss,
    };
    let l = &recipe.loss;
    let mut loss: Box<dyn Loss> = match l.kind {
        LossKind::Mse => Box::new(MSELoss),
        LossKind::Cosent => Box::new(CoSENTLoss {
            scale: l.scale,
            similarity: l.similarity().into(),
        }),
        LossKind::Angle => Box::new(CoSENTLoss {
            scale: l.scale,
            similarity: PairwiseSimilarity::Angle,
        }),
        LossKind::CosineSimilarity => Box::new(CosineSimilarityLoss),
        LossKind::MarginMse => Box::new(MarginMSELoss {
            similarity: l.similarity().into(),
        }),
        LossKind::Triplet => Box::new(TripletLoss {
            distance: l.triplet_distance,
            margin: l.triplet_margin,
        }),
        LossKind::Gist | LossKind::CachedGist => Box::new(GISTEmbedLoss {
            temperature: l.temperature,
            margin_strategy: l.margin_strategy,
            margin: l.margin,
            contrast_anchors: l.contrast_anchors,
            contrast_positives: l.contrast_positives,
        }),
        k if k.symmetric() => Box::new(MultipleNegativesSymmetricRankingLoss {
            scale: l.scale,
            similarity: l.similarity(),
        }),
        _ => Box::new(MultipleNegativesRankingLoss {
            scale: l.scale,
            similarity: l.similarity(),
        }),
    };
    if !l.matryoshka_dims.is_empty() {
        loss = Box::new(MatryoshkaLoss::new(
            loss,
            &l.matryoshka_dims,
            l.matryoshka_weights.as_deref(),
        )?);
    }
    let embedding = if l.kind.cached() {
        Embedding::GradCache {
            mini_batch_size: l.mini_batch_size,
        }
    } else {
        Embedding::Direct
    };
    Ok((loss, embedding))
}

/// Tokenizes rows as the training loop does (each column padded to its longest row).
pub fn tokenize_batch(model: &SentenceModel, rows: &[pairs::Row]) -> Result<TrainBatch> {
    let tb = crate::data::batch_tokenizer(model, 1)?
        .tokenize(rows.to_vec(), vec![0; rows.len()], 0)
        .map_err(anyhow::Error::msg)?;
    crate::data::to_train_batch(model, tb)
}

/// Checkpoint and optimizer names of the Dense module's parameters (the encoder's have none of
/// this form).
pub const DENSE_PREFIX: &str = "dense/";

/// Loads the distillation teacher (frozen, on the student's device and compute dtype) and, when
/// the student's embeddings are narrower or wider than the teacher's and it has no Dense module
/// yet, gives the student a new projection to the teacher's dimension.
fn load_teacher(
    t: &crate::recipe::TeacherSection,
    student: &mut SentenceModel,
    student_opts: &LoadOptions,
    device: &candle_core::Device,
    seed: u64,
) -> Result<SentenceModel> {
    let opts = LoadOptions {
        max_seq_length: t.max_seq_length,
        compute_dtype: student_opts.compute_dtype,
        padded: student_opts.padded,
        ..Default::default()
    };
    let mut teacher = SentenceModel::load_on(Path::new(&t.model), &opts, device)
        .with_context(|| format!("loading teacher {}", t.model))?;
    if t.prompt.is_some() {
        teacher.prompt = t.prompt.clone();
    }
    let (s, d) = (student.full_dim(), teacher.full_dim());
    if s != d {
        if student.dense.is_some() {
            anyhow::bail!(
                "the student's embeddings have {s} dimensions (after its Dense module) and the                  teacher's {d}: they must match"
            );
        }
        eprintln!(
            "note: adding a Dense projection {s} -> {d} to the student (the teacher's dimension)"
        );
        student.dense = Some(model::dense::Dense::projection(s, d, seed, device)?);
    }
    Ok(teacher)
}

/// The teacher caches of every data file of the recipe: rank 0 builds the missing ones while the
/// other ranks wait, then every rank maps them.
fn open_teacher_caches(
    recipe: &Recipe,
    ts: &crate::recipe::TeacherSection,
    teacher: &SentenceModel,
    group: &dyn ProcessGroup,
) -> Result<Vec<crate::teacher_cache::TeacherCache>> {
    use crate::teacher_cache::TeacherCache;
    let policy: pairs::BadRowPolicy = recipe
        .train
        .on_bad_row
        .parse()
        .map_err(anyhow::Error::msg)?;
    let mut files = Vec::new();
    for spec in crate::data::dataset_specs(recipe)? {
        files.extend(spec.files);
    }
    let dir_of = |f: &Path| match &ts.cache_dir {
        Some(d) => PathBuf::from(d),
        None => f
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    if group.rank() == 0 {
        for f in &files {
            let (_, keys) = crate::teacher_cache::cache_paths(teacher, f, &dir_of(f));
            if keys.is_file() {
                continue;
            }
            let t0 = Instant::now();
            let mut done = 0usize;
            eprintln!("teacher cache: embedding the sources of {}", f.display());
            let c = TeacherCache::open_or_build(teacher, f, &dir_of(f), policy, 64, &mut |n| {
                done += n;
                eprint!("\r  {done} sources");
            })?;
            eprintln!(
                "\r  {} sources in {:.0} s -> {}",
                c.len(),
                t0.elapsed().as_secs_f64(),
                c.path().display()
            );
        }
    }
    // Every rank waits for rank 0's caches.
    group.any(false)?;
    files
        .iter()
        .map(|f| {
            let (npy, keys) = crate::teacher_cache::cache_paths(teacher, f, &dir_of(f));
            TeacherCache::open(&npy, &keys, teacher.full_dim())
        })
        .collect()
}

impl Trainer {
    /// Loads the base model and data of `recipe`; with `resume`, continues from that checkpoint
    /// folder (or the newest checkpoint under that output folder).
    pub fn new(mut recipe: Recipe, resume: Option<&Path>) -> Result<Self> {
        // `hf://` evaluation paths become their place in the hub cache (fetched if missing).
        for t in &mut recipe.eval {
            let local = crate::sources::local_path(&t.path)
                .with_context(|| format!("[[eval]] {}", t.display_name()))?;
            t.path = local.to_string_lossy().into_owned();
        }
        let group = crate::process_group::from_environment()?;
        if group.world_size() > 1 {
            let timeout = recipe.collective_timeout()?;
            crate::watchdog::start(group.rank(), timeout);
            crate::arrivals::start(group.as_ref(), timeout)?;
        }
        crate::agreement::check(&recipe, group.as_ref())?;
        if let (Some(repo), 0) = (&recipe.train.push_to, group.rank()) {
            crate::push::check_token(repo)?;
        }
        let world = group.world_size();
        if !recipe.train.batch_size.is_multiple_of(world) {
            anyhow::bail!(
                "[train] batch_size {} does not split evenly over {world} ranks",
                recipe.train.batch_size
            );
        }
        // Under a launcher, "cuda" means this rank's GPU on its machine.
        let device_name = match recipe.train.device.as_str() {
            "cuda" if world > 1 => format!("cuda:{}", crate::process_group::local_rank()),
            d => d.to_string(),
        };
        let device = model::device::parse_device(&device_name)
            .map_err(|e| anyhow::anyhow!("[train] {e}"))?;
        let group = group.on_device(&device)?;
        let compute = model::device::parse_dtype(&recipe.train.dtype)
            .map_err(|e| anyhow::anyhow!("[train] {e}"))?;
        let opts = LoadOptions {
            max_seq_length: recipe.model.max_seq_length,
            normalize: recipe.model.normalize,
            pooling: recipe.model.pooling,
            // Master weights stay f32; bf16 is the compute dtype only.
            dtype: None,
            compute_dtype: Some(compute),
            padded: recipe.model.padded,
        };
        let mut model = SentenceModel::load_on(Path::new(&recipe.model.base), &opts, &device)
            .with_context(|| format!("loading base model {}", recipe.model.base))?;
        let m = &recipe.model;
        if m.prompt.is_some() {
            model.prompt = m.prompt.clone();
        }
        if let Some(prompts) = &m.prompts {
            model.prompts.extend(prompts.clone());
        }
        if let Some(name) = &m.default_prompt_name {
            model.prompt = Some(crate::data::named_prompt(&recipe, &model.dir, name)?);
            model.default_prompt_name = Some(name.clone());
        }
        if let Some(include) = m.include_prompt {
            model.include_prompt = include;
        }
        if recipe.loss.kind != LossKind::Mse {
            // The model is saved to be compared the way it was trained.
            model.similarity_fn_name = recipe.loss.similarity().fn_name().into();
        }
        let teacher = match &recipe.teacher {
            Some(t) => Some(load_teacher(
                t,
                &mut model,
                &opts,
                &device,
                recipe.train.seed,
            )?),
            None => None,
        };
        let mut vars: Vec<(String, Var)> = model.encoder.params_mut().make_trainable()?;
        if let Some(d) = &mut model.dense {
            for (name, var) in d.params.make_trainable()? {
                vars.push((format!("{DENSE_PREFIX}{name}"), var));
            }
        }
        let t = &recipe.train;
        let opt = AdamW::new(
            vars,
            AdamWConfig {
                beta1: t.adam_beta1,
                beta2: t.adam_beta2,
                eps: t.adam_eps,
                weight_decay: t.weight_decay,
            },
        )?;
        // Every rank draws the same global batch and tokenizes only its own rows.
        // A cached teacher needs no tokens: its embeddings are looked up by the source text.
        let tokenizing_teacher = teacher
            .as_ref()
            .filter(|_| !recipe.teacher.as_ref().is_some_and(|t| t.cache));
        let tokenizer = crate::data::loader_tokenizer(
            &model,
            recipe.column_prompts(),
            tokenizing_teacher,
            t.pad_to_multiple_of,
        )?
        .sharded(group.rank(), group.world_size());
        let teacher_caches = match (&teacher, &recipe.teacher) {
            (Some(tm), Some(ts)) if ts.cache => open_teacher_caches(&recipe, ts, tm, &*group)?,
            _ => Vec::new(),
        };
        let data = crate::data::start_loader(&recipe, tokenizer)?;
        let (loss, embedding) = make_loss(&recipe)?;
        if let Some(&d) = recipe
            .loss
            .matryoshka_dims
            .iter()
            .find(|&&d| d > model.full_dim())
        {
            anyhow::bail!(
                "[loss] matryoshka_dims: {d} is larger than the model's embeddings ({} dimensions)",
                model.full_dim()
            );
        }
        let guide = match &recipe.loss.guide {
            Some(g) => Some(Guide::load(g, &model, &opts, &device)?),
            None => None,
        };
        let mut tr = Self {
            loss,
            embedding,
            group,
            out: recipe.output_dir(),
            dropout: Dropout::new(t.seed),
            model,
            teacher,
            guide,
            teacher_caches,
            opt,
            data,
            step: 0,
            history: Vec::new(),
            evals: Vec::new(),
            recipe,
        };
        if let Some(dir) = resume {
            let dir = checkpoint::resolve(dir)?;
            checkpoint::load(&mut tr, &dir)?;
        }
        Ok(tr)
    }

    pub fn output_dir(&self) -> &Path {
        &self.out
    }

    pub fn data_state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(self.data.state())?)
    }

    pub fn restore_data(&mut self, s: &serde_json::Value) -> Result<()> {
        let state: pairs::SamplerState = serde_json::from_value(s.clone())
            .context("the checkpoint's data position is not one this version can read")?;
        self.data.restore(&state).map_err(anyhow::Error::msg)
    }

    /// Rows skipped as bad so far (`on_bad_row = "skip"`).
    pub fn skipped_rows(&self) -> &pairs::SkipCounts {
        self.data.skipped()
    }

    /// This process's rank and the number of ranks.
    pub fn rank(&self) -> (usize, usize) {
        (self.group.rank(), self.group.world_size())
    }

    /// What the collectives have cost this rank so far.
    pub fn traffic(&self) -> crate::process_group::Traffic {
        self.group.traffic()
    }

    /// Rank 0 writes logs, evaluations, checkpoints and the model; the others only train.
    pub fn is_lead(&self) -> bool {
        self.group.rank() == 0
    }

    /// The loss as sentence-transformers names it (`Cached…` under GradCache).
    /// The loss as sentence-transformers names it (MatryoshkaLoss wrapping the recipe's).
    pub fn loss_name(&self) -> String {
        let inner = self.recipe.loss.kind.st_name();
        if self.recipe.loss.matryoshka_dims.is_empty() {
            inner.to_string()
        } else {
            format!("MatryoshkaLoss({inner})")
        }
    }

    /// One optimizer step.
    pub fn train_step(&mut self) -> Result<StepRecord> {
        let t0 = Instant::now();
        let t = &self.recipe.train;
        let lr = linear_warmup_decay(t.lr, self.step, t.warmup_steps, t.steps);
        let mut tb = self.data.next_batch().map_err(anyhow::Error::msg)?;
        let rows = tb.rows();
        let teacher_column = tb.teacher.take();
        let mut data = std::collections::BTreeMap::new();
        for &d in &tb.dataset {
            *data
                .entry(self.data.dataset_names()[d].clone())
                .or_insert(0) += 1;
        }
        let mut batch = crate::data::to_train_batch(&self.model, tb)?;
        if let (Some(teacher), Some(col)) = (&self.teacher, teacher_column) {
            batch.targets = Some(crate::data::teacher_embeddings(teacher, col)?);
        } else if !self.teacher_caches.is_empty() {
            batch.targets = Some(self.cached_targets(&batch)?);
        }
        if let Some(g) = &self.guide {
            batch.guide = Some(g.embed(&batch)?);
        }
        let out = crate::step::step(
            &self.model,
            &mut self.opt,
            &batch,
            self.loss.as_ref(),
            self.embedding,
            &mut self.dropout,
            self.group.as_ref(),
            lr,
            t.max_grad_norm,
        )?;
        self.step += 1;
        let rec = StepRecord {
            step: self.step,
            loss: out.loss,
            lr,
            grad_norm: out.grad_norm,
            world_size: self.group.world_size(),
            pairs_per_s: rows as f64 / t0.elapsed().as_secs_f64().max(1e-9),
            data,
        };
        self.history.push(rec.clone());
        Ok(rec)
    }

    /// The cached teacher embeddings [rows, D] of this rank's sources.
    fn cached_targets(&self, batch: &TrainBatch) -> Result<candle_core::Tensor> {
        let rows = batch.rows();
        let mut flat = Vec::new();
        for source in &batch.texts[0][batch.offset..batch.offset + rows] {
            let e = self
                .teacher_caches
                .iter()
                .find_map(|c| c.get(source))
                .with_context(|| {
                    format!(
                        "the source {:?} is in no teacher cache (did a data file change during \
                         the run?)",
                        source.chars().take(60).collect::<String>()
                    )
                })?;
            flat.extend(e);
        }
        let dim = flat.len() / rows.max(1);
        Ok(candle_core::Tensor::from_vec(
            flat,
            (rows, dim),
            &self.model.device,
        )?)
    }

    /// Runs every `[[eval]]` task of the recipe on the current weights.
    pub fn evaluate(&mut self) -> Result<EvalRecord> {
        let model = self.model.detached();
        let mut eval = std::collections::BTreeMap::new();
        for t in &self.recipe.eval {
            let name = t.display_name();
            let res = eval::run_task(&model, t).with_context(|| format!("evaluation {name}"))?;
            eval.insert(name, res);
        }
        let rec = EvalRecord {
            step: self.step,
            eval,
        };
        self.evals.push(rec.clone());
        Ok(rec)
    }

    /// Trains until the recipe's step count, or until `stop` is set (then saves a checkpoint
    /// and returns early). `on_step` sees every step (progress bars, traces). Returns whether the
    /// run finished.
    pub fn run(&mut self, stop: &AtomicBool, mut on_step: impl FnMut(&StepRecord)) -> Result<bool> {
        let log_path = self.out.join("train_log.jsonl");
        let mut log: Box<dyn Write> = if self.is_lead() {
            std::fs::create_dir_all(&self.out)
                .with_context(|| format!("{}: cannot create", self.out.display()))?;
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
                    .with_context(|| format!("{}: cannot open", log_path.display()))?,
            )
        } else {
            Box::new(std::io::sink())
        };
        let total = self.recipe.train.steps;
        // Whether rank 0 evaluated or wrote a checkpoint after the last step: the other ranks
        // then wait for it in the next collective for as long as that takes, which is no fault.
        let mut lead_busy = false;
        while self.step < total {
            crate::watchdog::set_step(self.step + 1);
            // Every rank stops at the same step, whichever saw the Ctrl-C.
            let stop_now = {
                let _unbounded = lead_busy.then(crate::watchdog::unbounded);
                self.group.any(stop.load(Ordering::SeqCst))?
            };
            if stop_now {
                self.save_checkpoint()?;
                return Ok(false);
            }
            let rec = self.train_step()?;
            writeln!(log, "{}", serde_json::to_string(&rec)?)
                .with_context(|| format!("{}: write failed", log_path.display()))?;
            on_step(&rec);
            let eval_every = self.recipe.train.eval_every;
            let last = self.step == total;
            let every = self.recipe.train.save_every;
            let evaluates = !self.recipe.eval.is_empty()
                && eval_every > 0
                && self.step.is_multiple_of(eval_every);
            let saves = every > 0 && self.step.is_multiple_of(every);
            lead_busy = !self.is_lead() && (evaluates || saves);
            if last || self.step.is_multiple_of(SYNC_CHECK_EVERY) {
                self.check_in_sync()?;
            }
            if self.is_lead()
                && !self.recipe.eval.is_empty()
                && (last || (eval_every > 0 && self.step.is_multiple_of(eval_every)))
            {
                let e = self.evaluate()?;
                writeln!(log, "{}", serde_json::to_string(&e)?)
                    .with_context(|| format!("{}: write failed", log_path.display()))?;
            }
            if every > 0 && self.step.is_multiple_of(every) && self.step < total {
                self.save_checkpoint()?;
            }
        }
        log.flush()?;
        Ok(true)
    }

    /// A checkpoint of the current step, written by rank 0 (every rank holds the same state).
    pub fn save_checkpoint(&self) -> Result<()> {
        if self.is_lead() {
            checkpoint::save(self)?;
        }
        Ok(())
    }

    /// Fails if any rank's parameters differ from this rank's.
    fn check_in_sync(&self) -> Result<()> {
        if self.group.world_size() == 1 {
            return Ok(());
        }
        let mut sum = 0f64;
        for (_, v) in &self.opt.vars {
            sum += v
                .as_tensor()
                .to_dtype(candle_core::DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        self.group
            .check_in_sync(sum)
            .with_context(|| format!("after step {}", self.step))
    }

    /// Writes the final model to `<output>/model` (under a temporary name first), the loss/lr
    /// plot to `<output>/training.svg`, and returns the model folder.
    pub fn save_final(&self) -> Result<PathBuf> {
        let dest = self.out.join("model");
        if !self.is_lead() {
            return Ok(dest);
        }
        let tmp = self.out.join("model.partial");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        model::save::save_sentence_model(&self.model, &tmp, &crate::card::model_card(self))?;
        if dest.exists() {
            std::fs::remove_dir_all(&dest)
                .with_context(|| format!("{}: cannot replace", dest.display()))?;
        }
        std::fs::rename(&tmp, &dest)
            .with_context(|| format!("{}: cannot rename into place", dest.display()))?;
        let svg = crate::plot::loss_lr_svg(&self.history);
        let plot = self.out.join("training.svg");
        std::fs::write(&plot, svg).with_context(|| format!("{}: write failed", plot.display()))?;
        Ok(dest)
    }
}
