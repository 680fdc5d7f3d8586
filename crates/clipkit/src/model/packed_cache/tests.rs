//! A [`PackedCache`] on a copy of the `clip-a` fixture: later loads map what the first
//! packed, compute bit for bit what a load without cache computes, and anything that does
//! not match (a changed checkpoint, a damaged file) is packed again and replaced.

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::*;
use crate::checkpoint::Checkpoint;
use crate::model::ImageTowerConfig;
use crate::model_folder::read_model;
use crate::Clip;

/// A copy of the `clip-a` fixture (so its files can be changed), and an empty cache folder.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    setup_fixture("models/clip-a")
}

/// A copy of the fixture folder `tests/fixtures/{name}`, and an empty cache folder.
fn setup_fixture(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let cache = tmp.path().join("cache");
    (tmp, model, cache)
}

fn load(model: &Path, cache: &PackedCache, precision: Precision) -> Clip {
    let options = LoadOptions {
        precision,
        packed_cache: Some(cache),
        ..LoadOptions::default()
    };
    Clip::load_with(model, options).unwrap()
}

/// Image and text embeddings of fixed inputs, as raw values.
fn outputs(clip: &Clip) -> (Vec<f32>, Vec<f32>) {
    let s = clip.image_size();
    let pixels: Vec<f32> = (0..2 * 3 * s * s)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let pixels = Tensor::from_vec(pixels, (2, 3, s, s), &Device::Cpu).unwrap();
    let images = clip.embed_pixels(&pixels).unwrap();
    let texts = clip
        .embed_texts(&["a photo of a cat", "two red circles"])
        .unwrap();
    (
        images.flatten_all().unwrap().to_vec1().unwrap(),
        texts.flatten_all().unwrap().to_vec1().unwrap(),
    )
}

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = listing.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The same checkpoint in a new file under the old name: another inode and modification
/// time, as when a checkpoint is saved again.
fn rewrite_checkpoint(model: &Path) {
    let weights = model.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::remove_file(&weights).unwrap();
    std::fs::write(&weights, bytes).unwrap();
}

/// Whether this CPU's kernel packs f32 weights at all (the portable kernel does not, and
/// then nothing is cached). An AVX2 CPU always packs, unless `CLIPKIT_KERNEL` forces the
/// portable kernel: the cache is tested wherever it can be.
fn kernel_packs() -> bool {
    let packs = PackedWeight::f32_panel_len(Kernel::active(), 1, 1).is_some();
    assert!(
        packs
            || !Kernel::Avx2.is_supported()
            || std::env::var_os(super::super::KERNEL_ENV).is_some(),
        "an AVX2 CPU must test the packed-weight cache"
    );
    packs
}

/// What a new load of `model` through `cache` finds in the cache file: whether the first
/// layer's fused attention product, an MLP product and the token embedding are there.
fn hits(model: &Path, cache: &PackedCache) -> [bool; 3] {
    let parts = read_model(model).unwrap();
    let weights: &Checkpoint = &parts.weights;
    let session = cache.begin(weights, &parts.architecture, LoadOptions::default());
    let text = &parts.architecture.text;
    let (c, i) = (text.hidden_size, text.intermediate_size);
    let layer = "text_model.encoder.layers.0";
    let found = [
        cache
            .lookup(&format!("{layer}.self_attn.qkv_proj.weight"), 3 * c, c)
            .is_some(),
        cache
            .lookup(&format!("{layer}.mlp.fc1.weight"), i, c)
            .is_some(),
        cache
            .lookup_rows(
                "text_model.embeddings.token_embedding.weight",
                text.vocab_size,
                c,
            )
            .is_some(),
    ];
    drop(session);
    found
}

#[test]
fn a_second_load_maps_the_packed_weights_and_computes_the_same() {
    let (_tmp, model, dir) = setup();
    let expected = outputs(&Clip::load(&model).unwrap());
    let cache = PackedCache::with_min_bytes(&dir, 0);
    let first = outputs(&load(&model, &cache, Precision::Fp32));
    assert_eq!(first, expected, "packing for the cache changed the outputs");
    if !kernel_packs() {
        assert!(
            cache_files(&dir).is_empty(),
            "the portable kernel packs nothing"
        );
        return;
    }
    let files = cache_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(hits(&model, &cache), [true; 3]);
    let second = outputs(&load(&model, &cache, Precision::Fp32));
    assert_eq!(second, expected, "mapped weights changed the outputs");
    assert_eq!(cache_files(&dir), files, "a hit rewrote the cache");
}

