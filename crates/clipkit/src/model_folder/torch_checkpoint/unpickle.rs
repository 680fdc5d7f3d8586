//! A restricted unpickler: it reads the pickle opcodes a PyTorch state dict or TorchScript
//! module tree uses and builds inert values from them; nothing in the pickle is ever called.
//!
//! A `GLOBAL` is looked up in [`allowed`]; tensor rebuilds, storages, `OrderedDict`,
//! TorchScript's typed-list helpers and TorchScript module classes (`__torch__.*`, whose code
//! is never run: a module is just its attribute dictionary) are understood. Any other global
//! either stops the read at once ([`Strictness::RefuseAll`]) or becomes an inert
//! [`Value::Refused`] that the tensor walk refuses if it meets it
//! ([`Strictness::RefuseReached`]).
//!
//! Memo entries share their values (`Rc`), so a pickle that references one object many times
//! costs no copies; lists, dicts and modules are shared mutable cells, as pickle's memo
//! semantics require.

use std::cell::RefCell;
use std::rc::Rc;

use candle_core::DType;

/// Which globals stop the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strictness {
    /// Any global outside the allowed set is an error where the pickle names it.
    RefuseAll,
    /// Globals outside the allowed set become [`Value::Refused`]; the caller refuses those
    /// it reaches.
    RefuseReached,
}

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location,
/// numel[, view_metadata])`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StorageRef {
    /// The storage's key: its file name under `data/` (zip) or its legacy root key.
    pub key: String,
    /// Element type, from the storage class.
    pub dtype: StorageType,
    /// Number of elements.
    pub numel: usize,
}

/// A view of a storage, as `torch._utils._rebuild_tensor_v2` describes it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TensorRef {
    /// The storage the tensor views.
    pub storage: StorageRef,
    /// Offset into the storage, in elements.
    pub offset: usize,
    /// Shape.
    pub size: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

/// The element types of PyTorch's storage classes that clipkit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StorageType {
    /// `FloatStorage`.
    F32,
    /// `HalfStorage`.
    F16,
    /// `BFloat16Storage`.
    BF16,
    /// `DoubleStorage`.
    F64,
    /// `LongStorage`.
    I64,
    /// `IntStorage`.
    I32,
    /// `ShortStorage`.
    I16,
    /// `ByteStorage`.
    U8,
    /// `BoolStorage` (one byte per element).
    Bool,
}

impl StorageType {
    fn from_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "DoubleStorage" => Self::F64,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element in the file.
    pub fn size_in_bytes(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::U8 | Self::Bool => 1,
        }
    }

    /// The candle dtype the elements are read as (booleans as `U8`).
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
            Self::BF16 => DType::BF16,
            Self::F64 => DType::F64,
            Self::I64 => DType::I64,
            Self::I32 => DType::I32,
            Self::I16 => DType::I16,
            Self::U8 | Self::Bool => DType::U8,
        }
    }
}

/// A global the unpickler understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    RebuildTensor,
    RebuildParameter,
    OrderedDict,
    Storage(StorageType),
    /// `torch.jit._pickle.build_*list` and `restore_type_tag`: return their first argument.
    Identity,
    /// A TorchScript module class (`__torch__.…`).
    TorchScriptClass,
}

/// The allowed globals, by module and name; `None` for everything else.
fn allowed(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch", storage) => StorageType::from_class(storage).map(Global::Storage),
        (
            "torch.jit._pickle",
            "build_intlist" | "build_doublelist" | "build_boollist" | "build_tensorlist"
            | "build_genericlist" | "restore_type_tag",
        ) => Some(Global::Identity),
        (m, _) if m == "__torch__" || m.starts_with("__torch__.") => Some(Global::TorchScriptClass),
        _ => None,
    }
}

/// An unpickled value. Containers are shared, as in Python.
#[derive(Debug, Clone)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// A float (its value is never needed).
    Float,
    Str(Rc<str>),
    /// A byte string (its value is never needed).
    Bytes,
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    /// A dict or `OrderedDict`, in insertion order.
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A TorchScript module: its attributes, set by `BUILD`.
    Module(Rc<RefCell<Vec<(Value, Value)>>>),
    Tensor(Rc<TensorRef>),
    /// A persistent-id storage reference.
    Storage(Rc<StorageRef>),
    Global(Global),
    /// A global outside the allowed set, or what calling it would have produced:
    /// `module.name`.
    Refused(Rc<str>),
    /// The stack marker of `MARK`.
    Mark,
}

