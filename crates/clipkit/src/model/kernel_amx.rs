//! AMX tiles for the bf16 products of [`super::packed::PackedWeight`] ([`Kernel::Amx`]).
//!
//! AMX (Sapphire Rapids and later Xeons) adds eight tile registers of up to 16 rows × 64
//! bytes and `tdpbf16ps`, which multiplies a 16 × 32 bf16 tile by a 32 × 16 one (in pairs
//! along the depth, the layout [`super::kernel_bf16`] already packs) into a 16 × 16 f32
//! tile: 8192 products per instruction. One call computes a block of up to 32 rows × the
//! panel's 32 channels with four accumulator tiles, two input tiles and two weight tiles,
//! reading the input pairs (row stride [`PAIRS_PER_ROW`]) and the panel (row stride NR)
//! where they lie. Depths that are not a multiple of 32 finish on the AVX-512 BF16 kernel.
//! Products of two bf16 values are exact in f32, as there.
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
use super::packed_tiles::{Init, AVX512_MR, AVX512_NR};

/// Rows per AMX block: two input tiles of 16 rows.
pub(super) const AMX_MR: usize = 32;

/// Whether this CPU has AMX tiles with bf16 products and the operating system lets this
/// process use them (asked once per process).
pub(super) fn amx_usable() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *USABLE.get_or_init(|| cpu_has_amx_bf16() && request_tile_data())
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn cpu_has_amx_bf16() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // Leaf 7 means something only when the maximum leaf is ≥ 7.
    let (max_leaf, edx) = (__cpuid_count(0, 0).eax, __cpuid_count(7, 0).edx);
    max_leaf >= 7 && edx & (1 << 22) != 0 && edx & (1 << 24) != 0
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
/// f32, tmm4–5 input tiles of 16 rows × 16 pairs, tmm6–7 weight tiles of 16 pair rows × 16
/// channels; all 16 rows of 64 bytes.
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

/// Pairs of depth per AMX step (one input tile's width).
#[cfg(target_arch = "x86_64")]
const STEP_PAIRS: usize = 16;

/// A 32 × 32 f32 block for partial tiles, aligned for tile loads and stores.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct Scratch([f32; AMX_MR * AVX512_NR]);

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
    let steps = kc / (2 * STEP_PAIRS);
    let tail = kc - steps * 2 * STEP_PAIRS;
    if steps > 0 {
        // SAFETY: the caller's contract.
        unsafe { amx_steps(rows, x, w, steps, c, ldc, cols, init) };
    }
    if tail > 0 {
        let done = steps * STEP_PAIRS;
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

/// `steps` AMX steps of 16 pairs into the block at `c`.
///
/// # Safety
/// As [`amx_bf16_tile`], with `w` holding `steps · 16` pair rows.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn amx_steps(
    rows: usize,
    x: *const u32,
    w: *const u32,
    steps: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    init: Init,
) {
    use std::arch::asm;
    const NR: usize = AVX512_NR;
    const HALF: usize = 16;
    if !CONFIGURED.get() {
        // SAFETY: CONFIG is a valid palette-1 configuration; the caller checked AMX.
        unsafe { asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack)) };
        CONFIGURED.set(true);
    }
    let lower = rows > HALF;
    let whole = rows == AMX_MR && cols == NR;
    let mut scratch = Scratch([0f32; AMX_MR * NR]);
    // The accumulators' memory: the output itself for a whole block, else the scratch.
    let (acc, acc_stride) = if whole {
        (c, ldc)
    } else {
        (scratch.0.as_mut_ptr(), NR)
    };
    let acc_bytes = acc_stride * 4;
    // SAFETY (every block below): tile loads and stores stay inside the caller's buffers
    // (16 rows at the stated strides) or the scratch; the tile registers belong to no one
    // else in this thread.
    unsafe {
        match init {
            Init::Bias(b) => {
                // A zero stride repeats the bias row down the tile.
                let b = b.as_ptr();
                asm!("tileloadd tmm0, [{p} + {s}*1]", p = in(reg) b, s = in(reg) 0usize, options(nostack));
                asm!("tileloadd tmm1, [{p} + {s}*1]", p = in(reg) b.add(HALF), s = in(reg) 0usize, options(nostack));
                if lower {
                    asm!("tileloadd tmm2, [{p} + {s}*1]", p = in(reg) b, s = in(reg) 0usize, options(nostack));
                    asm!("tileloadd tmm3, [{p} + {s}*1]", p = in(reg) b.add(HALF), s = in(reg) 0usize, options(nostack));
                }
            }
            Init::Accumulate => {
                if !whole {
                    for r in 0..rows {
                        std::ptr::copy_nonoverlapping(c.add(r * ldc), acc.add(r * NR), cols);
                    }
                }
                asm!("tileloadd tmm0, [{p} + {s}*1]", p = in(reg) acc, s = in(reg) acc_bytes, options(nostack));
                asm!("tileloadd tmm1, [{p} + {s}*1]", p = in(reg) acc.add(HALF), s = in(reg) acc_bytes, options(nostack));
                if lower {
                    let a = acc.add(HALF * acc_stride);
                    asm!("tileloadd tmm2, [{p} + {s}*1]", p = in(reg) a, s = in(reg) acc_bytes, options(nostack));
                    asm!("tileloadd tmm3, [{p} + {s}*1]", p = in(reg) a.add(HALF), s = in(reg) acc_bytes, options(nostack));
                }
            }
        }
        let (x_bytes, w_bytes) = (PAIRS_PER_ROW * 4, NR * 4);
        for s in 0..steps {
            let xs = x.add(s * STEP_PAIRS);
            let ws = w.add(s * STEP_PAIRS * NR);
            asm!("tileloadd tmm4, [{p} + {s}*1]", p = in(reg) xs, s = in(reg) x_bytes, options(nostack));
            asm!("tileloadd tmm6, [{p} + {s}*1]", p = in(reg) ws, s = in(reg) w_bytes, options(nostack));
            asm!("tileloadd tmm7, [{p} + {s}*1]", p = in(reg) ws.add(HALF), s = in(reg) w_bytes, options(nostack));
            asm!("tdpbf16ps tmm0, tmm4, tmm6", options(nostack));
            asm!("tdpbf16ps tmm1, tmm4, tmm7", options(nostack));
            if lower {
                let xl = xs.add(HALF * PAIRS_PER_ROW);
                asm!("tileloadd tmm5, [{p} + {s}*1]", p = in(reg) xl, s = in(reg) x_bytes, options(nostack));
                asm!("tdpbf16ps tmm2, tmm5, tmm6", options(nostack));
                asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack));
            }
        }
        asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) acc, s = in(reg) acc_bytes, options(nostack));
        asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) acc.add(HALF), s = in(reg) acc_bytes, options(nostack));
        if lower {
            let a = acc.add(HALF * acc_stride);
            asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) a, s = in(reg) acc_bytes, options(nostack));
            asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) a.add(HALF), s = in(reg) acc_bytes, options(nostack));
        }
        if !whole {
            for r in 0..rows {
                std::ptr::copy_nonoverlapping(acc.add(r * NR), c.add(r * ldc), cols);
            }
        }
    }
}
