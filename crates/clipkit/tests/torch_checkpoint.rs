//! The PyTorch checkpoint reader (`model_folder::torch_checkpoint`) against files written by
//! PyTorch (`tools/make_torch_checkpoint_fixtures.py`): every tensor bit-exact with its name
//! in the zip, legacy and TorchScript formats; pickles that would run code, foreign and
//! truncated files refused with errors naming the file and the global.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Tensor};
use clipkit::model_folder::torch_checkpoint::{read_tensors, read_tensors_under};
use clipkit::Error;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/torch"
    ))
    .join(name)
}

/// The expected tensors whose names start with `prefix`, prefix removed.
fn expected(prefix: &str) -> BTreeMap<String, Tensor> {
    let all =
        candle_core::safetensors::load(fixture("expected.safetensors"), &candle_core::Device::Cpu)
            .expect("expected.safetensors");
    all.into_iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v)))
        .collect()
}

/// Bit-exact equality of names, dtypes (bf16/f16 kept), shapes and values.
fn assert_same(got: Vec<(String, Tensor)>, want: BTreeMap<String, Tensor>) {
    let got_names: Vec<&String> = got.iter().map(|(n, _)| n).collect();
    let mut sorted = got_names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        want.keys().collect::<Vec<_>>(),
        "tensor names differ"
    );
    for (name, g) in &got {
        let w = &want[name];
        assert_eq!(g.dtype(), w.dtype(), "{name}: dtype");
        assert_eq!(g.dims(), w.dims(), "{name}: shape");
        let as_f64 = |t: &Tensor| -> Vec<f64> {
            t.to_dtype(DType::F64)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .expect("to f64")
        };
        let (gv, wv) = (as_f64(g), as_f64(w));
        assert!(
            gv.iter().zip(&wv).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{name}: values {gv:?} != {wv:?}"
        );
    }
}

#[test]
fn zip_state_dict_reads_every_tensor_exactly_in_pickle_order() {
    let got = read_tensors(&fixture("state_dict.bin")).unwrap();
    assert_eq!(got[0].0, "linear.weight");
    assert_eq!(got.last().map(|(n, _)| n.as_str()), Some("scalar"));
    assert_same(got, expected("sd."));
}

#[test]
fn legacy_format_reads_the_same_tensors() {
    assert_same(
        read_tensors(&fixture("legacy.bin")).unwrap(),
        expected("sd."),
    );
}

#[test]
fn torchscript_archive_names_tensors_by_attribute_path() {
    assert_same(
        read_tensors(&fixture("traced.pt")).unwrap(),
        expected("ts."),
    );
}

#[test]
fn lightning_checkpoint_reads_under_state_dict_but_is_refused_whole() {
    let path = fixture("lightning.ckpt");
    assert_same(
        read_tensors_under(&path, "state_dict").unwrap(),
        expected("sd."),
    );
    match read_tensors(&path) {
        Err(Error::UnsafePickle { global, .. }) => assert_eq!(global, "argparse.Namespace"),
        other => panic!("expected UnsafePickle, got {other:?}"),
    }
    let missing = read_tensors_under(&path, "model").unwrap_err().to_string();
    assert!(
        missing.contains("lightning.ckpt") && missing.contains("`model`"),
        "{missing}"
    );
}

#[test]
fn pickle_that_would_run_code_is_refused_naming_the_global() {
    let path = fixture("evil.bin");
    for result in [read_tensors(&path), read_tensors_under(&path, "payload")] {
        let err = result.unwrap_err();
        assert!(
            matches!(&err, Error::UnsafePickle { global, .. } if global == "posix.system"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("evil.bin") && message.contains("posix.system"),
            "{message}"
        );
    }
    // The tensor beside the payload is readable on its own: refusal is per reached value.
    let weights = read_tensors_under(&path, "weights").unwrap();
    assert_eq!(weights.len(), 1);
}

#[test]
fn truncated_and_foreign_files_are_corrupt_checkpoints_naming_the_file() {
    for (name, bytes) in [
        ("truncated.pt", None),
        (
            "not-torch.pt",
            Some(b"just some text, not a checkpoint".to_vec()),
        ),
        ("empty.pt", Some(Vec::new())),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = match bytes {
            None => fixture(name),
            Some(bytes) => {
                let path = dir.path().join(name);
                std::fs::write(&path, bytes).unwrap();
                path
            }
        };
        let err = read_tensors(&path).unwrap_err();
        assert!(
            matches!(err, Error::CorruptCheckpoint { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
    // A zip archive that is not a PyTorch checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.pt");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file("readme.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"hello").unwrap();
    zip.finish().unwrap();
    let err = read_tensors(&path).unwrap_err().to_string();
    assert!(
        err.contains("foreign.pt") && err.contains("data.pkl"),
        "{err}"
    );
}

#[test]
fn probe_layout_tells_hf_folders_and_torch_files_from_others() {
    use clipkit::model_folder::{probe_layout, Layout};
    let fixtures = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"));
    assert_eq!(
        probe_layout(&fixtures.join("models/clip-a")),
        Some(Layout::HfFolder)
    );
    for file in ["traced.pt", "state_dict.bin", "legacy.bin", "truncated.pt"] {
        assert_eq!(
            probe_layout(&fixture(file)),
            Some(Layout::TorchCheckpoint),
            "{file}"
        );
    }
    assert_eq!(probe_layout(&fixtures.join("torch")), None);
    assert_eq!(probe_layout(&fixture("expected.safetensors")), None);
    assert_eq!(probe_layout(&fixture("no-such-file")), None);
}
