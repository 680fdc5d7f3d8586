//! Gradients for generation, against PyTorch (`tools/make_gradient_reference.py`, float64):
//! the differentiable image operations (resize, crop, normalise) and d loss / d pixels
//! through a frozen clip-a loaded with `LoadOptions { input_gradients: true, .. }`.

mod common;

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use clipkit::image::tensor::{crop, crop_resize, normalize, resize, CropBox, Interpolation};
use clipkit::{l2_normalize, Clip, LoadOptions, WeightFormat};
use common::*;

/// Image operations: outputs and input gradients, max abs diff against float64 PyTorch.
const OPS_TOL: f32 = 1e-5;
/// Unit-length embeddings and the loss through the model.
const MODEL_TOL: f32 = 1e-5;
/// d loss / d pixels through the model (the gradients peak near 0.03 for the pixels and 0.12
/// for the unit-range image; observed differences are near 1e-7).
const GRAD_TOL: f32 = 1e-6;

fn reference() -> HashMap<String, Tensor> {
    let path = fixtures().join("reference").join("gradients.safetensors");
    candle_core::safetensors::load(&path, &candle_core::Device::Cpu).expect("reference loads")
}

/// `assert_close` that also fails when `got` holds a NaN or infinity.
fn check(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let values = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        panic!("{what}: value [{bad}] is {}", values[bad]);
    }
    assert_close(what, got, want, tol);
}

fn gradient_options(weight_format: WeightFormat) -> LoadOptions<'static> {
    LoadOptions {
        weight_format,
        input_gradients: true,
        ..LoadOptions::default()
    }
}

/// sum(y · probe) → backward → d/dx, with the forward output.
fn output_and_gradient(x: &Var, y: Tensor, probe: &Tensor) -> (Tensor, Tensor) {
    let grads = (&y * probe).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).expect("x has a gradient").clone();
    (y, dx)
}

#[test]
fn image_tensor_operations_match_pytorch() {
    let want = reference();
    let x = Var::from_tensor(&want["ops.x"]).unwrap();
    let clip = Clip::load(&model_dir("clip-a")).unwrap();
    let cases: Vec<(&str, Tensor)> = vec![
        (
            "bilinear_down",
            resize(&x, (6, 9), Interpolation::Bilinear).unwrap(),
        ),
        (
            "bicubic_down",
            resize(&x, (6, 9), Interpolation::Bicubic).unwrap(),
        ),
        (
            "bilinear_up",
            resize(&x, (20, 31), Interpolation::Bilinear).unwrap(),
        ),
        (
            "bicubic_up",
            resize(&x, (20, 31), Interpolation::Bicubic).unwrap(),
        ),
        (
            "crop_bicubic",
            crop_resize(
                &x,
                CropBox {
                    top: 2,
                    left: 3,
                    height: 8,
                    width: 10,
                },
                (32, 32),
                Interpolation::Bicubic,
            )
            .unwrap(),
        ),
        (
            "normalize",
            normalize(&x, clip.preprocess_config()).unwrap(),
        ),
    ];
    for (name, y) in cases {
        let probe = &want[&format!("ops.{name}.probe")];
        let (y, dx) = output_and_gradient(&x, y, probe);
        check(name, &y, &want[&format!("ops.{name}.y")], OPS_TOL);
        check(
            &format!("{name} d/dx"),
            &dx,
            &want[&format!("ops.{name}.dx")],
            OPS_TOL,
        );
    }
}

#[test]
fn a_crop_is_the_pixels_inside_its_box() {
    let x = Tensor::arange(0f32, 2.0 * 3.0 * 4.0 * 5.0, &candle_core::Device::Cpu)
        .unwrap()
        .reshape((2, 3, 4, 5))
        .unwrap();
    let boxed = CropBox {
        top: 1,
        left: 2,
        height: 2,
        width: 3,
    };
    let got = crop(&x, boxed).unwrap();
    assert_eq!(got.dims(), &[2, 3, 2, 3]);
    // Image 1, channel 2, rows 1..3, columns 2..5: offset 1·60 + 2·20 + row·5 + column.
    let plane = got
        .get(1)
        .unwrap()
        .get(2)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(
        plane,
        vec![vec![107.0, 108.0, 109.0], vec![112.0, 113.0, 114.0]]
    );
}

/// d (image embedding · text embedding) / d pixels through the loaded clip-a, with packed
/// weights (their transposed packing) and with plain ones (candle's matmul).
#[test]
fn pixel_gradients_through_a_loaded_model_match_pytorch() {
    let want = reference();
    let text = &want["model.text_embed"]; // (1, E)
    for format in [WeightFormat::Packed, WeightFormat::Plain] {
        let clip = Clip::load_with(&model_dir("clip-a"), gradient_options(format)).unwrap();
        let pixels = Var::from_tensor(&want["model.pixels"]).unwrap();
        let embeds = l2_normalize(&clip.image_features(pixels.as_tensor()).unwrap()).unwrap();
        check(
            &format!("{format:?} image embeds"),
            &embeds,
            &want["model.image_embeds"],
            MODEL_TOL,
        );
        let loss = embeds
            .matmul(&text.t().unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        check(
            &format!("{format:?} d loss / d pixels"),
            grads
                .get(pixels.as_tensor())
                .expect("pixels have a gradient"),
            &want["model.pixels_grad"],
            GRAD_TOL,
        );
    }
}

/// The generator's whole path: an image in [0, 1] → crop → bicubic resize → normalise →
/// embedding → loss, and the loss's gradient back to the image.
#[test]
fn gradient_from_embedding_to_unit_range_image_matches_pytorch() {
    let want = reference();
    let clip =
        Clip::load_with(&model_dir("clip-a"), gradient_options(WeightFormat::Packed)).unwrap();
    let size = clip.image_size();
    let x = Var::from_tensor(&want["chain.x"]).unwrap();
    let cut = crop_resize(
        &x,
        CropBox {
            top: 4,
            left: 6,
            height: 30,
            width: 36,
        },
        (size, size),
        Interpolation::Bicubic,
    )
    .unwrap();
    let pixels = normalize(&cut, clip.preprocess_config()).unwrap();
    let embeds = l2_normalize(&clip.image_features(&pixels).unwrap()).unwrap();
    let loss = embeds
        .matmul(&want["model.text_embed"].t().unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
    check("chain loss", &loss, &want["chain.loss"], MODEL_TOL);
    let grads = loss.backward().unwrap();
    check(
        "chain d loss / d x",
        grads.get(x.as_tensor()).expect("x has a gradient"),
        &want["chain.x_grad"],
        GRAD_TOL,
    );
}

/// Loading for gradients changes no inference output: packed weights give the same bits as
/// `Clip::load`, plain ones agree to rounding.
#[test]
fn inference_outputs_do_not_depend_on_the_gradient_option() {
    let want = reference();
    let pixels = &want["model.pixels"];
    let dir = model_dir("clip-a");
    let default = Clip::load(&dir).unwrap().embed_pixels(pixels).unwrap();
    let packed = Clip::load_with(&dir, gradient_options(WeightFormat::Packed))
        .unwrap()
        .embed_pixels(pixels)
        .unwrap();
    let plain = Clip::load_with(&dir, gradient_options(WeightFormat::Plain))
        .unwrap()
        .embed_pixels(pixels)
        .unwrap();
    let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(bits(&default), bits(&packed));
    check("plain vs packed", &plain, &default, 1e-5);
    check(
        "default vs PyTorch",
        &default,
        &want["model.image_embeds"],
        MODEL_TOL,
    );
}
