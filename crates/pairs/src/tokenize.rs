//! Turning a batch of rows into padded token-id columns, ready to become tensors.

use crate::row::Row;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{Model, ModelWrapper, NormalizerWrapper, PreTokenizerWrapper};
use tokenizers::{Tokenizer, TruncationParams};

/// One column of a batch (anchors, positives, or the n-th hard negatives): ids padded to the
/// column's longest row, row-major `[rows, len]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenColumn {
    /// This rank's rows, row-major `[lengths.len(), len]`.
    pub ids: Vec<u32>,
    /// Real tokens of each of this rank's rows (the rest is padding).
    pub lengths: Vec<u32>,
    pub len: usize,
    /// The texts of the whole batch (every rank's rows): duplicate masking looks at all of them.
    pub texts: Vec<String>,
    /// Tokens of each of this rank's rows that are its prompt, the leading special token
    /// included (sentence-transformers' `prompt_length`, which pooling with `include_prompt =
    /// false` leaves out); empty when no row of the column has a prompt.
    pub prompt_lengths: Vec<u32>,
}

impl TokenColumn {
    /// The attention mask, 1 for tokens and 0 for padding, row-major `[rows, len]`.
    pub fn mask(&self) -> Vec<f32> {
        let mut m = Vec::with_capacity(self.lengths.len() * self.len);
        for &l in &self.lengths {
            m.extend(std::iter::repeat_n(1f32, l as usize));
            m.extend(std::iter::repeat_n(0f32, self.len - l as usize));
        }
        m
    }
}

/// A batch ready for the trainer: column 0 anchors, 1 positives, 2.. hard negatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    pub columns: Vec<TokenColumn>,
    /// Column 0 again, tokenized by a distillation teacher's own tokenizer (see
    /// `BatchTokenizer::with_teacher`).
    pub teacher: Option<TokenColumn>,
    /// Where this rank's tokenized rows start in the whole batch (0 in one process).
    pub offset: usize,
    /// The dataset of each row.
    pub dataset: Vec<usize>,
    pub duplicates_skipped: u64,
    /// Every row's scores (the whole batch), when any row has some.
    pub scores: Option<Vec<Vec<f32>>>,
}

impl TokenBatch {
    /// Rows of the whole batch.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.texts.len())
    }

    /// Rows tokenized here (this rank's share).
    pub fn local_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.lengths.len())
    }

    /// Real (unpadded) tokens in the batch.
    pub fn tokens(&self) -> u64 {
        self.columns
            .iter()
            .flat_map(|c| c.lengths.iter())
            .map(|&l| l as u64)
            .sum()
    }
}

/// Tokenizes batches the way the model will see them.
#[derive(Clone)]
pub struct BatchTokenizer {
    tok: Tokenizer,
    pad_id: u32,
    multiple_of: usize,
    max_len: usize,
    fast: Option<AsciiWordPiece>,
    /// (rank, world size): tokenize only rank's 1/world of each batch's rows.
    shard: (usize, usize),
    /// Put before every text (a model's prompt, e.g. e5's `query: `).
    prefix: Option<String>,
    /// Prompts per dataset and column, before `prefix` (which applies where they give none).
    column_prompts: Vec<crate::ColumnPrompts>,
    /// The token length of every prompt above (see `TokenColumn::prompt_lengths`).
    prompt_lengths: std::collections::HashMap<String, u32>,
    /// A second tokenizer for column 0 (a distillation teacher's).
    teacher: Option<Box<BatchTokenizer>>,
}

