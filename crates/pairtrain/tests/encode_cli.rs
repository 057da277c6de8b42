//! `pairtrain encode` end to end: golden embeddings through the binary, and bad inputs that must
//! fail cleanly (a message naming the file, a non-zero exit, no panic).

use std::path::Path;
use std::process::Output;
use test_support::{golden, max_abs_diff, minilm_dir};

fn pairtrain(args: &[&str]) -> Output {
    test_support::run_cli(env!("CARGO_BIN_EXE_pairtrain"), args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure whose message contains every one of `needles`.
fn assert_fails_with(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "error {err:?} does not mention {n:?}");
    }
}

fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"));
    let shape = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    assert_eq!((10 + hlen) % 64, 0, "npy data must be 64-byte aligned");
    let data = bytes[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, data)
}

#[test]
fn encode_reproduces_golden_embeddings_in_input_order() {
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    // The golden file itself is the input: its `text` field, one object per line.
    let input = test_support::shared_dir().join("golden/all-MiniLM-L6-v2.jsonl");
    let out_jsonl = dir.path().join("emb.jsonl");
    let out_npy = dir.path().join("emb.npy");
    for out in [&out_jsonl, &out_npy] {
        let o = encode(&model, &input, out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let text = std::fs::read_to_string(&out_jsonl).unwrap();
    let got: Vec<Vec<f32>> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["embedding"].clone()).unwrap()
        })
        .collect();
    assert_eq!(got.len(), rows.len());
    for (r, e) in rows.iter().zip(&got) {
        assert!(max_abs_diff(e, &r.embedding) <= 1e-5, "{:?}", r.text);
    }
    let (shape, data) = read_npy_f32(&out_npy);
    assert_eq!(shape, vec![rows.len(), 384]);
    for (r, e) in rows.iter().zip(data.chunks(384)) {
        assert!(max_abs_diff(e, &r.embedding) <= 1e-5, "{:?}", r.text);
    }
    assert!(!dir.path().join("emb.npy.partial").exists());
}

#[test]
fn encode_reads_txt_one_text_per_line() {
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    // Texts without newlines, so that each is one line.
    let picked: Vec<_> = rows
        .iter()
        .filter(|r| !r.text.contains(['\n', '\r']))
        .collect();
    let input = dir.path().join("in.txt");
    let body: Vec<&str> = picked.iter().map(|r| r.text.as_str()).collect();
    std::fs::write(&input, body.join("\n") + "\n").unwrap();
    let out = dir.path().join("out.npy");
    let o = encode(&model, &input, &out, &["--batch-size", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, data) = read_npy_f32(&out);
    assert_eq!(shape, vec![picked.len(), 384]);
    for (r, e) in picked.iter().zip(data.chunks(384)) {
        assert!(max_abs_diff(e, &r.embedding) <= 1e-5, "{:?}", r.text);
    }
}

/// A copy of the model folder (files hard-linked or copied) that a test may break.
fn model_copy(dst: &Path) {
    std::fs::create_dir_all(dst.join("1_Pooling")).unwrap();
    let src = minilm_dir();
    for f in [
        "config.json",
        "modules.json",
        "sentence_bert_config.json",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    std::fs::copy(src.join("model.safetensors"), dst.join("model.safetensors")).unwrap();
}

/// `pairtrain encode --quiet` of `input` with `model` into `out`, plus `extra` flags.
fn encode(model: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "encode",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    pairtrain(&args)
}

#[test]
fn bad_inputs_fail_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good_input = d.join("in.txt");
    std::fs::write(&good_input, "hello\nworld\n").unwrap();
    let out = d.join("out.jsonl");

    // A missing model folder.
    let missing = d.join("no-such-model");
    let o = encode(&missing, &good_input, &out, &[]);
    assert_fails_with(&o, &["no-such-model", "not found"]);

    // A truncated model.safetensors.
    let m = d.join("truncated");
    model_copy(&m);
    let st = m.join("model.safetensors");
    let len = std::fs::metadata(&st).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&st)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let o = encode(&m, &good_input, &out, &[]);
    assert_fails_with(&o, &["model.safetensors"]);

    // A config.json with an unknown model_type.
    let m = d.join("unknown-type");
    model_copy(&m);
    let cfg = std::fs::read_to_string(m.join("config.json")).unwrap();
    std::fs::write(
        m.join("config.json"),
        cfg.replace("\"bert\"", "\"gpt-neo-x\""),
    )
    .unwrap();
    let o = encode(&m, &good_input, &out, &[]);
    assert_fails_with(&o, &["config.json", "unknown model_type", "gpt-neo-x"]);

    let model = minilm_dir();
    // Invalid JSON on line 3 of a .jsonl input.
    let bad_json = d.join("bad.jsonl");
    std::fs::write(
        &bad_json,
        "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\n",
    )
    .unwrap();
    let o = encode(&model, &bad_json, &out, &[]);
    assert_fails_with(&o, &["bad.jsonl:3", "invalid JSON"]);

    // A missing field and a non-string field.
    let no_field = d.join("nofield.jsonl");
    std::fs::write(&no_field, "{\"text\": \"a\"}\n{\"body\": \"b\"}\n").unwrap();
    assert_fails_with(
        &encode(&model, &no_field, &out, &[]),
        &["nofield.jsonl:2", "text"],
    );

    // Input that is not valid UTF-8 (line 2), as .txt and as .jsonl.
    let bad_txt = d.join("latin1.txt");
    std::fs::write(&bad_txt, b"fine\ncaf\xe9 au lait\n").unwrap();
    assert_fails_with(
        &encode(&model, &bad_txt, &out, &[]),
        &["latin1.txt:2", "UTF-8"],
    );
    let bad_jl = d.join("latin1.jsonl");
    std::fs::write(&bad_jl, b"{\"text\": \"ok\"}\n{\"text\": \"caf\xe9\"}\n").unwrap();
    assert_fails_with(
        &encode(&model, &bad_jl, &out, &[]),
        &["latin1.jsonl:2", "UTF-8"],
    );

    // Nothing was left behind under the output's name.
    assert!(!out.exists());
    assert!(!d.join("out.jsonl.partial").exists());
}

