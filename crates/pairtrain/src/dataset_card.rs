//! A folder of pair files made ready for the hub: every row checked, rows written as JSON lists
//! rewritten as objects (Hugging Face `datasets` reads JSON objects only; the texts are
//! unchanged, the shard names and compression too), and a dataset card whose front matter
//! declares one configuration per kind of file and its splits, so that
//! `datasets.load_dataset("org/name", "title_body")` reads it, with the miners' stats.json
//! summarised (sources, filters, row counts, licence).

use anyhow::{bail, Context, Result};
use hub::LocalFile;
use pairs::reader::{Line, PairReader};
use pairs::RowFormat;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// File names that are splits rather than kinds of pairs (Reddit's `train`/`test`).
const SPLITS: &[&str] = &["train", "test", "validation", "dev"];

/// One data file of the folder.
struct DataFile {
    /// `/`-separated path in the folder.
    rel: String,
    source: PathBuf,
    config: String,
    split: String,
    rows: u64,
    /// Rows written as JSON lists: (texts, scores) counts seen.
    list_widths: BTreeSet<(usize, usize)>,
    object_rows: u64,
}

/// How rows written as lists become objects, for one configuration.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Every row has exactly these many texts (2 or 3); else `negative` is a list.
    fixed_texts: Option<usize>,
    /// Every row has one score (`score`); more or varying: `scores`; none: no column.
    scores: Option<bool>,
}

impl Layout {
    fn of(widths: &BTreeSet<(usize, usize)>) -> Self {
        let texts: BTreeSet<usize> = widths.iter().map(|w| w.0).collect();
        let scores: BTreeSet<usize> = widths.iter().map(|w| w.1).collect();
        Layout {
            fixed_texts: match texts.iter().collect::<Vec<_>>().as_slice() {
                [&n] if n <= 3 => Some(n),
                _ => None,
            },
            scores: match scores.iter().collect::<Vec<_>>().as_slice() {
                [0] => None,
                [1] => Some(true),
                _ => Some(false),
            },
        }
    }

    fn columns(&self) -> Vec<&'static str> {
        let mut c = vec!["anchor", "positive"];
        if self.fixed_texts != Some(2) {
            c.push("negative");
        }
        match self.scores {
            Some(true) => c.push("score"),
            Some(false) => c.push("scores"),
            None => {}
        }
        c
    }

    fn object(&self, row: &pairs::Row) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("anchor".into(), row.texts[0].clone().into());
        o.insert("positive".into(), row.texts[1].clone().into());
        match self.fixed_texts {
            Some(2) => {}
            Some(3) => {
                o.insert("negative".into(), row.texts[2].clone().into());
            }
            _ => {
                o.insert("negative".into(), json!(row.texts[2..]));
            }
        }
        match self.scores {
            Some(true) => {
                o.insert("score".into(), json!(row.scores[0]));
            }
            Some(false) => {
                o.insert("scores".into(), json!(row.scores));
            }
            None => {}
        }
        Value::Object(o)
    }
}