impl Value {
    fn new_dict() -> Self {
        Value::Dict(Rc::new(RefCell::new(Vec::new())))
    }
}

/// An unpickling error: a message and the byte offset where it happened.
#[derive(Debug)]
pub(super) enum UnpickleError {
    /// The pickle names a global outside the allowed set.
    Refused(String),
    /// The bytes are not a pickle clipkit can read.
    Malformed {
        /// Byte offset of the opcode at fault.
        at: usize,
        /// What is wrong.
        message: String,
    },
}

type UResult<T> = std::result::Result<T, UnpickleError>;

/// One unpickled object and the storages its persistent ids named (all of them, reached or
/// not: the legacy format needs their element sizes to find the storages after the pickle).
pub(super) struct Unpickled {
    /// The object.
    pub value: Value,
    /// Every storage named, in pickle order, repeats included.
    pub storages: Vec<Rc<StorageRef>>,
}

/// Reads one pickle from `bytes[*pos..]`, up to and including its `STOP`; `*pos` ends just
/// after it.
pub(super) fn unpickle(
    bytes: &[u8],
    pos: &mut usize,
    strictness: Strictness,
) -> UResult<Unpickled> {
    let mut machine = Machine {
        bytes,
        pos: *pos,
        op_at: *pos,
        stack: Vec::new(),
        memo: Vec::new(),
        strictness,
        storages: Vec::new(),
    };
    let value = machine.run()?;
    *pos = machine.pos;
    Ok(Unpickled {
        value,
        storages: machine.storages,
    })
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    op_at: usize,
    stack: Vec<Value>,
    memo: Vec<Option<Value>>,
    strictness: Strictness,
    storages: Vec<Rc<StorageRef>>,
}