/// An open_clip folder is read into memory and renamed, so only packing is saved; its
/// ModifiedResNet's convolutions are kept with their batch norm folded in.
#[test]
fn an_open_clip_resnet_folder_is_kept_convolutions_too() {
    let (_tmp, model, dir) = setup_fixture("openclip/resnet_safetensors");
    let expected = outputs(&Clip::load(&model).unwrap());
    let cache = PackedCache::with_min_bytes(&dir, 0);
    assert_eq!(outputs(&load(&model, &cache, Precision::Fp32)), expected);
    if !kernel_packs() {
        assert!(
            cache_files(&dir).is_empty(),
            "the portable kernel packs nothing"
        );
        return;
    }
    assert_eq!(cache_files(&dir).len(), 1);
    assert_eq!(hits(&model, &cache), [true; 3]);
    let parts = read_model(&model).unwrap();
    let ImageTowerConfig::ResNet(resnet) = &parts.architecture.image else {
        panic!("the fixture has a ModifiedResNet image tower");
    };
    let session = cache.begin(&parts.weights, &parts.architecture, LoadOptions::default());
    // The stem's first convolution: 3 → width / 2 channels, 3 × 3.
    let stem = cache.lookup("visual.conv1.weight", resnet.width / 2, 27);
    assert!(stem.is_some(), "the stem convolution was not kept");
    drop(session);
    assert_eq!(outputs(&load(&model, &cache, Precision::Fp32)), expected);
}

#[test]
fn a_changed_checkpoint_is_packed_again_and_its_file_replaced() {
    let (_tmp, model, dir) = setup();
    if !kernel_packs() {
        return;
    }
    let cache = PackedCache::with_min_bytes(&dir, 0);
    let expected = outputs(&load(&model, &cache, Precision::Fp32));
    let before = cache_files(&dir);
    rewrite_checkpoint(&model);
    assert_eq!(hits(&model, &cache), [false; 3], "a stale file was used");
    // The old file under the new name is refused too: its header names the old weights.
    let parts = read_model(&model).unwrap();
    let files = parts.weights.weight_files();
    let identity = Identity::new(Kernel::active(), &parts.architecture, &files).unwrap();
    std::fs::rename(&before[0], dir.join(identity.file_name())).unwrap();
    assert_eq!(
        hits(&model, &cache),
        [false; 3],
        "a stale header was trusted"
    );
    assert_eq!(outputs(&load(&model, &cache, Precision::Fp32)), expected);
    let after = cache_files(&dir);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before);
    assert_eq!(hits(&model, &cache), [true; 3]);
}

#[test]
fn files_of_models_that_are_gone_are_removed_when_another_is_written() {
    let (_tmp, model, dir) = setup();
    if !kernel_packs() {
        return;
    }
    let other = model.with_file_name("other");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(&model).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), other.join(entry.file_name())).unwrap();
    }
    let cache = PackedCache::with_min_bytes(&dir, 0);
    let _ = load(&other, &cache, Precision::Fp32);
    let _ = load(&model, &cache, Precision::Fp32);
    assert_eq!(cache_files(&dir).len(), 2, "one file per model");
    // Abandoned by a writer that died, and foreign: neither is a usable cache file.
    let abandoned = dir.join("0123.packed.tmp-99999");
    std::fs::write(&abandoned, b"half").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    File::options()
        .write(true)
        .open(&abandoned)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::write(dir.join("foreign.packed"), b"something else").unwrap();
    std::fs::remove_dir_all(&other).unwrap();
    // A changed checkpoint makes the next load write a file, which sweeps the folder.
    rewrite_checkpoint(&model);
    let _ = load(&model, &cache, Precision::Fp32);
    let left = cache_files(&dir);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(hits(&model, &cache), [true; 3]);
}

#[test]
fn a_damaged_cache_file_is_ignored_and_replaced() {
    let (_tmp, model, dir) = setup();
    if !kernel_packs() {
        return;
    }
    let cache = PackedCache::with_min_bytes(&dir, 0);
    let expected = outputs(&load(&model, &cache, Precision::Fp32));
    let file = cache_files(&dir).remove(0);
    let whole = std::fs::read(&file).unwrap();
    let damages: [(&str, Vec<u8>); 4] = [
        ("truncated", whole[..whole.len() / 2].to_vec()),
        ("empty", Vec::new()),
        (
            "another magic",
            [b"not-a-cache-file".as_slice(), &whole[16..]].concat(),
        ),
        ("a header cut short", whole[..40].to_vec()),
    ];
    for (what, damaged) in damages {
        std::fs::write(&file, damaged).unwrap();
        assert_eq!(hits(&model, &cache), [false; 3], "{what}: used");
        assert_eq!(
            outputs(&load(&model, &cache, Precision::Fp32)),
            expected,
            "{what}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), whole, "{what}: not replaced");
    }
}

#[test]
fn loads_the_cache_does_not_serve_write_nothing() {
    let (_tmp, model, dir) = setup();
    // clip-a's weights are far below the default threshold.
    let _ = load(&model, &PackedCache::new(&dir), Precision::Fp32);
    assert!(cache_files(&dir).is_empty());
    let cache = PackedCache::with_min_bytes(&dir, 0);
    let _ = load(&model, &cache, Precision::Int8);
    let gradients = LoadOptions {
        input_gradients: true,
        packed_cache: Some(&cache),
        ..LoadOptions::default()
    };
    let _ = Clip::load_with(&model, gradients).unwrap();
    assert!(cache_files(&dir).is_empty(), "{:?}", cache_files(&dir));
}
