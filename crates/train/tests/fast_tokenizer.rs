//! The loader's BERT shortcut gives exactly the ids of the general tokenizer path, on the real
//! all-MiniLM-L6-v2 and all-mpnet-base-v2 tokenizers (and their normalizer switched to cased,
//! accent-keeping and no-CJK variants), for ASCII and Unicode texts, and the
//! sentence-transformers golden ids.

use model::rng::Rng;
use pairs::BatchTokenizer;
use test_support::{golden, minilm_dir, mpnet_dir, shared_dir};

/// ASCII texts that probe every branch: control characters, all whitespace kinds, every
/// punctuation mark, long words ([UNK] past 100 characters), bracketed text near special
/// tokens, empty and blank texts, and texts long enough to truncate.
fn probe_texts() -> Vec<String> {
    let mut v: Vec<String> = vec![
        "".into(),
        "   ".into(),
        "\t\n\r".into(),
        "a\x0bb\x0cc\x00d\x1fe\x7ff".into(),
        "Hello, World! It's 3:45pm -- isn't it?".into(),
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".into(),
        "[CLS] [SEP] [MASK] <s> </s> [unk] [pad]".into(),
        "x".repeat(99),
        "y".repeat(100),
        "z".repeat(101),
        "unaffable antidisestablishmentarianism Supercalifragilistic".into(),
        "CamelCase snake_case kebab-case SHOUTING e.g. U.S.A. 1,000,000.50".into(),
        "word ".repeat(400),
        "semi;colon ".repeat(60) + &"pieceful ".repeat(60),
    ];
    let mut rng = Rng::new(5);
    let alphabet: Vec<u8> = (0u8..128).collect();
    for _ in 0..300 {
        let n = rng.below(200) as usize;
        let s: String = (0..n)
            .map(|_| {
                // Mostly letters and spaces, some of everything else.
                match rng.below(10) {
                    0 => alphabet[rng.below(128) as usize] as char,
                    1 | 2 => ' ',
                    _ => (b'a' + rng.below(26) as u8) as char,
                }
            })
            .collect();
        v.push(s);
    }
    // Unicode: accents and combining marks, other scripts, CJK, emoji and joiners, format and
    // control characters, odd whitespace, case mappings that change length, punctuation and
    // symbols outside ASCII.
    let pool: Vec<char> = "éñüÅçøßİıΣσςﬁ\u{301}\u{308}\u{93f}\u{94d}ΑλφαБукваשלוםمرحبا中文字日本語ひらがなカタカナ한국어ไทย😀👍🏽\u{200d}\u{200b}\u{ad}\u{fffd}\u{85}\u{a0}\u{2028}\u{3000}\u{e000}\u{1}\u{7f}“”‘’—–…¿¡«»€©™°±×÷∑√→♥"
        .chars()
        .collect();
    for _ in 0..400 {
        let n = rng.below(80) as usize;
        let s: String = (0..n)
            .map(|_| match rng.below(4) {
                0 => pool[rng.below(pool.len() as u64) as usize],
                1 => ' ',
                _ => (b'a' + rng.below(26) as u8) as char,
            })
            .collect();
        v.push(s);
    }
    v.push("Ünïcödé naïve café — “quoted” text… İstanbul ΣΊΣΥΦΟΣ straße ﬁne".into());
    v.push("中文混合English文本，标点。".into());
    let sts = std::fs::read_to_string(shared_dir().join("data/stsb/sts-dev.tsv")).unwrap();
    v.extend(
        sts.lines()
            .skip(1)
            .flat_map(|l| l.split('\t').take(2).map(str::to_string))
            .take(1000),
    );
    v
}