/// A shortcut through BERT-style tokenizers (BertNormalizer with clean_text, BertPreTokenizer,
/// WordPiece), which cover BERT, MiniLM and MPNet. The general path spends most of its time on
/// offset bookkeeping and Unicode category lookups (measured: 3/4 of the loader's CPU time);
/// this one applies the same steps (clean, space out CJK, NFD and drop nonspacing marks,
/// lowercase, split on whitespace and punctuation) with the same Unicode tables but keeps no
/// offsets, and handles ASCII texts with byte operations. The words still go through the
/// tokenizer's own WordPiece model, and `tests/fast_tokenizer.rs` (crate `train`) checks the ids
/// equal the general path's on real tokenizers.
#[derive(Clone)]
struct AsciiWordPiece {
    wordpiece: WordPiece,
    lowercase: bool,
    strip_accents: bool,
    chinese: bool,
    /// Special tokens around the text, e.g. [CLS] … [SEP].
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// First bytes of added tokens: a text containing one takes the general path, which
    /// matches added tokens inside texts.
    added_first_bytes: Vec<u8>,
}

impl AsciiWordPiece {
    fn detect(tok: &Tokenizer) -> Option<Self> {
        let (lowercase, strip_accents, chinese) = match tok.get_normalizer()? {
            NormalizerWrapper::BertNormalizer(n) if n.clean_text => (
                n.lowercase,
                n.strip_accents.unwrap_or(n.lowercase),
                n.handle_chinese_chars,
            ),
            _ => return None,
        };
        if !matches!(
            tok.get_pre_tokenizer()?,
            PreTokenizerWrapper::BertPreTokenizer(_)
        ) {
            return None;
        }
        let ModelWrapper::WordPiece(wp) = tok.get_model() else {
            return None;
        };
        let mut added_first_bytes: Vec<u8> = Vec::new();
        for t in tok.get_added_tokens_decoder().values() {
            let b = *t.content.as_bytes().first()?;
            added_first_bytes.extend([b.to_ascii_lowercase(), b.to_ascii_uppercase()]);
        }
        // Where the specials go, from the general path: "a" → prefix, ids of "a", suffix.
        let with = tok.encode_fast("a", true).ok()?.get_ids().to_vec();
        let core: Vec<u32> = wp.tokenize("a").ok()?.iter().map(|t| t.id).collect();
        let at =
            (0..=with.len().checked_sub(core.len())?).find(|&i| with[i..].starts_with(&core))?;
        let prefix = with[..at].to_vec();
        let suffix = with[at + core.len()..].to_vec();
        let empty = tok.encode_fast("", true).ok()?.get_ids().to_vec();
        if empty != [prefix.as_slice(), &suffix].concat() {
            return None;
        }
        Some(Self {
            wordpiece: wp.clone(),
            lowercase,
            strip_accents,
            chinese,
            prefix,
            suffix,
            added_first_bytes,
        })
    }

    /// The ids vector with the leading specials, and how long it may grow before the trailing
    /// ones (truncation counts the specials, as the tokenizer's own does).
    fn start(&self, max_len: usize, text_bytes: usize) -> Option<(Vec<u32>, usize)> {
        let room = max_len.checked_sub(self.prefix.len() + self.suffix.len())?;
        let mut ids = Vec::with_capacity(self.prefix.len() + text_bytes / 3 + self.suffix.len());
        ids.extend_from_slice(&self.prefix);
        Some((ids, self.prefix.len() + room))
    }

    /// Ends a word: its word pieces go to `ids`, up to `limit`.
    fn flush(&self, word: &mut String, ids: &mut Vec<u32>, limit: usize) -> Option<()> {
        if !word.is_empty() && ids.len() < limit {
            for t in self.wordpiece.tokenize(word).ok()? {
                if ids.len() == limit {
                    break;
                }
                ids.push(t.id);
            }
        }
        word.clear();
        Some(())
    }