/// The name a shard's kind goes by: `title_body-00003.jsonl.gz` → `title_body`.
fn kind_of(file_name: &str) -> String {
    let lower = file_name.to_lowercase();
    let mut stem = file_name;
    for ext in [".jsonl", ".json", ".tsv", ".parquet"] {
        if let Some(i) = lower.find(ext) {
            stem = &file_name[..i];
            break;
        }
    }
    let stem = match stem.rsplit_once('-') {
        Some((a, n)) if !a.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => a,
        _ => stem,
    };
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn is_data(name: &str) -> bool {
    let n = name.to_lowercase();
    [".jsonl", ".json.gz", ".tsv", ".parquet"]
        .iter()
        .any(|e| n.contains(e))
}

/// Reads every row of `f` (an error names the file and line), counting rows and list shapes.
fn scan(f: &mut DataFile) -> Result<()> {
    let mut r = PairReader::open(&f.source).map_err(|e| anyhow::anyhow!("{e}"))?;
    if r.format() != RowFormat::Jsonl {
        while let Some((line, parsed)) = r.next_parsed() {
            parsed.map_err(|p| anyhow::anyhow!("{}:{line}: {p}", f.source.display()))?;
            f.rows += 1;
        }
        return Ok(());
    }
    let mut n = 0u64;
    loop {
        n += 1;
        let text = match r.next_line() {
            Line::End => break,
            Line::Bad(p) => bail!("{}:{n}: {p}", f.source.display()),
            Line::Text(t) if t.trim().is_empty() => continue,
            Line::Text(t) => t.to_string(),
        };
        let row = pairs::parse_row(&text)
            .map_err(|p| anyhow::anyhow!("{}:{n}: {p}", f.source.display()))?;
        if text.trim_start().starts_with('[') {
            f.list_widths.insert((row.texts.len(), row.scores.len()));
        } else {
            f.object_rows += 1;
        }
        f.rows += 1;
    }
    Ok(())
}

/// `f` with its list rows as objects, into `out` in the same compression.
fn rewrite(f: &DataFile, layout: Layout, out: &Path) -> Result<()> {
    if let Some(p) = out.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("{}: cannot create", p.display()))?;
    }
    let file =
        std::fs::File::create(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let name = f.rel.to_lowercase();
    let mut w: Box<dyn Write> = if name.ends_with(".gz") {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::new(file),
            flate2::Compression::default(),
        ))
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        Box::new(zstd::Encoder::new(BufWriter::new(file), 3)?.auto_finish())
    } else {
        Box::new(BufWriter::new(file))
    };
    let mut r = PairReader::open(&f.source).map_err(|e| anyhow::anyhow!("{e}"))?;
    loop {
        let text = match r.next_line() {
            Line::End => break,
            Line::Bad(p) => bail!("{}: {p}", f.source.display()),
            Line::Text(t) if t.trim().is_empty() => continue,
            Line::Text(t) => t.to_string(),
        };
        let line = if text.trim_start().starts_with('[') {
            let row = pairs::parse_row(&text).map_err(|p| anyhow::anyhow!("{p}"))?;
            layout.object(&row).to_string()
        } else {
            text
        };
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    drop(w);
    Ok(())
}

/// The licence of what a miner read, from its input names.
fn licence_of(inputs: &[String]) -> (&'static str, &'static str) {
    let all = inputs.join(" ").to_lowercase();
    if all.contains("stackexchange") || all.contains("stackoverflow") {
        (
            "cc-by-sa-4.0",
            "Stack Exchange content is licensed CC BY-SA 4.0 (older posts: 2.5/3.0) by its \
             authors; attribute them as Stack Exchange's terms ask.",
        )
    } else if all.contains("wiki") {
        (
            "cc-by-sa-4.0",
            "Wikipedia text is licensed CC BY-SA 4.0 (and GFDL) by its authors.",
        )
    } else if all.contains("rc_") || all.contains("rs_") || all.contains("reddit") {
        (
            "other",
            "Reddit comments carry no open licence: Reddit's terms of use apply to their reuse.",
        )
    } else {
        (
            "other",
            "The licence of the source was not recognised: pass --license.",
        )
    }
}

