//! Lower precisions against fp32 on the committed fixture models: the cosine of each image
//! and text embedding with its fp32 embedding (mean and worst, printed), and the same
//! function on every kernel this CPU runs (the AVX-512 bf16/int8/VNNI kernels and the f32
//! fallback of the same rounded values).

mod common;

use clipkit::model::{LoadOptions, Precision};
use clipkit::Clip;
use common::{compare, image, model_dir};

const MODELS: [&str; 4] = ["clip-a", "clip-b", "quickstart", "judge"];
const TEXTS: [&str; 6] = [
    "a photo of a cat",
    "two red circles on the left",
    "a blue square",
    "",
    "a green triangle above a yellow star",
    "noise",
];
const LOWER: [Precision; 3] = [Precision::Bf16, Precision::Int8, Precision::W8a8];

fn load(model: &str, precision: Precision) -> Clip {
    let options = LoadOptions {
        precision,
        ..LoadOptions::default()
    };
    Clip::load_with(&model_dir(model), options).unwrap()
}

/// Unit-length embeddings of the fixture images, then of `TEXTS`.
fn embeddings(model: &str, precision: Precision) -> Vec<Vec<f32>> {
    let clip = load(model, precision);
    let images: Vec<_> = [
        "a_input_0.png",
        "a_input_1.png",
        "b_input_2.png",
        "gray.png",
    ]
    .iter()
    .map(|n| image(n))
    .collect();
    let mut rows: Vec<Vec<f32>> = clip
        .embed_image_files(&images, |_| {})
        .unwrap()
        .to_vec2()
        .unwrap();
    rows.extend(clip.embed_texts(&TEXTS).unwrap().to_vec2::<f32>().unwrap());
    rows
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Worst cosine with fp32 each precision must keep on every fixture model (the measured
/// worst, printed by the test, is in README "Precision").
fn worst_allowed(precision: Precision) -> f32 {
    match precision {
        Precision::Fp32 => 1.0,
        Precision::Bf16 => 0.9995,
        Precision::Int8 => 0.995,
        Precision::W8a8 => 0.99,
    }
}

#[test]
fn lower_precisions_stay_close_to_fp32_embeddings() {
    for model in MODELS {
        let fp32 = embeddings(model, Precision::Fp32);
        for precision in LOWER {
            let lower = embeddings(model, precision);
            let cosines: Vec<f32> = fp32.iter().zip(&lower).map(|(a, b)| cosine(a, b)).collect();
            let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
            // A NaN makes `worst` NaN, which fails the `>=` below.
            let worst = cosines.iter().copied().fold(1.0, |w: f32, c| {
                if c.is_nan() || w.is_nan() {
                    f32::NAN
                } else {
                    w.min(c)
                }
            });
            eprintln!("{model} {precision}: cosine with fp32 mean {mean:.6}, worst {worst:.6}");
            assert!(
                worst >= worst_allowed(precision),
                "{model} {precision}: worst cosine {worst} < {}",
                worst_allowed(precision)
            );
            // The precision really changed the arithmetic.
            assert!(worst < 1.0 - 1e-7, "{model} {precision}: identical to fp32");
        }
    }
}

#[test]
fn fp32_is_the_default_and_unchanged() {
    assert_eq!(LoadOptions::default().precision, Precision::Fp32);
    let explicit = embeddings("clip-a", Precision::Fp32);
    let clip = Clip::load(&model_dir("clip-a")).unwrap();
    let mut default: Vec<Vec<f32>> = clip
        .embed_image_files(
            &[
                "a_input_0.png",
                "a_input_1.png",
                "b_input_2.png",
                "gray.png",
            ]
            .map(image),
            |_| {},
        )
        .unwrap()
        .to_vec2()
        .unwrap();
    default.extend(clip.embed_texts(&TEXTS).unwrap().to_vec2::<f32>().unwrap());
    assert_eq!(explicit, default);
}

#[test]
fn lower_precisions_refuse_gradients() {
    for precision in LOWER {
        let options = LoadOptions {
            precision,
            input_gradients: true,
            ..LoadOptions::default()
        };
        let Err(err) = Clip::load_with(&model_dir("clip-a"), options) else {
            panic!("{precision} loaded with input gradients");
        };
        assert!(err.to_string().contains("is for inference"), "{err}");
    }
}

/// Prints clip-a's embeddings at every lower precision as one JSON line, for the parent
/// test below, which runs it once per kernel.
#[test]
fn print_lower_precision_embeddings() {
    let all: Vec<Vec<Vec<f32>>> = LOWER.iter().map(|&p| embeddings("clip-a", p)).collect();
    assert!(all.iter().flatten().flatten().all(|v| v.is_finite()));
    println!("kernel {}", clipkit::Kernel::active());
    println!("embeddings {}", serde_json::to_string(&all).unwrap());
}

/// Every kernel this CPU runs computes the same bf16, int8 and w8a8 embeddings (the AVX-512
/// kernels with packed bf16/int8 weights, AVX2 and portable with f32 weights of the same
/// values): within 2e-4, the f32 summation order being all that differs.
#[test]
fn every_kernel_computes_the_same_lower_precision_embeddings() {
    let exe = std::env::current_exe().unwrap();
    let mut runs: Vec<(clipkit::Kernel, Vec<Vec<Vec<f32>>>)> = Vec::new();
    for kernel in clipkit::Kernel::ALL
        .into_iter()
        .filter(|k| k.is_supported())
    {
        let out = std::process::Command::new(&exe)
            .env(clipkit::model::KERNEL_ENV, kernel.name())
            .args(["--exact", "print_lower_precision_embeddings", "--nocapture"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find_map(|l| l.strip_prefix("embeddings "));
        assert!(
            out.status.success() && stdout.contains(&format!("kernel {kernel}")),
            "{kernel}: {exe:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        runs.push((kernel, serde_json::from_str(line.unwrap()).unwrap()));
    }
    assert!(runs.len() >= 2, "at least one SIMD kernel and portable");
    let (first, want) = &runs[0];
    for (kernel, got) in &runs[1..] {
        for (p, (g, w)) in LOWER.iter().zip(got.iter().zip(want)) {
            let g: Vec<f32> = g.concat();
            let w: Vec<f32> = w.concat();
            let diff = compare::max_abs_diff_slices(&g, &w);
            eprintln!("{p}: {kernel} vs {first}: max abs diff {diff:.1e}");
            assert!(diff <= 2e-4, "{p}: {kernel} vs {first}: {diff}");
        }
    }
}