    /// The ids of `text`, or `None` when it must take the general path.
    fn encode(&self, text: &str, max_len: usize, word: &mut String) -> Option<Vec<u32>> {
        let b = text.as_bytes();
        if b.iter().any(|c| self.added_first_bytes.contains(c)) {
            return None;
        }
        if !text.is_ascii() {
            return self.encode_unicode(text, max_len, word);
        }
        let (mut ids, limit) = self.start(max_len, b.len())?;
        let flush = |word: &mut String, ids: &mut Vec<u32>| self.flush(word, ids, limit);
        word.clear();
        for &c in b {
            match c {
                // clean_text: control characters go, whitespace splits.
                b'\t' | b'\n' | b'\r' | b' ' => flush(word, &mut ids)?,
                0..=0x1f | 0x7f => {}
                c if c.is_ascii_punctuation() => {
                    flush(word, &mut ids)?;
                    word.push(c as char);
                    flush(word, &mut ids)?;
                }
                c if self.lowercase => word.push(c.to_ascii_lowercase() as char),
                c => word.push(c as char),
            }
            if ids.len() >= limit {
                break;
            }
        }
        flush(word, &mut ids)?;
        ids.extend_from_slice(&self.suffix);
        Some(ids)
    }

    /// BertNormalizer then BertPreTokenizer, character by character, in their order.
    fn encode_unicode(&self, text: &str, max_len: usize, word: &mut String) -> Option<Vec<u32>> {
        use unicode_categories::UnicodeCategories;
        use unicode_normalization_alignments::UnicodeNormalization;
        let mut clean = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            // clean_text: drop NUL, U+FFFD and control/format/private-use characters (tab and
            // line breaks count as whitespace), whitespace becomes a space.
            let control = !matches!(c, '\t' | '\n' | '\r') && c.is_other();
            if c == '\0' || c == '\u{fffd}' || control {
                continue;
            }
            if matches!(c, '\t' | '\n' | '\r') || c.is_whitespace() {
                clean.push(' ');
            } else if self.chinese && is_chinese_char(c) {
                clean.push(' ');
                clean.push(c);
                clean.push(' ');
            } else {
                clean.push(c);
            }
        }
        let normalized: String = if self.strip_accents {
            clean
                .nfd()
                .map(|(c, _)| c)
                .filter(|c| !c.is_mark_nonspacing())
                .collect()
        } else {
            clean
        };
        let (mut ids, limit) = self.start(max_len, text.len())?;
        let flush = |word: &mut String, ids: &mut Vec<u32>| self.flush(word, ids, limit);
        word.clear();
        let one = |c: char, word: &mut String, ids: &mut Vec<u32>| -> Option<()> {
            if c.is_whitespace() {
                flush(word, ids)
            } else if c.is_ascii_punctuation() || c.is_punctuation() {
                flush(word, ids)?;
                word.push(c);
                flush(word, ids)
            } else {
                word.push(c);
                Some(())
            }
        };
        for c in normalized.chars() {
            if self.lowercase {
                for l in c.to_lowercase() {
                    one(l, word, &mut ids)?;
                }
            } else {
                one(c, word, &mut ids)?;
            }
            if ids.len() >= limit {
                break;
            }
        }
        flush(word, &mut ids)?;
        ids.extend_from_slice(&self.suffix);
        Some(ids)
    }
}

/// The CJK blocks BertNormalizer puts spaces around.
fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

