//! The `clipkit` binary, driven as users and scripts drive it: the JSON contracts other
//! tools rely on, agreement with the PyTorch reference through the CLI, and clean failures
//! on bad input. On failure each test prints the command, stdout and stderr.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
#[path = "../../clipkit/tests/common/compare.rs"]
mod compare;

use common::{clipkit, fixtures, model};
use compare::max_abs_diff_slices as max_diff;

fn image(name: &str) -> String {
    fixtures().join("images").join(name).display().to_string()
}

fn reference(name: &str) -> std::collections::HashMap<String, candle_core::Tensor> {
    let path = fixtures()
        .join("reference")
        .join(format!("{name}.safetensors"));
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn embed_json_contract_and_parity_with_transformers() {
    let m = model("clip-a");
    let want = reference("clip-a");
    let texts = ["a photo of a cat", "", "-leading dash"];
    let mut args = vec![
        "embed".to_string(),
        "--model".into(),
        m.display().to_string(),
        "--json".into(),
    ];
    for i in 0..4 {
        args.extend(["--image".to_string(), image(&format!("a_input_{i}.png"))]);
    }
    for t in texts {
        args.extend(["--text".to_string(), t.to_string()]);
    }
    let out = clipkit(&args).json();
    assert_eq!(out["dim"], 24);
    let scale = out["logit_scale"].as_f64().unwrap() as f32;
    assert!((scale - want["logit_scale"].to_scalar::<f32>().unwrap()).abs() < 1e-4);
    let images = out["images"].as_array().unwrap();
    let ref_images: Vec<Vec<f32>> = want["image_embeds"].to_vec2().unwrap();
    for (i, img) in images.iter().enumerate() {
        assert!(img["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("a_input_{i}.png")));
        let e = floats(&img["embedding"]);
        let norm: f32 = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length");
        assert!(max_diff(&e, &ref_images[i]) <= 1e-4);
    }
    // Reference texts 0, 1 and 3 are the ones given here.
    let ref_texts: Vec<Vec<f32>> = want["text_embeds"].to_vec2().unwrap();
    let got_texts = out["texts"].as_array().unwrap();
    for (got, r) in got_texts.iter().zip([0, 1, 3]) {
        assert!(
            max_diff(&floats(&got["embedding"]), &ref_texts[r]) <= 1e-4,
            "text {r}"
        );
    }
    assert_eq!(got_texts[1]["text"], "");
    assert_eq!(got_texts[2]["text"], "-leading dash");
    let logits = out["logits_per_image"].as_array().unwrap();
    assert_eq!((logits.len(), logits[0].as_array().unwrap().len()), (4, 3));
}

#[test]
fn embed_omits_logits_without_both_kinds() {
    let out = clipkit(&[
        "embed",
        "--model",
        model("clip-b").to_str().unwrap(),
        "--text",
        "x",
        "--json",
    ])
    .json();
    assert!(out.get("logits_per_image").is_none());
    assert_eq!(out["images"].as_array().unwrap().len(), 0);
}

#[test]
fn tokenize_json_contract_and_truncation_flag() {
    let long = "cat ".repeat(100);
    let out = clipkit(&[
        "tokenize",
        "--model",
        model("clip-b").to_str().unwrap(),
        "--text",
        "a photo of a cat",
        "--text",
        "-x",
        "--text",
        "",
        "--text",
        &long,
        "--json",
    ]);
    let json = out.json();
    let texts = json["texts"].as_array().unwrap();
    let ids = |i: usize| -> Vec<u64> {
        texts[i]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(0), [49406, 320, 1125, 539, 320, 2368, 49407]);
    assert_eq!(ids(2), [49406, 49407]);
    assert_eq!(ids(3).len(), 77);
    assert_eq!(texts[3]["truncated"], true);
    assert_eq!(texts[0]["truncated"], false);
    assert!(
        out.stderr().contains("truncated"),
        "truncation must be reported on stderr"
    );
    assert_eq!(texts[0]["unknown_words"], serde_json::json!([]));
}

/// Words a fitted vocabulary cannot represent add no tokens; tokenize names them, as
/// embed, classify and search do.
#[test]
fn tokenize_names_the_words_a_fitted_vocabulary_drops() {
    let out = clipkit(&[
        "tokenize",
        "--model",
        model("quickstart").to_str().unwrap(),
        "--text",
        "a red circle",
        "--text",
        "a dog on a red beach",
        "--json",
    ]);
    let json = out.json();
    assert_eq!(json["texts"][0]["unknown_words"], serde_json::json!([]));
    assert_eq!(
        json["texts"][1]["unknown_words"],
        serde_json::json!(["dog", "beach"])
    );
    assert!(
        out.stderr().contains("\"dog\", \"beach\""),
        "{}",
        out.stderr()
    );
}

#[test]
fn classify_json_matches_reference_probabilities() {
    let want: Vec<Vec<f32>> = reference("clip-b")["zeroshot_probs"].to_vec2().unwrap();
    let mut args: Vec<String> = vec![
        "classify".into(),
        "--model".into(),
        model("clip-b").display().to_string(),
        "--json".into(),
    ];
    for i in 0..4 {
        args.extend(["--image".into(), image(&format!("b_input_{i}.png"))]);
    }
    let labels = ["cat", "dog", "car", "tree", "house"];
    for l in labels {
        args.extend(["--label".into(), l.into()]);
    }
    for t in ["a photo of a {}.", "a drawing of a {}.", "itap of a {}."] {
        args.extend(["--template".into(), t.into()]);
    }
    let out = clipkit(&args).json();
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (i, r) in results.iter().enumerate() {
        let scored = r["labels"].as_array().unwrap();
        assert_eq!(scored.len(), 5);
        let total: f64 = scored.iter().map(|l| l["prob"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-5);
        for l in scored {
            let j = labels
                .iter()
                .position(|x| *x == l["label"].as_str().unwrap())
                .unwrap();
            assert!((l["prob"].as_f64().unwrap() as f32 - want[i][j]).abs() <= 1e-4);
        }
        let probs: Vec<f64> = scored.iter().map(|l| l["prob"].as_f64().unwrap()).collect();
        assert!(
            probs.windows(2).all(|w| w[0] >= w[1]),
            "sorted, most probable first"
        );
    }
}

#[test]
fn classify_reads_labels_file_and_builtin_templates() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "# animals\ncat\n\ndog\n").unwrap();
    let out = clipkit(&[
        "classify",
        "--model",
        model("clip-a").to_str().unwrap(),
        "--image",
        &image("photo.webp"),
        "--labels-file",
        labels.to_str().unwrap(),
        "--template-set",
        "imagenet80",
        "--top-k",
        "1",
        "--json",
    ])
    .json();
    let labels = out["results"][0]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 1);
    assert!(["cat", "dog"].contains(&labels[0]["label"].as_str().unwrap()));
}

#[test]
fn preprocess_writes_npy_equal_to_reference_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("px.npy");
    let run = clipkit(&[
        "preprocess",
        "--model",
        model("clip-a").to_str().unwrap(),
        "--image",
        &image("wide_rgb.png"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.output.status.success(), "{}", run.explain());
    let bytes = std::fs::read(&out).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[3, 32, 32]);
    let got: Vec<f32> = npy.into_vec().unwrap();
    let want: Vec<f32> = reference("clip-a")["pixel_values/wide_rgb.png"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(max_diff(&got, &want) <= 1e-5);
}

#[test]
fn bad_images_fail_cleanly_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let text_png = dir.path().join("notes.png");
    std::fs::write(&text_png, "not an image").unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("cut.jpg");
    let jpeg = std::fs::read(fixtures().join("images/tall_rgb.jpg")).unwrap();
    std::fs::write(&truncated, &jpeg[..jpeg.len() / 3]).unwrap();
    let missing = dir.path().join("missing.png");
    let m = model("clip-a");
    for bad in [
        &text_png,
        &empty,
        &truncated,
        &missing,
        &dir.path().to_path_buf(),
    ] {
        let name = bad.display().to_string();
        clipkit(&[
            "embed",
            "--model",
            m.to_str().unwrap(),
            "--image",
            &name,
            "--json",
        ])
        .assert_fails_naming(&name);
        clipkit(&[
            "classify",
            "--model",
            m.to_str().unwrap(),
            "--image",
            &name,
            "--label",
            "x",
        ])
        .assert_fails_naming(&name);
        let out = dir.path().join("o.npy");
        clipkit(&[
            "preprocess",
            "--model",
            m.to_str().unwrap(),
            "--image",
            &name,
            "--out",
            out.to_str().unwrap(),
        ])
        .assert_fails_naming(&name);
    }
}

fn broken_copy(of: &str, dir: &Path, damage: impl FnOnce(&Path)) -> PathBuf {
    let target = dir.join(of);
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(model(of)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
    damage(&target);
    target
}

#[test]
fn broken_model_folders_fail_cleanly_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "clip-a",
            Box::new(|d: &Path| std::fs::remove_file(d.join("config.json")).unwrap()),
            "config.json",
        ),
        (
            "clip-a",
            Box::new(|d: &Path| {
                std::fs::write(
                    d.join("config.json"),
                    "{\"text_config\": {\"hidden_size\": \"x\"}, \"vision_config\": {}}",
                )
                .unwrap()
            }),
            "text_config.hidden_size",
        ),
        (
            "clip-a",
            Box::new(|d: &Path| {
                let f = d.join("model.safetensors");
                let bytes = std::fs::read(&f).unwrap();
                std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
            }),
            "model.safetensors",
        ),
        (
            "clip-a",
            Box::new(|d: &Path| std::fs::write(d.join("model.safetensors"), b"").unwrap()),
            "model.safetensors",
        ),
        (
            "clip-a",
            Box::new(|d: &Path| std::fs::write(d.join("tokenizer.json"), "{oops").unwrap()),
            "tokenizer.json",
        ),
        (
            "clip-a",
            Box::new(|d: &Path| std::fs::remove_file(d.join("preprocessor_config.json")).unwrap()),
            "preprocessor_config.json",
        ),
        (
            "clip-b",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join("model-00003-of-00004.safetensors")).unwrap()
            }),
            "model-00003-of-00004.safetensors",
        ),
        (
            "clip-b",
            Box::new(|d: &Path| std::fs::remove_file(d.join("vocab.json")).unwrap()),
            "vocab.json",
        ),
        (
            "clip-b",
            Box::new(|d: &Path| {
                let f = d.join("config.json");
                let text = std::fs::read_to_string(&f)
                    .unwrap()
                    .replace("\"intermediate_size\": 80", "\"intermediate_size\": 81");
                std::fs::write(&f, text).unwrap();
            }),
            "vision_model.encoder.layers.0.mlp.fc1.weight",
        ),
    ];
    for (i, (of, damage, culprit)) in cases.into_iter().enumerate() {
        let folder = broken_copy(of, &dir.path().join(i.to_string()), damage);
        clipkit(&[
            "embed",
            "--model",
            folder.to_str().unwrap(),
            "--text",
            "hi",
            "--json",
        ])
        .assert_fails_naming(culprit);
    }
}

