//! Loading a large checkpoint must not need much more memory than the checkpoint itself:
//! files are memory-mapped and each tensor's pages released once it has been copied out.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::clipkit_at;

/// Peak resident memory allowed, as a multiple of the checkpoint's size on disk.
const MAX_RSS_RATIO: f64 = 1.3;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 0.02, shape, &Device::Cpu).unwrap()
}

/// Writes a ~600 MB CLIP model folder shaped like ViT-B/32 to `dir`.
fn write_large_model(dir: &Path) -> u64 {
    let (vh, vl, th, tl, proj, vocab, ctx) = (768, 12, 512, 12, 512, 49408, 77);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut layers = |prefix: &str, h: usize, n: usize| {
        for i in 0..n {
            let p = format!("{prefix}.encoder.layers.{i}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                t.insert(format!("{p}.self_attn.{proj}.weight"), randn(&[h, h]));
                t.insert(format!("{p}.self_attn.{proj}.bias"), randn(&[h]));
            }
            for ln in ["layer_norm1", "layer_norm2"] {
                t.insert(
                    format!("{p}.{ln}.weight"),
                    Tensor::ones(h, DType::F32, &Device::Cpu).unwrap(),
                );
                t.insert(format!("{p}.{ln}.bias"), randn(&[h]));
            }
            t.insert(format!("{p}.mlp.fc1.weight"), randn(&[4 * h, h]));
            t.insert(format!("{p}.mlp.fc1.bias"), randn(&[4 * h]));
            t.insert(format!("{p}.mlp.fc2.weight"), randn(&[h, 4 * h]));
            t.insert(format!("{p}.mlp.fc2.bias"), randn(&[h]));
        }
    };
    layers("vision_model", vh, vl);
    layers("text_model", th, tl);
    for (name, h) in [
        ("vision_model.pre_layrnorm", vh),
        ("vision_model.post_layernorm", vh),
        ("text_model.final_layer_norm", th),
    ] {
        t.insert(
            format!("{name}.weight"),
            Tensor::ones(h, DType::F32, &Device::Cpu).unwrap(),
        );
        t.insert(format!("{name}.bias"), randn(&[h]));
    }
    t.insert(
        "vision_model.embeddings.class_embedding".into(),
        randn(&[vh]),
    );
    t.insert(
        "vision_model.embeddings.patch_embedding.weight".into(),
        randn(&[vh, 3, 32, 32]),
    );
    t.insert(
        "vision_model.embeddings.position_embedding.weight".into(),
        randn(&[50, vh]),
    );
    t.insert(
        "text_model.embeddings.token_embedding.weight".into(),
        randn(&[vocab, th]),
    );
    t.insert(
        "text_model.embeddings.position_embedding.weight".into(),
        randn(&[ctx, th]),
    );
    t.insert("visual_projection.weight".into(), randn(&[proj, vh]));
    t.insert("text_projection.weight".into(), randn(&[proj, th]));
    t.insert(
        "logit_scale".into(),
        Tensor::new(2.6592f32, &Device::Cpu).unwrap(),
    );
    let checkpoint = dir.join("model.safetensors");
    candle_core::safetensors::save(&t, &checkpoint).unwrap();
    let config = format!(
        r#"{{"projection_dim": {proj},
            "text_config": {{"hidden_size": {th}, "intermediate_size": {}, "num_hidden_layers": {tl}, "num_attention_heads": 8}},
            "vision_config": {{"hidden_size": {vh}, "intermediate_size": {}, "num_hidden_layers": {vl}, "num_attention_heads": 12}}}}"#,
        4 * th,
        4 * vh
    );
    std::fs::write(dir.join("config.json"), config).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/clip-a");
    std::fs::copy(fixture.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    std::fs::write(
        dir.join("preprocessor_config.json"),
        r#"{"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}}"#,
    )
    .unwrap();
    std::fs::metadata(&checkpoint).unwrap().len()
}

/// Peak resident set size of all waited-for children, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage), 0);
        usage
    };
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn loading_needs_little_more_memory_than_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let size = write_large_model(dir.path());
    // The first load of a large model also writes its packed-weight cache file: into this
    // test's folder, not the user's.
    let home = dir.path().join("home");
    let model = dir.path().to_str().unwrap();
    let args = [
        "embed",
        "--model",
        model,
        "--text",
        "a photo of a cat",
        "--json",
    ];
    let embed = || clipkit_at(&home, &args).ok().stdout();
    let first = embed();
    let peak = children_peak_rss();
    let ratio = peak as f64 / size as f64;
    eprintln!(
        "checkpoint {} MiB, peak RSS {} MiB, ratio {ratio:.2}",
        size >> 20,
        peak >> 20
    );
    assert!(
        ratio <= MAX_RSS_RATIO,
        "peak RSS {ratio:.2}x the checkpoint size (limit {MAX_RSS_RATIO})"
    );
    // The second load maps the packed weights the first wrote, and computes the same.
    let cached: Vec<_> = std::fs::read_dir(home.join("cache/packed"))
        .map(|listing| listing.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let packs = clipkit::Kernel::active() != clipkit::Kernel::Portable;
    assert_eq!(cached.len(), usize::from(packs), "{cached:?}");
    assert_eq!(embed(), first, "the mapped weights changed the embedding");
}