impl BatchTokenizer {
    /// `tok` as the model uses it; its truncation is replaced by `max_len` and its padding
    /// turned off (padding is per column, here). Lengths are rounded up to `multiple_of`.
    pub fn new(
        mut tok: Tokenizer,
        max_len: usize,
        pad_id: u32,
        multiple_of: usize,
    ) -> Result<Self, TokenizeError> {
        tok.with_padding(None);
        tok.with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|e| TokenizeError::Setup(e.to_string()))?;
        Ok(Self {
            fast: AsciiWordPiece::detect(&tok),
            tok,
            pad_id,
            multiple_of: multiple_of.max(1),
            max_len,
            shard: (0, 1),
            prefix: None,
            column_prompts: Vec::new(),
            prompt_lengths: Default::default(),
            teacher: None,
        })
    }

    /// Puts `prefix` before every text it tokenizes (the batch's texts stay as they were).
    pub fn with_prefix(mut self, prefix: Option<String>) -> Result<Self, TokenizeError> {
        self.prefix = prefix.filter(|p| !p.is_empty());
        if let Some(p) = self.prefix.clone() {
            self.measure(&p)?;
        }
        Ok(self)
    }

    /// Puts each dataset's column prompts (index: the batch's dataset numbers) before its texts,
    /// in place of the prefix for the columns they name.
    pub fn with_column_prompts(
        mut self,
        prompts: Vec<crate::ColumnPrompts>,
    ) -> Result<Self, TokenizeError> {
        for p in &prompts {
            for q in [&p.anchor, &p.positive, &p.negative].into_iter().flatten() {
                self.measure(q)?;
            }
        }
        self.column_prompts = prompts;
        Ok(self)
    }

    /// Records the token length of `prompt` as sentence-transformers measures it: the prompt
    /// tokenized alone, without a trailing special token ([SEP], </s>).
    fn measure(&mut self, prompt: &str) -> Result<(), TokenizeError> {
        if self.prompt_lengths.contains_key(prompt) {
            return Ok(());
        }
        let n = prompt_length(&self.tok, prompt)?;
        self.prompt_lengths.insert(prompt.to_string(), n);
        Ok(())
    }

    /// The prompt of column `c` of a row of dataset `dataset`: its column prompt where one is
    /// set (an empty one meaning none, as sentence-transformers reads `""`), else the prefix.
    fn prompt_of(&self, dataset: usize, c: usize) -> Option<&str> {
        match self.column_prompts.get(dataset).and_then(|p| p.get(c)) {
            Some(p) => Some(p).filter(|p| !p.is_empty()),
            None => self.prefix.as_deref(),
        }
    }

    /// Also tokenizes column 0 (the sources of parallel rows) with `teacher`, the tokenizer of a
    /// distillation teacher, into `TokenBatch::teacher`.
    pub fn with_teacher(mut self, teacher: BatchTokenizer) -> Self {
        self.teacher = Some(Box::new(teacher));
        self
    }

    /// Tokenizes only rank `rank` of `world`'s contiguous share of each batch's rows (padded to
    /// that share's longest row), keeping the texts of the whole batch.
    pub fn sharded(mut self, rank: usize, world: usize) -> Self {
        self.shard = (rank, world.max(1));
        self
    }

    /// Turns the ASCII shortcut off (to compare it with the general path).
    pub fn without_shortcut(mut self) -> Self {
        self.fast = None;
        self
    }

    /// Whether the tokenizer qualifies for the ASCII shortcut.
    pub fn has_shortcut(&self) -> bool {
        self.fast.is_some()
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        self.encode_with(self.prefix.as_deref(), text)
    }

    fn encode_with(&self, prompt: Option<&str>, text: &str) -> Result<Vec<u32>, TokenizeError> {
        match prompt {
            Some(p) => self.encode_raw(&format!("{p}{text}")),
            None => self.encode_raw(text),
        }
    }

    fn encode_raw(&self, text: &str) -> Result<Vec<u32>, TokenizeError> {
        if let Some(f) = &self.fast {
            if let Some(ids) = f.encode(text, self.max_len, &mut String::new()) {
                return Ok(ids);
            }
        }
        let enc = self
            .tok
            .encode_fast(text, true)
            .map_err(|e| TokenizeError::Text {
                text: preview(text),
                msg: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Every row contributes as many columns as the shortest row has (pairs beside triplets
    /// train as pairs for that batch).
    pub fn tokenize(
        &self,
        rows: Vec<Row>,
        dataset: Vec<usize>,
        duplicates_skipped: u64,
    ) -> Result<TokenBatch, TokenizeError> {
        let k = rows.iter().map(|r| r.len()).min().unwrap_or(2);
        let mut texts: Vec<Vec<String>> = (0..k).map(|_| Vec::with_capacity(rows.len())).collect();
        let scored = rows.iter().any(|r| !r.scores.is_empty());
        let mut scores = Vec::with_capacity(if scored { rows.len() } else { 0 });
        for row in rows {
            if scored {
                scores.push(row.scores);
            }
            for (c, t) in row.texts.into_iter().take(k).enumerate() {
                texts[c].push(t);
            }
        }
        let (rank, world) = self.shard;
        let n = dataset.len();
        if !n.is_multiple_of(world) {
            return Err(TokenizeError::Shard(format!(
                "a batch of {n} rows does not split evenly over {world} ranks"
            )));
        }
        let local = rank * n / world..(rank + 1) * n / world;
        let teacher = match &self.teacher {
            Some(t) => Some(t.column(texts[0].clone(), &local, 0, &dataset)?),
            None => None,
        };
        let mut columns = Vec::with_capacity(k);
        for (c, col) in texts.into_iter().enumerate() {
            columns.push(self.column(col, &local, c, &dataset)?);
        }
        Ok(TokenBatch {
            columns,
            teacher,
            offset: local.start,
            dataset,
            duplicates_skipped,
            scores: scored.then_some(scores),
        })
    }

    /// Rows `local` of a column's texts (column `c`; `dataset`: each row's), tokenized with
    /// their prompts and padded; the column keeps every text.
    fn column(
        &self,
        texts: Vec<String>,
        local: &std::ops::Range<usize>,
        c: usize,
        dataset: &[usize],
    ) -> Result<TokenColumn, TokenizeError> {
        let mut prompt_lengths = Vec::new();
        let mut ids = Vec::with_capacity(local.len());
        for r in local.clone() {
            let prompt = self.prompt_of(dataset.get(r).copied().unwrap_or(0), c);
            ids.push(self.encode_with(prompt, &texts[r])?);
            prompt_lengths.push(prompt.map_or(0, |p| self.prompt_lengths[p]));
        }
        if prompt_lengths.iter().all(|&n| n == 0) {
            prompt_lengths.clear();
        }
        let mut col = self.pad(ids, texts);
        col.prompt_lengths = prompt_lengths;
        Ok(col)
    }

    fn pad(&self, ids: Vec<Vec<u32>>, texts: Vec<String>) -> TokenColumn {
        let mut len = ids.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        len = len.div_ceil(self.multiple_of) * self.multiple_of;
        let mut flat = Vec::with_capacity(ids.len() * len);
        let mut lengths = Vec::with_capacity(ids.len());
        for r in &ids {
            flat.extend_from_slice(r);
            flat.extend(std::iter::repeat_n(self.pad_id, len - r.len()));
            lengths.push(r.len() as u32);
        }
        TokenColumn {
            ids: flat,
            lengths,
            len,
            texts,
            prompt_lengths: Vec::new(),
        }
    }
}

/// The length of `prompt` in tokens as sentence-transformers counts it (`prompt_length`): the
/// prompt tokenized alone with the special tokens, less a trailing special token.
pub fn prompt_length(tok: &Tokenizer, prompt: &str) -> Result<u32, TokenizeError> {
    let enc = tok
        .encode_fast(prompt, true)
        .map_err(|e| TokenizeError::Text {
            text: preview(prompt),
            msg: e.to_string(),
        })?;
    let ids = enc.get_ids();
    let special = |id: u32| {
        tok.get_added_tokens_decoder()
            .get(&id)
            .is_some_and(|t| t.special)
    };
    let trailing = ids.last().is_some_and(|&id| special(id));
    Ok((ids.len() - usize::from(trailing)) as u32)
}

fn preview(t: &str) -> String {
    t.chars().take(60).collect()
}

/// What the tokenizer can fail at.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenizeError {
    #[error("cannot set up the tokenizer: {0}")]
    Setup(String),
    #[error("cannot tokenize {text:?}: {msg}")]
    Text { text: String, msg: String },
    #[error("{0}")]
    Shard(String),
}