#[test]
fn checkpoint_with_missing_and_extra_tensors_lists_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let folder = broken_copy("clip-a", dir.path(), |d| {
        let f = d.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&f, &candle_core::Device::Cpu).unwrap();
        let mut kept: std::collections::HashMap<String, candle_core::Tensor> = tensors
            .into_iter()
            .filter(|(k, _)| k != "logit_scale" && k != "text_projection.weight")
            .collect();
        kept.insert(
            "surprise.weight".into(),
            candle_core::Tensor::zeros(3, candle_core::DType::F32, &candle_core::Device::Cpu)
                .unwrap(),
        );
        candle_core::safetensors::save(&kept, &f).unwrap();
    });
    let run = clipkit(&["embed", "--model", folder.to_str().unwrap(), "--text", "hi"]);
    for name in [
        "missing tensor logit_scale",
        "missing tensor text_projection.weight",
        "unexpected tensor surprise.weight",
    ] {
        run.assert_fails_naming(name);
    }
}

#[test]
fn threads_flag_is_accepted_and_validated() {
    let out = clipkit(&[
        "--threads",
        "1",
        "embed",
        "--model",
        model("clip-a").to_str().unwrap(),
        "--text",
        "x",
        "--json",
    ])
    .json();
    assert_eq!(out["dim"], 24);
    clipkit(&["--threads", "0", "tokenize", "--model", "x", "--text", "y"])
        .assert_fails_naming("threads");
}

