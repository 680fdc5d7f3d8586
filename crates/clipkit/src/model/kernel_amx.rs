//! AMX tiles for the bf16 and w8a8 products of [`super::packed::PackedWeight`]
//! ([`Kernel::Amx`]).
//!
//! AMX (Sapphire Rapids and later Xeons) adds eight tile registers of up to 16 rows × 64
//! bytes; `tdpbf16ps` multiplies a 16 × 32 bf16 tile by a 32 × 16 one (in pairs along the
//! depth, the layout [`super::kernel_bf16`] already packs) into a 16 × 16 f32 tile, and
//! `tdpbusd` a 16 × 64 u8 tile by a 64 × 16 i8 one (in quads, as [`super::kernel_w8a8`]
//! packs) into 16 × 16 i32 sums. One call computes a block of up to 32 rows × the panel's
//! 32 channels with four accumulator tiles, two input tiles and two weight tiles, reading
//! the inputs (rows a whole depth block apart) and the panel (rows NR apart) where they lie.
//! Depths that are not a whole number of steps finish on the AVX-512 kernel of the
//! precision, which for w8a8 also applies the corrections and scales to the integer sums.
//! The results are those of the AVX-512 kernels up to the order of f32 sums (bf16: products
//! of two bf16 values are exact in f32) or exactly (w8a8: integer sums).
//!
//! Linux lends the tile registers to a process only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); [`amx_usable`] asks once. Rust
//! has no stable AMX intrinsics, so the instructions are inline assembly; the compiler
//! never allocates tile registers itself, so their contents persist between the blocks.
//!
//! [`Kernel::Amx`]: super::kernel::Kernel::Amx

#[cfg(target_arch = "x86_64")]
use super::kernel_bf16::{avx512_bf16_tile, PAIRS_PER_ROW};
#[cfg(target_arch = "x86_64")]
use super::kernel_w8a8::{avx512_vnni_tile, W8a8Tile, QUADS_PER_ROW};
#[cfg(target_arch = "x86_64")]
use super::packed_tiles::{Init, AVX512_MR, AVX512_NR};

/// Rows per AMX block: two input tiles of 16 rows.
pub(super) const AMX_MR: usize = 32;

/// Whether this CPU has AMX tiles with bf16 and int8 products and the operating system lets
/// this process use them (asked once per process).
pub(super) fn amx_usable() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *USABLE.get_or_init(|| cpu_has_amx() && request_tile_data())
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE, bit 25 AMX-INT8.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn cpu_has_amx() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // Leaf 7 means something only when the maximum leaf is ≥ 7.
    let (max_leaf, edx) = (__cpuid_count(0, 0).eax, __cpuid_count(7, 0).edx);
    let amx = (1 << 22) | (1 << 24) | (1 << 25);
    max_leaf >= 7 && edx & amx == amx
}

/// Asks Linux for the tile data state; false when the kernel refuses (too old, or AMX
/// disabled).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes this process's permissions.
    let status = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    status == 0
}

/// The tile configuration every block uses (palette 1): tmm0–3 accumulators of 16 × 16
/// sums, tmm4–5 input tiles of 16 rows × 16 pairs (quads), tmm6–7 weight tiles of 16 pair
/// (quad) rows × 16 channels; all 16 rows of 64 bytes.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

#[cfg(target_arch = "x86_64")]
const CONFIG: TileConfig = {
    let mut bytes = [0u8; 64];
    bytes[0] = 1;
    let mut t = 0;
    while t < 8 {
        bytes[16 + 2 * t] = 64;
        bytes[48 + t] = 16;
        t += 1;
    }
    TileConfig(bytes)
};

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// Whether this thread has loaded [`CONFIG`] (the tile configuration is per thread).
    static CONFIGURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Pairs or quads of depth per AMX step (one input tile's width in words).
#[cfg(target_arch = "x86_64")]
const STEP_WORDS: usize = 16;

/// A 32 × 32 block of sums (f32 or i32) for partial tiles, aligned for tile loads and stores.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct Scratch<T>([T; AMX_MR * AVX512_NR]);

/// Which product the steps run.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Product {
    /// `tdpbf16ps`: bf16 pairs into f32.
    Bf16,
    /// `tdpbusd`: u8 × i8 quads into i32.
    Int8,
}

