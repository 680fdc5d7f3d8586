//! clipkit against transformers: embeddings, logits and zero-shot probabilities of the two
//! fixture models must match the PyTorch reference to 1e-4.

mod common;

use candle_core::Tensor;
use clipkit::zeroshot::ZeroShotClassifier;
use clipkit::Clip;
use common::*;

/// Unit-length embeddings: max abs diff allowed against PyTorch.
const EMBED_TOL: f32 = 1e-4;
/// Zero-shot probabilities: max abs diff allowed against PyTorch.
const PROB_TOL: f32 = 1e-4;

/// The comparison every parity test relies on must fail on a NaN output: an all-NaN
/// network would otherwise pass them all.
#[test]
#[should_panic(expected = "max abs diff inf")]
fn assert_close_fails_when_the_output_is_nan() {
    let device = candle_core::Device::Cpu;
    let want = Tensor::new(&[1.0_f32, 2.0, 3.0], &device).unwrap();
    let got = Tensor::new(&[f32::NAN; 3], &device).unwrap();
    assert_close("all-NaN output", &got, &want, 1.0);
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn check_model(name: &str) {
    let clip = Clip::load(&model_dir(name)).unwrap();
    let want = reference(name);
    let meta = reference_json(name);

    let images: Vec<_> = strings(&meta["input_images"])
        .iter()
        .map(|f| clip.load_image(&image(f)).unwrap())
        .collect();
    let image_embeds = clip.embed_images(&images).unwrap();
    assert_close(
        &format!("{name} image_embeds"),
        &image_embeds,
        &want["image_embeds"],
        EMBED_TOL,
    );

    let texts = strings(&meta["texts"]);
    let text_embeds = clip.embed_texts(&texts).unwrap();
    assert_close(
        &format!("{name} text_embeds"),
        &text_embeds,
        &want["text_embeds"],
        EMBED_TOL,
    );

    let scale = clip.logit_scale().unwrap();
    let want_scale = want["logit_scale"].to_scalar::<f32>().unwrap();
    assert!(
        (scale - want_scale).abs() <= 1e-5 * want_scale,
        "logit_scale {scale} vs {want_scale}"
    );

    // Logits are cosines times the scale, so their tolerance scales with it.
    let logits = clip.logits(&image_embeds, &text_embeds).unwrap();
    let logit_tol = EMBED_TOL * scale;
    assert_close(
        &format!("{name} logits_per_image"),
        &logits.logits_per_image,
        &want["logits_per_image"],
        logit_tol,
    );
    assert_close(
        &format!("{name} logits_per_text"),
        &logits.logits_per_text,
        &want["logits_per_text"],
        logit_tol,
    );

    let labels = strings(&meta["zeroshot"]["labels"]);
    let templates = strings(&meta["zeroshot"]["templates"]);
    let classifier = ZeroShotClassifier::new(&clip, &labels, &templates).unwrap();
    assert_close(
        &format!("{name} zeroshot_class_embeds"),
        classifier.class_embeds(),
        &want["zeroshot_class_embeds"],
        EMBED_TOL,
    );
    let probs = classifier.probs(&image_embeds).unwrap();
    assert_close(
        &format!("{name} zeroshot_probs"),
        &probs,
        &want["zeroshot_probs"],
        PROB_TOL,
    );
}

#[test]
fn clip_a_f32_single_file_matches_transformers() {
    check_model("clip-a");
}

#[test]
fn clip_b_f16_sharded_legacy_matches_transformers() {
    check_model("clip-b");
}

#[test]
fn batch_size_does_not_change_embeddings() {
    let texts = ["a photo of a cat", "", "two red circles on the left", "😀"];
    let one = Clip::load(&model_dir("clip-a")).unwrap().with_batch_size(1);
    let all = Clip::load(&model_dir("clip-a")).unwrap().with_batch_size(4);
    let a: Tensor = one.embed_texts(&texts).unwrap();
    let b: Tensor = all.embed_texts(&texts).unwrap();
    assert_close("texts batch 1 vs 4", &a, &b, 1e-6);
}

/// Prints the kernel this process runs, and checks it is the one `CLIPKIT_KERNEL` forces
/// when set; the parent test below reads the line from each child.
#[test]
fn the_forced_kernel_is_the_one_in_use() {
    let active = clipkit::Kernel::active();
    println!("kernel in use: {active}");
    if let Ok(forced) = std::env::var(clipkit::model::KERNEL_ENV) {
        assert_eq!(forced.parse(), Ok(active), "{forced:?} was forced");
    }
}

/// Every kernel this CPU can run, forced through `CLIPKIT_KERNEL` in a child process that
/// runs the parity tests above: each path must match transformers at the same tolerances.
#[test]
fn every_kernel_this_cpu_runs_matches_transformers() {
    let exe = std::env::current_exe().unwrap();
    let kernels: Vec<_> = clipkit::Kernel::ALL
        .into_iter()
        .filter(|k| k.is_supported())
        .collect();
    assert!(kernels.contains(&clipkit::Kernel::Portable));
    for kernel in kernels {
        let out = std::process::Command::new(&exe)
            .env(clipkit::model::KERNEL_ENV, kernel.name())
            .args([
                "--exact",
                "clip_a_f32_single_file_matches_transformers",
                "clip_b_f16_sharded_legacy_matches_transformers",
                "batch_size_does_not_change_embeddings",
                "the_forced_kernel_is_the_one_in_use",
                "--nocapture",
                "--test-threads=1",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success()
                && stdout.contains(&format!("kernel in use: {kernel}"))
                && stdout.contains("4 passed; 0 failed"),
            "{kernel}: {exe:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        eprintln!("{kernel}: parity tests passed");
    }
}