/// `--device cuda` in a CPU-only build says how to get CUDA and writes nothing; `--dtype bf16`
/// runs (bf16 linear layers) and stays close to the f32 golden embeddings.
#[test]
fn encode_device_and_dtype_flags() {
    let model = minilm_dir();
    let dir = tempfile::tempdir().unwrap();
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = rows[..16]
        .iter()
        .map(|r| serde_json::json!({ "text": r.text }).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out.npy");
    let run = |extra: &[&str]| encode(&model, &input, &out, extra);
    if !cfg!(feature = "cuda") {
        let o = run(&["--device", "cuda:0"]);
        assert_fails_with(&o, &["built without CUDA support", "scripts/build-cuda"]);
        assert!(!out.exists());
    }
    assert_fails_with(&run(&["--dtype", "fp8"]), &["dtype \"fp8\" is not one of"]);
    let o = run(&["--dtype", "bf16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, data) = read_npy_f32(&out);
    assert_eq!(shape, vec![16, 384]);
    for (r, e) in rows.iter().zip(data.chunks(384)) {
        let cos: f32 = e.iter().zip(&r.embedding).map(|(a, b)| a * b).sum();
        assert!(
            cos >= 0.999,
            "{:?}: cosine {cos} to the f32 embedding",
            r.text
        );
    }
}

fn read_jsonl_embeddings(p: &Path) -> Vec<Vec<f32>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["embedding"].clone()).unwrap()
        })
        .collect()
}

/// `--truncate-dim` and the folder's `truncate_dim` keep the first N dimensions of
/// sentence-transformers' embeddings (cut after normalisation, as it does); `--prompt-name`
/// puts the named prompt first; mistakes name the flag or the file.
#[test]
fn truncation_and_named_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows = golden("all-MiniLM-L6-v2.jsonl");
    let input = test_support::shared_dir().join("golden/all-MiniLM-L6-v2.jsonl");
    let out = d.join("out.jsonl");
    let o = encode(&minilm_dir(), &input, &out, &["--truncate-dim", "64"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = read_jsonl_embeddings(&out);
    assert_eq!(got.len(), rows.len());
    for (r, e) in rows.iter().zip(&got) {
        assert_eq!(e.len(), 64);
        assert!(max_abs_diff(e, &r.embedding[..64]) <= 1e-5, "{:?}", r.text);
    }

    // A folder saying truncate_dim 128 and naming two prompts, no default.
    let m = d.join("m");
    model_copy(&m);
    let config = m.join("config_sentence_transformers.json");
    std::fs::write(
        &config,
        r#"{"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": null,
            "similarity_fn_name": "cosine", "truncate_dim": 128}"#,
    )
    .unwrap();
    let texts = d.join("in.txt");
    std::fs::write(&texts, "how do I boil an egg\nthe capital of Australia\n").unwrap();
    let plain = d.join("plain.jsonl");
    let o = encode(&m, &texts, &plain, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = read_jsonl_embeddings(&plain);
    assert!(plain.iter().all(|e| e.len() == 128));
    // --prompt-name query is the same as writing "query: " before each text.
    let named = d.join("named.jsonl");
    let o = encode(&m, &texts, &named, &["--prompt-name", "query"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let prefixed = d.join("prefixed.txt");
    std::fs::write(
        &prefixed,
        "query: how do I boil an egg\nquery: the capital of Australia\n",
    )
    .unwrap();
    let by_hand = d.join("by-hand.jsonl");
    let o = encode(&m, &prefixed, &by_hand, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (named, by_hand) = (
        read_jsonl_embeddings(&named),
        read_jsonl_embeddings(&by_hand),
    );
    for (a, b) in named.iter().zip(&by_hand) {
        assert!(max_abs_diff(a, b) <= 1e-6);
    }
    assert!(max_abs_diff(&named[0], &plain[0]) > 1e-3);

    let bad = d.join("bad.jsonl");
    assert_fails_with(
        &encode(&m, &texts, &bad, &["--prompt-name", "passage"]),
        &["--prompt-name \"passage\"", "its prompts: document, query"],
    );
    assert_fails_with(
        &encode(&m, &texts, &bad, &["--truncate-dim", "385"]),
        &["--truncate-dim: 385", "384 dimensions"],
    );
    std::fs::write(&config, r#"{"truncate_dim": 4096}"#).unwrap();
    assert_fails_with(
        &encode(&m, &texts, &bad, &[]),
        &["config_sentence_transformers.json", "truncate_dim 4096"],
    );
    assert!(!bad.exists());
}