/// One block of `rows` ≤ 32 rows × `cols` ≤ 32 channels over a depth block of kc values.
///
/// # Safety
/// [`amx_usable`] returned true; the CPU has AVX-512 F and BF16; `x` holds 32 rows of
/// [`PAIRS_PER_ROW`] pairs (⌈kc/2⌉ of each read), `w` ⌈kc/2⌉ × 32 pairs, and the `rows` ×
/// `cols` tile at `c` (row stride `ldc`) is writable and written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn amx_bf16_tile(
    rows: usize,
    x: *const u32,
    w: *const u32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    const NR: usize = AVX512_NR;
    let steps = kc / (2 * STEP_WORDS);
    let tail = kc - steps * 2 * STEP_WORDS;
    if steps > 0 {
        let whole = rows == AMX_MR && cols == NR;
        // Left uninitialised: only the rows and columns copied in are read back.
        let mut scratch = std::mem::MaybeUninit::<Scratch<f32>>::uninit();
        // The sums' memory: the output itself for a whole block, else the scratch.
        let (acc, stride) = if whole {
            (c, ldc)
        } else {
            (scratch.as_mut_ptr().cast::<f32>(), NR)
        };
        // SAFETY: the caller's contract; the scratch holds 32 rows of 32.
        unsafe {
            match init {
                Init::Bias(b) => load_sums(rows, b.as_ptr(), 0),
                Init::Accumulate => {
                    if !whole {
                        copy_block(rows, cols, c, ldc, acc, NR);
                    }
                    load_sums(rows, acc, stride);
                }
            }
            let words = Words {
                x,
                x_stride: PAIRS_PER_ROW,
                w,
            };
            dot_steps(Product::Bf16, rows, words, steps);
            store_sums(rows, acc, stride);
            if !whole {
                copy_block(rows, cols, acc, NR, c, ldc);
            }
        }
    }
    if tail > 0 {
        let done = steps * STEP_WORDS;
        let init = if steps > 0 { Init::Accumulate } else { init };
        for r0 in (0..rows).step_by(AVX512_MR) {
            // SAFETY: rows r0.. of the input tile and the output block, the pairs past the
            // AMX steps, within the caller's buffers (each holds ≥ 12 rows past r0 or the
            // block's last rows).
            unsafe {
                avx512_bf16_tile(
                    AVX512_MR.min(rows - r0),
                    x.add(r0 * PAIRS_PER_ROW + done),
                    w.add(done * NR),
                    tail,
                    c.add(r0 * ldc),
                    ldc,
                    cols,
                    init,
                );
            }
        }
    }
}

/// The w8a8 block of `rows` ≤ 32 rows × `cols` ≤ 32 channels over a depth block of kc
/// values: the integer sums of the whole steps on AMX tiles, the rest of the depth and the
/// scaling by the VNNI kernel.
///
/// # Safety
/// [`amx_usable`] returned true; the CPU has AVX-512 F and VNNI; `x` holds 32 rows of
/// [`QUADS_PER_ROW`] quads (⌈kc/4⌉ of each read), `t.w` ⌈kc/4⌉ × 32 quads, `t.row_scales`
/// `rows` scales, and the `rows` × `cols` tile at `c` (row stride `ldc`) is writable and
/// written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn amx_w8a8_tile(
    rows: usize,
    x: *const u32,
    t: W8a8Tile,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    const NR: usize = AVX512_NR;
    let steps = kc / (4 * STEP_WORDS);
    let done = steps * STEP_WORDS;
    // Every sum read back is stored first (the AMX steps store whole tiles of rows).
    let mut sums = std::mem::MaybeUninit::<Scratch<i32>>::uninit();
    let sums = sums.as_mut_ptr().cast::<i32>();
    if steps > 0 {
        let words = Words {
            x,
            x_stride: QUADS_PER_ROW,
            w: t.w,
        };
        // SAFETY: the caller's contract; the scratch holds 32 rows of 32.
        unsafe {
            zero_sums(rows);
            dot_steps(Product::Int8, rows, words, steps);
            store_sums(rows, sums, NR);
        }
    }
    for r0 in (0..rows).step_by(AVX512_MR) {
        let part = W8a8Tile {
            // SAFETY: the quads past the AMX steps, within the panel slice.
            w: unsafe { t.w.add(done * NR) },
            row_scales: &t.row_scales[r0..],
            ..t
        };
        // SAFETY: rows r0.. of the input tile, the sums and the output block, within the
        // caller's buffers and the scratch; the depth left is kc − 4·done values.
        unsafe {
            avx512_vnni_tile(
                AVX512_MR.min(rows - r0),
                x.add(r0 * QUADS_PER_ROW + done),
                part,
                kc - 4 * done,
                (steps > 0).then(|| sums.add(r0 * NR).cast_const()),
                c.add(r0 * ldc),
                ldc,
                cols,
                init,
            );
        }
    }
}

/// A block's inputs for [`dot_steps`]: 32 rows of words (`x_stride` apart) and the panel's
/// slice (rows of 32 words).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Words {
    x: *const u32,
    x_stride: usize,
    w: *const u32,
}

/// Loads this thread's tile configuration if it has not yet.
///
/// # Safety
/// [`amx_usable`] returned true.
#[cfg(target_arch = "x86_64")]
unsafe fn configure() {
    if !CONFIGURED.get() {
        // SAFETY: CONFIG is a valid palette-1 configuration; the caller checked AMX.
        unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack)) };
        CONFIGURED.set(true);
    }
}

/// Half a block: 16 rows or 16 channels.
#[cfg(target_arch = "x86_64")]
const HALF: usize = 16;

