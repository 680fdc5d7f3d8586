//! Which CPU kernels run: chosen once per process from the CPU's features, or forced with the
//! `CLIPKIT_KERNEL` environment variable (`amx`, `avx512`, `avx2` or `portable`).
//!
//! One binary serves every x86-64 CPU (and other architectures): the hand-written kernels are
//! compiled with `#[target_feature]` and called only when [`Kernel::active`] says the CPU has
//! the features they need. [`Kernel::Portable`] uses no hand-written SIMD at all: matrix
//! products go through candle's matmul (the `gemm` crate, which picks its own kernels) and
//! element-wise loops are plain Rust, so it is correct on any CPU.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The environment variable that forces a kernel: `amx`, `avx512`, `avx2` or `portable`.
pub const KERNEL_ENV: &str = "CLIPKIT_KERNEL";

/// A family of CPU kernels for the inference GEMM and the fused element-wise operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// [`Kernel::Avx512`], with the bf16 matrix products on AMX tiles (Sapphire Rapids and
    /// later Xeons, on Linux).
    Amx,
    /// AVX-512 F/BW/VL: 512-bit registers, 32 of them.
    Avx512,
    /// AVX2 with FMA: 256-bit registers, 16 of them.
    Avx2,
    /// No hand-written SIMD: candle's matmul and plain loops; runs on any CPU.
    Portable,
}

/// `CLIPKIT_KERNEL` names no kernel, or one this CPU cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The value is not a kernel's name.
    #[error("{KERNEL_ENV}={0:?} is not a kernel: use amx, avx512, avx2 or portable")]
    Unknown(String),
    /// The CPU lacks a feature the kernel needs.
    #[error("{KERNEL_ENV}={0}: this CPU lacks {1}; use {2} (the best it supports) or portable")]
    Unsupported(Kernel, &'static str, Kernel),
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 4] = [Kernel::Amx, Kernel::Avx512, Kernel::Avx2, Kernel::Portable];

    /// The name `CLIPKIT_KERNEL` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx",
            Kernel::Avx512 => "avx512",
            Kernel::Avx2 => "avx2",
            Kernel::Portable => "portable",
        }
    }

    /// Whether this CPU can run the kernel. [`Kernel::Portable`] always can.
    pub fn is_supported(self) -> bool {
        self.missing_feature().is_none()
    }

    /// The first CPU feature the kernel needs that this CPU lacks.
    fn missing_feature(self) -> Option<&'static str> {
        #[cfg(target_arch = "x86_64")]
        {
            let needs: &[&'static str] = match self {
                Kernel::Amx => &[
                    "avx512f",
                    "avx512bw",
                    "avx512vl",
                    "avx2",
                    "fma",
                    "avx512bf16",
                    "amx-bf16",
                ],
                Kernel::Avx512 => &["avx512f", "avx512bw", "avx512vl", "avx2", "fma"],
                Kernel::Avx2 => &["avx2", "fma"],
                Kernel::Portable => &[],
            };
            needs.iter().copied().find(|f| !has_feature(f))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            match self {
                Kernel::Portable => None,
                _ => Some("x86-64"),
            }
        }
    }

    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        Kernel::ALL
            .into_iter()
            .find(|k| k.is_supported())
            .unwrap_or(Kernel::Portable)
    }

    /// The kernel `CLIPKIT_KERNEL` asks for, or [`Kernel::detect`]'s when it is unset or
    /// empty; an unknown name or a kernel this CPU cannot run is an error.
    pub fn from_env() -> Result<Kernel, KernelError> {
        match std::env::var(KERNEL_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let kernel: Kernel = v.parse()?;
                match kernel.missing_feature() {
                    None => Ok(kernel),
                    Some(f) => Err(KernelError::Unsupported(kernel, f, Kernel::detect())),
                }
            }
            _ => Ok(Kernel::detect()),
        }
    }

    /// The kernel this process uses, decided on first call from [`Kernel::from_env`]. When
    /// that is an error, the detected kernel is used and a warning logged (programs that
    /// want to refuse call [`Kernel::from_env`] themselves at start-up).
    pub fn active() -> Kernel {
        static ACTIVE: OnceLock<Kernel> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let kernel = Kernel::from_env().unwrap_or_else(|e| {
                tracing::warn!("{e}; using {}", Kernel::detect());
                Kernel::detect()
            });
            tracing::info!(
                "CPU kernels: {kernel} (CPU features: {})",
                cpu_features().join(" ")
            );
            kernel
        })
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kernel {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Kernel::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| KernelError::Unknown(s.to_string()))
    }
}

/// The SIMD features of this CPU that clipkit's kernels can use (for reports and logs).
pub fn cpu_features() -> Vec<&'static str> {
    const KNOWN: [&str; 8] = [
        "avx2",
        "fma",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512vnni",
        "avx512bf16",
        "amx-bf16",
    ];
    KNOWN.into_iter().filter(|f| has_feature(f)).collect()
}

#[cfg(target_arch = "x86_64")]
pub(super) fn has_feature(feature: &str) -> bool {
    match feature {
        "avx2" => is_x86_feature_detected!("avx2"),
        "fma" => is_x86_feature_detected!("fma"),
        "avx512f" => is_x86_feature_detected!("avx512f"),
        "avx512bw" => is_x86_feature_detected!("avx512bw"),
        "avx512vl" => is_x86_feature_detected!("avx512vl"),
        "avx512vnni" => is_x86_feature_detected!("avx512vnni"),
        "avx512bf16" => is_x86_feature_detected!("avx512bf16"),
        // Needs the operating system's leave too, which CPUID alone does not tell.
        "amx-bf16" => super::kernel_amx::amx_usable(),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn has_feature(_: &str) -> bool {
    false
}

/// Defines a function that runs `$body`, an `#[inline(always)]` function of the same
/// arguments, compiled for the active [`Kernel`]: once with AVX-512 F, once with AVX2 + FMA,
/// once for the baseline target. Loops written to vectorise then use the widest registers
/// the CPU has, in one binary, without a build flag.
macro_rules! compiled_per_kernel {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }
            match $crate::model::Kernel::active() {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the active kernel is one this CPU supports: it has AVX-512 F.
                $crate::model::Kernel::Amx | $crate::model::Kernel::Avx512 => unsafe {
                    avx512($($arg),*)
                },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the active kernel is one this CPU supports: it has AVX2 and FMA.
                $crate::model::Kernel::Avx2 => unsafe { avx2($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    };
}
pub(crate) use compiled_per_kernel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_are_refused() {
        for k in Kernel::ALL {
            assert_eq!(k.name().parse::<Kernel>(), Ok(k));
        }
        assert_eq!(" AVX2 ".parse::<Kernel>(), Ok(Kernel::Avx2));
        assert_eq!(
            "sse9".parse::<Kernel>(),
            Err(KernelError::Unknown("sse9".into()))
        );
    }

    #[test]
    fn detection_picks_a_supported_kernel_and_portable_always_runs() {
        assert!(Kernel::Portable.is_supported());
        assert!(Kernel::detect().is_supported());
        // The order is strict: AMX comes with AVX-512, and a CPU with AVX-512 F/BW/VL
        // also has AVX2 and FMA.
        if Kernel::Amx.is_supported() {
            assert_eq!(Kernel::detect(), Kernel::Amx);
            assert!(Kernel::Avx512.is_supported());
        } else if Kernel::Avx512.is_supported() {
            assert_eq!(Kernel::detect(), Kernel::Avx512);
            assert!(Kernel::Avx2.is_supported());
        }
    }
}