impl Machine<'_> {
    fn malformed<T>(&self, message: impl Into<String>) -> UResult<T> {
        Err(UnpickleError::Malformed {
            at: self.op_at,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> UResult<&[u8]> {
        let end = match self.pos.checked_add(n) {
            Some(end) if end <= self.bytes.len() => end,
            _ => return self.malformed("the pickle ends in the middle of an opcode (truncated?)"),
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self) -> UResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> UResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> UResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> UResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line(&mut self) -> UResult<String> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.malformed("a GLOBAL name without its newline (truncated?)");
        };
        let text = match std::str::from_utf8(&rest[..end]) {
            Ok(text) => text.to_string(),
            Err(_) => return self.malformed("a GLOBAL name that is not UTF-8"),
        };
        self.pos += end + 1;
        Ok(text)
    }

    fn string(&mut self, len: usize) -> UResult<Value> {
        let raw = self.take(len)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(_) => self.malformed("a string that is not UTF-8"),
        }
    }

    fn bytes_value(&mut self, len: usize) -> UResult<Value> {
        self.take(len)?;
        Ok(Value::Bytes)
    }

    fn push(&mut self, value: Value) {
        self.stack.push(value);
    }

    fn pop(&mut self) -> UResult<Value> {
        match self.stack.pop() {
            Some(Value::Mark) => self.malformed("a MARK where a value was expected"),
            Some(value) => Ok(value),
            None => self.malformed("pops an empty stack"),
        }
    }

    fn top(&mut self) -> UResult<&mut Value> {
        let at = self.op_at;
        self.stack.last_mut().ok_or(UnpickleError::Malformed {
            at,
            message: "reads an empty stack".into(),
        })
    }

    fn pop_mark(&mut self) -> UResult<Vec<Value>> {
        let Some(mark) = self.stack.iter().rposition(|v| matches!(v, Value::Mark)) else {
            return self.malformed("no MARK on the stack");
        };
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn len_usize(&self, len: u64) -> UResult<usize> {
        usize::try_from(len).or_else(|_| self.malformed("a length beyond this machine's memory"))
    }

    fn memo_put(&mut self, index: usize) -> UResult<()> {
        let value = self.top()?.clone();
        if index > self.bytes.len() {
            return self.malformed(format!("memo index {index} beyond the pickle's size"));
        }
        if self.memo.len() <= index {
            self.memo.resize(index + 1, None);
        }
        self.memo[index] = Some(value);
        Ok(())
    }

    fn memo_get(&mut self, index: usize) -> UResult<()> {
        match self.memo.get(index) {
            Some(Some(value)) => {
                let value = value.clone();
                self.push(value);
                Ok(())
            }
            _ => self.malformed(format!("memo index {index} read before it was written")),
        }
    }

    fn global(&mut self, module: String, name: String) -> UResult<()> {
        match allowed(&module, &name) {
            Some(global) => self.push(Value::Global(global)),
            None => {
                let qualified = format!("{module}.{name}");
                if self.strictness == Strictness::RefuseAll {
                    return Err(UnpickleError::Refused(qualified));
                }
                self.push(Value::Refused(Rc::from(qualified)));
            }
        }
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> UResult<()> {
        if !items.len().is_multiple_of(2) {
            return self.malformed("SETITEMS with an odd number of values");
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        match self.top()? {
            Value::Dict(d) | Value::Module(d) => {
                d.borrow_mut().extend(pairs);
                Ok(())
            }
            Value::Refused(_) => Ok(()),
            _ => self.malformed("SETITEM(S) on something that is not a dict"),
        }
    }

    fn append(&mut self, items: Vec<Value>) -> UResult<()> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            Value::Refused(_) => Ok(()),
            _ => self.malformed("APPEND(S) on something that is not a list"),
        }
    }

    /// `REDUCE` and `NEWOBJ`: call an allowed global, symbolically.
    fn call(&mut self, callable: Value, args: Value) -> UResult<Value> {
        let args: Rc<[Value]> = match args {
            Value::Tuple(args) => args,
            _ => return self.malformed("a call whose arguments are not a tuple"),
        };
        let global = match callable {
            Value::Global(global) => global,
            Value::Refused(name) => return Ok(Value::Refused(name)),
            _ => return self.malformed("a call of something that is not a global"),
        };
        match global {
            Global::OrderedDict => Ok(Value::new_dict()),
            Global::TorchScriptClass => Ok(Value::Module(Rc::new(RefCell::new(Vec::new())))),
            Global::Identity | Global::RebuildParameter => match args.first() {
                Some(first) => Ok(first.clone()),
                None => self.malformed("a typed-list or parameter rebuild without arguments"),
            },
            Global::RebuildTensor => self.rebuild_tensor(&args),
            Global::Storage(_) => self.malformed("a storage class called as a function"),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`.
    fn rebuild_tensor(&self, args: &[Value]) -> UResult<Value> {
        let (Some(Value::Storage(storage)), Some(Value::Int(offset)), Some(size), Some(stride)) =
            (args.first(), args.get(1), args.get(2), args.get(3))
        else {
            return self.malformed(
                "_rebuild_tensor_v2 with arguments other than (storage, offset, size, stride, ...)",
            );
        };
        let dims = |v: &Value| -> Option<Vec<usize>> {
            match v {
                Value::Tuple(items) => items
                    .iter()
                    .map(|i| match i {
                        Value::Int(n) => usize::try_from(*n).ok(),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            }
        };
        let (Some(size), Some(stride), Ok(offset)) =
            (dims(size), dims(stride), usize::try_from(*offset))
        else {
            return self.malformed("_rebuild_tensor_v2 with a size, stride or offset that is not a tuple of non-negative integers");
        };
        if size.len() != stride.len() {
            return self
                .malformed("_rebuild_tensor_v2 with a size and a stride of different lengths");
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: (**storage).clone(),
            offset,
            size,
            stride,
        })))
    }

    fn persistent_load(&mut self, pid: Value) -> UResult<Value> {
        let Value::Tuple(items) = pid else {
            return self.malformed("a persistent id that is not a tuple");
        };
        match &items[..] {
            [Value::Str(tag), storage_class, Value::Str(key), Value::Str(_location), Value::Int(numel), ..]
                if &**tag == "storage" =>
            {
                let dtype = match storage_class {
                    Value::Global(Global::Storage(dtype)) => *dtype,
                    Value::Refused(name) => {
                        return self.malformed(format!("unsupported storage type `{name}`"))
                    }
                    _ => return self.malformed("a storage whose type is not a storage class"),
                };
                let Ok(numel) = usize::try_from(*numel) else {
                    return self.malformed("a storage with a negative size");
                };
                let storage = Rc::new(StorageRef {
                    key: key.to_string(),
                    dtype,
                    numel,
                });
                self.storages.push(storage.clone());
                Ok(Value::Storage(storage))
            }
            _ => {
                self.malformed("a persistent id other than ('storage', type, key, location, numel)")
            }
        }
    }

    fn build(&mut self) -> UResult<()> {
        let state = self.pop()?;
        let target = self.top()?.clone();
        match target {
            Value::Module(attrs) => match state {
                Value::Dict(d) => attrs.borrow_mut().extend(d.borrow().iter().cloned()),
                _ => return self.malformed("a TorchScript module whose state is not a dict"),
            },
            // An OrderedDict's `__dict__` (a state dict's `_metadata`), a tensor's or a
            // refused object's state: not tensors, nothing to keep.
            Value::Dict(_) | Value::Tensor(_) | Value::Refused(_) => {}
            _ => return self.malformed("BUILD on an object that takes no state"),
        }
        Ok(())
    }

    fn run(&mut self) -> UResult<Value> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let protocol = self.u8()?;
                    if protocol > 5 {
                        return self.malformed(format!("pickle protocol {protocol}"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint
                }
                b'.' => return self.pop(),
                b'(' => self.push(Value::Mark),
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?.clone();
                    self.push(top);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let raw = self.take(n)?;
                    if n > 8 {
                        return self.malformed("an integer wider than 64 bits");
                    }
                    let mut a = [0u8; 8];
                    a[..n].copy_from_slice(raw);
                    if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 {
                        a[n..].fill(0xff);
                    }
                    self.push(Value::Int(i64::from_le_bytes(a)));
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Value::Float);
                }
                b'X' => {
                    let n = self.u32()?;
                    let n = self.len_usize(n.into())?;
                    let v = self.string(n)?;
                    self.push(v);
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.string(n)?;
                    self.push(v);
                }
                0x8d => {
                    let n = self.u64()?;
                    let n = self.len_usize(n)?;
                    let v = self.string(n)?;
                    self.push(v);
                }
                b'U' | b'C' => {
                    let n = usize::from(self.u8()?);
                    let v = self.bytes_value(n)?;
                    self.push(v);
                }
                b'T' | b'B' => {
                    let n = self.u32()?;
                    let n = self.len_usize(n.into())?;
                    let v = self.bytes_value(n)?;
                    self.push(v);
                }
                b')' => self.push(Value::Tuple(Rc::from(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(Rc::from(items)));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return self.malformed("TUPLE of more values than the stack holds");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    if items.iter().any(|v| matches!(v, Value::Mark)) {
                        return self.malformed("a MARK inside a short tuple");
                    }
                    self.push(Value::Tuple(Rc::from(items)));
                }
                b']' => self.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'}' => self.push(Value::new_dict()),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::new_dict());
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return self.malformed("STACK_GLOBAL of values that are not strings");
                    };
                    self.global(module.to_string(), name.to_string())?;
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.push(v);
                }
                b'b' => self.build()?,
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v);
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(i.into())?;
                }
                b'r' => {
                    let i = self.u32()?;
                    let i = self.len_usize(i.into())?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = self.memo.len();
                    self.memo_put(i)?;
                }
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(i.into())?;
                }
                b'j' => {
                    let i = self.u32()?;
                    let i = self.len_usize(i.into())?;
                    self.memo_get(i)?;
                }
                other => {
                    return self.malformed(format!(
                        "pickle opcode 0x{other:02x} ({:?}), which clipkit does not read \
                         (only the opcodes of PyTorch state dicts and TorchScript archives)",
                        other as char
                    ))
                }
            }
        }
    }
}