/// `clipkit models convert` turns an OpenAI-layout TorchScript `.pt` into a HF folder that
/// clipkit loads with open_clip's image features (1e-4); a pickle that would run code and a
/// truncated archive fail naming the global or the file, and leave no output folder.
#[test]
fn models_convert_openai_pt_to_hf_and_refuses_bad_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    let src = fixtures().join("openai/vit.pt");
    let convert = |src: &Path, out: &Path| {
        clipkit(&[
            "models".as_ref(),
            "convert".as_ref(),
            src.as_os_str(),
            "--to".as_ref(),
            "hf".as_ref(),
            out.as_os_str(),
        ])
    };
    convert(&src, &out).ok();
    let io = candle_core::safetensors::load(
        fixtures().join("openai/io.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let clip = clipkit::Clip::load(&out).unwrap();
    let got = clip.image_features(&io["pixels"]).unwrap();
    let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<f32> = io["image_features"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(
        max_diff(&got, &want) <= 1e-4,
        "image features differ by {}",
        max_diff(&got, &want)
    );
    let ids = clip.tokenizer().encode("a photo of a cat").unwrap().ids;
    assert_eq!(ids, vec![49406, 320, 1125, 539, 320, 2368, 49407]);

    for (bad, culprit) in [
        ("torch/evil.bin", "posix.system"),
        ("torch/truncated.pt", "truncated.pt"),
    ] {
        let out = dir.path().join(format!("out-{}", bad.replace('/', "-")));
        convert(&fixtures().join(bad), &out).assert_fails_naming(culprit);
        assert!(!out.exists(), "{bad}: output folder left behind");
    }
}

/// An OpenAI TorchScript archive (`RN50.pt`-style, ResNet and ViT image towers) is a
/// `--model` like any folder: `embed` of a non-square PNG gives the image embedding that
/// OpenAI's own model and transform give (`tools/make_openclip_fixtures.py`), at cosine
/// ≥ 0.999 (the archive holds half-precision weights; the reference ran in f32).
#[test]
fn embed_takes_an_openai_torchscript_archive_as_model() {
    for name in ["resnet", "vit"] {
        let archive = fixtures().join(format!("openclip/{name}.pt"));
        let picture = image("wide_rgb.png");
        let out = clipkit(&[
            "embed".as_ref(),
            "--model".as_ref(),
            archive.as_os_str(),
            "--image".as_ref(),
            picture.as_ref(),
            "--json".as_ref(),
        ])
        .json();
        let got = floats(&out["images"][0]["embedding"]);
        let reference = candle_core::safetensors::load(
            fixtures().join(format!("openclip/{name}_pt.safetensors")),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let want: Vec<f32> = reference["resized_embeds"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got.len(), want.len(), "{name}: embedding size");
        let cosine: f32 = got.iter().zip(&want).map(|(a, b)| a * b).sum();
        // A NaN cosine fails this comparison too.
        assert!(cosine >= 0.999, "{name}: cosine {cosine} < 0.999");
    }
}