fn check(dir: &std::path::Path, golden_file: &str) {
    for max_len in [8, 128, 384] {
        let (tok, pad) = model::load_tokenizer(dir, Some(max_len)).unwrap();
        let fast = train::data::tokenizer_for(&tok, pad, 1).unwrap();
        compare(
            &fast,
            golden_file,
            &format!("{} max_len {max_len}", dir.display()),
        );
    }
    // The other normalizer settings (cased models, no CJK spacing, accents kept), on the same
    // vocabulary.
    for (lowercase, strip, chinese) in [
        (false, false, true),
        (true, false, false),
        (false, true, true),
    ] {
        let text = std::fs::read_to_string(dir.join("tokenizer.json")).unwrap();
        let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
        j["normalizer"]["lowercase"] = lowercase.into();
        j["normalizer"]["strip_accents"] = strip.into();
        j["normalizer"]["handle_chinese_chars"] = chinese.into();
        let tok: tokenizers::Tokenizer = j.to_string().parse().unwrap();
        let fast = pairs::BatchTokenizer::new(tok, 128, 0, 1).unwrap();
        compare(
            &fast,
            golden_file,
            &format!(
                "{} lowercase {lowercase} strip {strip} cjk {chinese}",
                dir.display()
            ),
        );
    }
    // And against sentence-transformers itself, at the model's own length.
    let (tok, pad) = model::load_tokenizer(dir, None).unwrap();
    let fast = train::data::tokenizer_for(&tok, pad, 1).unwrap();
    for g in golden(golden_file) {
        assert_eq!(fast.encode(&g.text).unwrap(), g.input_ids, "{:?}", g.text);
    }
}

fn compare(fast: &BatchTokenizer, golden_file: &str, what: &str) {
    assert!(fast.has_shortcut(), "{what}: no shortcut");
    let general = fast.clone().without_shortcut();
    let (mut ascii, mut other) = (0, 0);
    for t in probe_texts()
        .into_iter()
        .chain(golden(golden_file).into_iter().map(|g| g.text))
    {
        ascii += usize::from(t.is_ascii());
        other += usize::from(!t.is_ascii());
        assert_eq!(
            fast.encode(&t).unwrap(),
            general.encode(&t).unwrap(),
            "{what}: {t:?}"
        );
    }
    assert!(ascii > 1000 && other > 300, "{ascii} {other}");
}

#[test]
fn shortcut_equals_general_path_minilm() {
    check(&minilm_dir(), "all-MiniLM-L6-v2.jsonl");
}

#[test]
fn shortcut_equals_general_path_mpnet() {
    check(&mpnet_dir(), "all-mpnet-base-v2.jsonl");
}

#[test]
fn a_tokenizer_without_bert_parts_takes_the_general_path() {
    let t: BatchTokenizer = pairs::BatchTokenizer::new(
        tokenizers::Tokenizer::new(tokenizers::models::wordlevel::WordLevel::default()),
        16,
        0,
        1,
    )
    .unwrap();
    assert!(!t.has_shortcut());
}

/// A rank's share of a batch: its rows tokenized exactly as in the whole batch, padded to its
/// own longest row, at its offset, with the whole batch's texts kept for duplicate masking.
#[test]
fn sharded_tokenizer_takes_each_ranks_rows() {
    let (tok, pad) = model::load_tokenizer(&minilm_dir(), Some(128)).unwrap();
    let whole = train::data::tokenizer_for(&tok, pad, 8).unwrap();
    let texts = probe_texts();
    let rows: Vec<pairs::Row> = texts[..12]
        .chunks(2)
        .map(|c| c.to_vec().into())
        .chain(texts[12..24].chunks(2).map(|c| c.to_vec().into()))
        .collect();
    let all = whole.tokenize(rows.clone(), vec![0; 12], 0).unwrap();
    for world in [1, 2, 3, 4] {
        let mut seen = 0;
        for rank in 0..world {
            let part = whole
                .clone()
                .sharded(rank, world)
                .tokenize(rows.clone(), vec![0; 12], 0)
                .unwrap();
            assert_eq!(part.offset, seen);
            assert_eq!(part.rows(), 12);
            for (c, a) in part.columns.iter().zip(&all.columns) {
                assert_eq!(c.texts, a.texts);
                let longest = c.lengths.iter().max().copied().unwrap() as usize;
                assert_eq!(c.len, longest.div_ceil(8) * 8, "padded to its own rows");
                for (i, &l) in c.lengths.iter().enumerate() {
                    let g = seen + i;
                    assert_eq!(l, a.lengths[g]);
                    assert_eq!(
                        &c.ids[i * c.len..i * c.len + l as usize],
                        &a.ids[g * a.len..g * a.len + l as usize]
                    );
                }
            }
            seen += part.local_rows();
        }
        assert_eq!(seen, 12);
    }
    let e = whole
        .sharded(0, 5)
        .tokenize(rows, vec![0; 12], 0)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("12 rows does not split evenly over 5"),
        "{e}"
    );
}