/// Loads the accumulator tiles from 32 × 32 sums at `p` (rows `stride` values apart; a
/// stride of 0 repeats the first row), the lower two only when `rows` > 16.
///
/// # Safety
/// [`amx_usable`] returned true; `p` holds the rows read.
#[cfg(target_arch = "x86_64")]
unsafe fn load_sums<T>(rows: usize, p: *const T, stride: usize) {
    use std::arch::asm;
    let bytes = stride * 4;
    // SAFETY: the caller's contract: 16 rows at `bytes` apart from each start; the
    // configuration is loaded first.
    unsafe {
        configure();
        asm!("tileloadd tmm0, [{p} + {s}*1]", p = in(reg) p, s = in(reg) bytes, options(nostack));
        asm!("tileloadd tmm1, [{p} + {s}*1]", p = in(reg) p.add(HALF), s = in(reg) bytes, options(nostack));
        if rows > HALF {
            let p = p.add(HALF * stride);
            asm!("tileloadd tmm2, [{p} + {s}*1]", p = in(reg) p, s = in(reg) bytes, options(nostack));
            asm!("tileloadd tmm3, [{p} + {s}*1]", p = in(reg) p.add(HALF), s = in(reg) bytes, options(nostack));
        }
    }
}

/// Zeroes the accumulator tiles.
///
/// # Safety
/// [`amx_usable`] returned true.
#[cfg(target_arch = "x86_64")]
unsafe fn zero_sums(rows: usize) {
    use std::arch::asm;
    // SAFETY: the caller checked AMX; the configuration is loaded first.
    unsafe {
        configure();
        asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
        if rows > HALF {
            asm!("tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        }
    }
}

/// Stores the accumulator tiles to 32 × 32 sums at `p` (rows `stride` values apart).
///
/// # Safety
/// The accumulators were loaded; `p` holds the rows written, written by no one else.
#[cfg(target_arch = "x86_64")]
unsafe fn store_sums<T>(rows: usize, p: *mut T, stride: usize) {
    use std::arch::asm;
    let bytes = stride * 4;
    // SAFETY: the caller's contract: 16 rows at `bytes` apart from each start.
    unsafe {
        asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) p, s = in(reg) bytes, options(nostack));
        asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) p.add(HALF), s = in(reg) bytes, options(nostack));
        if rows > HALF {
            let p = p.add(HALF * stride);
            asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) p, s = in(reg) bytes, options(nostack));
            asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) p.add(HALF), s = in(reg) bytes, options(nostack));
        }
    }
}

/// `steps` steps of 16 words of depth into the accumulator tiles: rows 0–15 into tmm0–1
/// and, when `rows` > 16, rows 16–31 into tmm2–3.
///
/// # Safety
/// The accumulators were loaded or zeroed; `words.x` holds 32 rows of `steps · 16` words
/// at its stride, `words.w` `steps · 16` rows of 32.
#[cfg(target_arch = "x86_64")]
unsafe fn dot_steps(product: Product, rows: usize, words: Words, steps: usize) {
    use std::arch::asm;
    const NR: usize = AVX512_NR;
    let (x_bytes, w_bytes) = (words.x_stride * 4, NR * 4);
    let lower = rows > HALF;
    // SAFETY: the caller's contract: each load reads 16 rows of 64 bytes inside the inputs.
    unsafe {
        configure();
        for s in 0..steps {
            let xs = words.x.add(s * STEP_WORDS);
            let ws = words.w.add(s * STEP_WORDS * NR);
            asm!("tileloadd tmm4, [{p} + {s}*1]", p = in(reg) xs, s = in(reg) x_bytes, options(nostack));
            asm!("tileloadd tmm6, [{p} + {s}*1]", p = in(reg) ws, s = in(reg) w_bytes, options(nostack));
            asm!("tileloadd tmm7, [{p} + {s}*1]", p = in(reg) ws.add(HALF), s = in(reg) w_bytes, options(nostack));
            if lower {
                let xl = xs.add(HALF * words.x_stride);
                asm!("tileloadd tmm5, [{p} + {s}*1]", p = in(reg) xl, s = in(reg) x_bytes, options(nostack));
            }
            match (product, lower) {
                (Product::Bf16, false) => asm!(
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    options(nostack, nomem)
                ),
                (Product::Bf16, true) => asm!(
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    options(nostack, nomem)
                ),
                (Product::Int8, false) => asm!(
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    options(nostack, nomem)
                ),
                (Product::Int8, true) => asm!(
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    options(nostack, nomem)
                ),
            }
        }
    }
}

/// Copies `rows` × `cols` values from `src` (row stride `src_stride`) to `dst`.
///
/// # Safety
/// Both blocks are inside their buffers and do not overlap.
#[cfg(target_arch = "x86_64")]
unsafe fn copy_block(
    rows: usize,
    cols: usize,
    src: *const f32,
    src_stride: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    for r in 0..rows {
        // SAFETY: the caller's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(src.add(r * src_stride), dst.add(r * dst_stride), cols)
        };
    }
}