/// Checks and prepares `dir` for the hub: the files to push (some rewritten under `scratch`),
/// its README.md card included.
pub fn prepare(
    dir: &Path,
    repo: &str,
    license: Option<&str>,
    scratch: &Path,
) -> Result<Vec<LocalFile>> {
    let mut all = LocalFile::folder(dir)?;
    if let Some(p) = all.iter().find(|f| f.path_in_repo.ends_with(".partial")) {
        bail!(
            "{}: an unfinished output (a run was interrupted); finish the run or remove it; \
             nothing was sent",
            dir.join(&p.path_in_repo).display()
        );
    }
    let mut data: Vec<DataFile> = Vec::new();
    for f in &all {
        let name = f.path_in_repo.rsplit('/').next().unwrap_or_default();
        if !is_data(name) {
            continue;
        }
        let kind = kind_of(name);
        let (config, split) = if SPLITS.contains(&kind.as_str()) {
            ("default".to_string(), kind.clone())
        } else {
            (kind, "train".to_string())
        };
        let mut d = DataFile {
            rel: f.path_in_repo.clone(),
            source: f.source.clone(),
            config,
            split,
            rows: 0,
            list_widths: BTreeSet::new(),
            object_rows: 0,
        };
        scan(&mut d)?;
        data.push(d);
    }
    if data.is_empty() {
        bail!(
            "{}: no pair files (.jsonl, .jsonl.gz/.zst, .tsv, .parquet) here; nothing was sent",
            dir.display()
        );
    }
    // One layout per configuration, so that its files agree on their columns.
    let mut widths: BTreeMap<String, BTreeSet<(usize, usize)>> = BTreeMap::new();
    for d in &data {
        widths
            .entry(d.config.clone())
            .or_default()
            .extend(d.list_widths.iter().copied());
    }
    let layouts: BTreeMap<String, Layout> = widths
        .iter()
        .map(|(c, w)| (c.clone(), Layout::of(w)))
        .collect();
    for d in &data {
        if d.list_widths.is_empty() {
            continue;
        }
        let out = scratch.join(&d.rel);
        rewrite(d, layouts[&d.config], &out)?;
        let i = all.iter().position(|f| f.path_in_repo == d.rel).unwrap();
        all[i] = LocalFile::read(&out, &d.rel)?;
    }

    let stats = read_stats(&all)?;
    let card = card(repo, license, &data, &layouts, &stats);
    let has_card = all.iter().any(|f| f.path_in_repo == "README.md");
    if has_card {
        eprintln!("keeping the folder's own README.md as the dataset card");
    } else {
        let path = scratch.join("README.md");
        std::fs::write(&path, card).with_context(|| format!("{}: cannot write", path.display()))?;
        all.push(LocalFile::read(&path, "README.md")?);
    }
    Ok(all)
}

/// Every stats.json of the folder (a miner's or a filter's), by its folder.
fn read_stats(files: &[LocalFile]) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for f in files {
        if f.path_in_repo == "stats.json" || f.path_in_repo.ends_with("/stats.json") {
            let v: Value = serde_json::from_slice(&std::fs::read(&f.source)?)
                .with_context(|| format!("{}: not JSON", f.source.display()))?;
            let folder = f
                .path_in_repo
                .rsplit_once('/')
                .map_or(".".to_string(), |(d, _)| d.to_string());
            out.push((folder, v));
        }
    }
    Ok(out)
}

fn size_category(n: u64) -> &'static str {
    match n {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        10_000_000..100_000_000 => "10M<n<100M",
        100_000_000..1_000_000_000 => "100M<n<1B",
        _ => "n>1B",
    }
}

/// A YAML string: JSON's double-quoted form is valid YAML.
fn q(s: &str) -> String {
    Value::from(s).to_string()
}

