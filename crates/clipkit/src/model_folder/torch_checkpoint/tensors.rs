//! From an unpickled object tree to named tensors: the walk that names every tensor by its
//! dotted path, and the copy of a tensor's view out of its storage's bytes.

use std::rc::Rc;

use candle_core::{Device, Tensor};

use super::unpickle::{TensorRef, Value};

/// Deeper nesting than this is refused (a state dict is 2 levels deep, a TorchScript module
/// tree some 10; cycles would never end).
const MAX_DEPTH: usize = 256;
/// More visited values than this are refused (shared sub-trees could otherwise be walked
/// an exponential number of times).
const MAX_VISITS: usize = 50_000_000;

/// Why the walk stopped.
#[derive(Debug)]
pub(super) enum WalkError {
    /// A refused global was reached at this dotted name.
    Refused {
        /// The global, `module.name`.
        global: String,
        /// Where in the tree it sits.
        at: String,
    },
    /// The tree is too deep or too large to be a checkpoint.
    TooLarge(String),
}

/// Every tensor in `root`, named by its dotted path of dict keys, module attributes and
/// list indices (`visual.conv1.weight`), in pickle order.
pub(super) fn named_tensors(root: &Value) -> Result<Vec<(String, Rc<TensorRef>)>, WalkError> {
    let mut walk = Walk {
        out: Vec::new(),
        visits: 0,
    };
    walk.value(root, "", 0)?;
    Ok(walk.out)
}

struct Walk {
    out: Vec<(String, Rc<TensorRef>)>,
    visits: usize,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Walk {
    fn value(&mut self, value: &Value, name: &str, depth: usize) -> Result<(), WalkError> {
        self.visits += 1;
        if depth > MAX_DEPTH || self.visits > MAX_VISITS {
            return Err(WalkError::TooLarge(format!(
                "the object tree is deeper than {MAX_DEPTH} or larger than {MAX_VISITS} values (at `{name}`)"
            )));
        }
        match value {
            Value::Tensor(t) => self.out.push((name.to_string(), t.clone())),
            Value::Dict(items) | Value::Module(items) => {
                for (key, v) in items.borrow().iter() {
                    let key = match key {
                        Value::Str(s) => s.to_string(),
                        Value::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    self.value(v, &join(name, &key), depth + 1)?;
                }
            }
            Value::List(items) => {
                for (i, v) in items.borrow().iter().enumerate() {
                    self.value(v, &join(name, &i.to_string()), depth + 1)?;
                }
            }
            Value::Tuple(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.value(v, &join(name, &i.to_string()), depth + 1)?;
                }
            }
            Value::Refused(global) => {
                return Err(WalkError::Refused {
                    global: global.to_string(),
                    at: if name.is_empty() {
                        "the top level".into()
                    } else {
                        format!("`{name}`")
                    },
                })
            }
            Value::None
            | Value::Bool(_)
            | Value::Int(_)
            | Value::Float
            | Value::Str(_)
            | Value::Bytes
            | Value::Storage(_)
            | Value::Global(_)
            | Value::Mark => {}
        }
        Ok(())
    }
}

/// The value at top-level key `key` of a dict-shaped `root`.
pub(super) fn member(root: &Value, key: &str) -> Option<Value> {
    match root {
        Value::Dict(items) | Value::Module(items) => items
            .borrow()
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
            .map(|(_, v)| v.clone()),
        _ => None,
    }
}

/// Copies the view `t` out of its storage's bytes (`storage`, little-endian) into a CPU
/// tensor of the storage's dtype. Errors name what does not fit.
pub(super) fn materialize(t: &TensorRef, storage: &[u8]) -> Result<Tensor, String> {
    let elem = t.storage.dtype.size_in_bytes();
    let have = storage.len() / elem;
    if have < t.storage.numel {
        return Err(format!(
            "storage `{}` holds {have} elements, the pickle says {}",
            t.storage.key, t.storage.numel
        ));
    }
    let numel: usize = t.size.iter().product();
    let bytes = if numel == 0 {
        Vec::new()
    } else {
        // The last element the view reaches must lie inside the storage.
        t
            .size
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |acc, (&n, &s)| acc.checked_add((n - 1).checked_mul(s)?))
            .filter(|&last| last < t.storage.numel)
            .ok_or_else(|| {
                format!(
                    "a view of shape {:?}, stride {:?}, offset {} reaches past the end of storage `{}` ({} elements)",
                    t.size, t.stride, t.offset, t.storage.key, t.storage.numel
                )
            })?;
        if is_contiguous(&t.size, &t.stride) {
            storage[t.offset * elem..(t.offset + numel) * elem].to_vec()
        } else {
            gather(t, storage, elem, numel)
        }
    };
    Tensor::from_raw_buffer(&bytes, t.storage.dtype.dtype(), &t.size, &Device::Cpu)
        .map_err(|e| e.to_string())
}

fn is_contiguous(size: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1;
    for (&n, &s) in size.iter().zip(stride).rev() {
        if n != 1 && s != expected {
            return false;
        }
        expected *= n;
    }
    true
}

/// Row-major copy of a strided view, element by element (a transposed weight, say).
fn gather(t: &TensorRef, storage: &[u8], elem: usize, numel: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(numel * elem);
    let mut index = vec![0usize; t.size.len()];
    for _ in 0..numel {
        let at = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        out.extend_from_slice(&storage[at * elem..(at + 1) * elem]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.size[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}