fn card(
    repo: &str,
    license: Option<&str>,
    data: &[DataFile],
    layouts: &BTreeMap<String, Layout>,
    stats: &[(String, Value)],
) -> String {
    let inputs: Vec<String> = stats
        .iter()
        .flat_map(|(_, v)| v["inputs"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i.as_str().map(String::from))
        .collect();
    let (guessed, licence_note) = licence_of(&inputs);
    let licence = license.unwrap_or(guessed);
    let total: u64 = data.iter().map(|d| d.rows).sum();
    // config → split → files
    let mut configs: BTreeMap<&str, BTreeMap<&str, Vec<&DataFile>>> = BTreeMap::new();
    for d in data {
        configs
            .entry(&d.config)
            .or_default()
            .entry(&d.split)
            .or_default()
            .push(d);
    }
    let mut y = String::from("---\n");
    y += &format!("license: {licence}\n");
    y += "task_categories:\n- sentence-similarity\n";
    y += "tags:\n- sentence-transformers\n- pairtrain\n";
    y += &format!("size_categories:\n- {}\n", size_category(total));
    y += "configs:\n";
    for (c, splits) in &configs {
        y += &format!("- config_name: {}\n  data_files:\n", q(c));
        for (s, files) in splits {
            y += &format!("  - split: {}\n    path:\n", q(s));
            for f in files {
                y += &format!("    - {}\n", q(&f.rel));
            }
        }
    }
    y += "---\n\n";
    y += &format!("# {repo}\n\n");
    y += &format!(
        "Text pairs for training sentence embeddings, made with pairtrain {} and published with \
         `pairtrain push --dataset`. {total} rows in {} configuration(s).\n\n",
        env!("CARGO_PKG_VERSION"),
        configs.len()
    );
    y += "## Configurations\n\n| configuration | split | rows | files | columns |\n| --- | --- | --- | --- | --- |\n";
    for (c, splits) in &configs {
        for (s, files) in splits {
            let rows: u64 = files.iter().map(|f| f.rows).sum();
            let cols = if files.iter().all(|f| f.list_widths.is_empty()) {
                "as in the files".to_string()
            } else {
                layouts[*c].columns().join(", ")
            };
            y += &format!("| {c} | {s} | {rows} | {} | {cols} |\n", files.len());
        }
    }
    y += "\nRows the miners wrote as JSON lists (`[anchor, positive, negatives…]`) are objects \
          here, with sentence-transformers' column names; the texts are unchanged.\n\n";
    y += "## Use\n\n```python\nfrom datasets import load_dataset\n\n";
    let first = configs.keys().next().copied().unwrap_or("default");
    y += &format!("ds = load_dataset({}, {})\n```\n\n", q(repo), q(first));
    y += "In a pairtrain recipe:\n\n```toml\n[[data]]\n";
    if let Some(f) = data.iter().find(|d| d.config == first) {
        y += &format!("path = \"hf://datasets/{repo}/{}\"\n", f.rel);
    }
    y += "```\n\n";
    if !stats.is_empty() {
        y += "## Sources\n\n";
        for (folder, v) in stats {
            y += &format!("### {folder}\n\n");
            let ins: Vec<String> = v["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_str())
                .map(|i| format!("`{}`", i.rsplit('/').next().unwrap_or(i)))
                .collect();
            if !ins.is_empty() {
                y += &format!("- source dumps: {}\n", ins.join(", "));
            }
            if let Some(l) = v["language"].as_str() {
                y += &format!("- language: {l}\n");
            }
            if let Some(n) = v["rows_in"].as_u64() {
                y += &format!("- records read: {n}\n");
            }
            let counts = |key: &str| -> Vec<String> {
                v[key]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect()
            };
            let out = counts("rows_out");
            if !out.is_empty() {
                y += &format!("- rows written: {}\n", out.join(", "));
            }
            let filtered = counts("filtered");
            if !filtered.is_empty() {
                y += &format!("- dropped by the filters: {}\n", filtered.join(", "));
            }
            y += "\n";
        }
    }
    y += &format!("## Licence\n\n`{licence}`. {licence_note}\n");
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_splits_come_from_shard_names() {
        assert_eq!(kind_of("title_body-00003.jsonl.gz"), "title_body");
        assert_eq!(kind_of("train-00000.jsonl.gz"), "train");
        assert_eq!(kind_of("triplets.parquet"), "triplets");
        assert_eq!(kind_of("pairs 2.jsonl"), "pairs_2");
    }

    #[test]
    fn list_rows_become_objects_of_one_layout() {
        let row = |t: &[&str], s: &[f32]| pairs::Row {
            texts: t.iter().map(|x| x.to_string()).collect(),
            scores: s.to_vec(),
        };
        let l = Layout::of(&[(2, 0)].into());
        assert_eq!(
            l.object(&row(&["a", "b"], &[])),
            json!({"anchor": "a", "positive": "b"})
        );
        let l = Layout::of(&[(3, 0)].into());
        assert_eq!(
            l.object(&row(&["a", "b", "c"], &[])),
            json!({"anchor": "a", "positive": "b", "negative": "c"})
        );
        // Widths vary: negatives are always a list.
        let l = Layout::of(&[(2, 0), (4, 0)].into());
        assert_eq!(
            l.object(&row(&["a", "b"], &[])),
            json!({"anchor": "a", "positive": "b", "negative": []})
        );
        let l = Layout::of(&[(2, 1)].into());
        assert_eq!(
            l.object(&row(&["a", "b"], &[0.5])),
            json!({"anchor": "a", "positive": "b", "score": 0.5})
        );
    }
}
