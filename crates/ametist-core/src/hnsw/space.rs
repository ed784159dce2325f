//! Distance "spaces": the metric's kernel as a zero-sized type, so the graph walk is
//! compiled once per kernel with the kernel inlined into it.

use super::codes::{self, CodeKernel};
use crate::distance::{scalar, Metric};

/// Internal distance between two vectors of `n` floats (lower is closer).
pub(crate) trait Space: Copy + Send + Sync {
    /// The kernels for 4-bit and 8-bit codes with the same metric and CPU features.
    type Codes: CodeKernel;
    type Codes8: CodeKernel;
    /// The Hamming kernel for binary codes with the same CPU features (the same for every
    /// metric: the metric only scales its result).
    type Bits: CodeKernel;

    fn codes(self) -> Self::Codes;
    fn codes8(self) -> Self::Codes8;
    fn bits(self) -> Self::Bits;

    /// # Safety
    /// `a` and `b` must be valid for `n` reads, and the CPU must have the space's features.
    unsafe fn dist(self, a: *const f32, b: *const f32, n: usize) -> f32;

    /// Like `dist`, but may stop early once the result is known to be `>= bound`; the
    /// result is exact whenever it is `< bound`.
    ///
    /// # Safety
    /// As for `dist`.
    #[inline(always)]
    unsafe fn dist_bounded(self, a: *const f32, b: *const f32, n: usize, bound: f32) -> f32 {
        let _ = bound;
        // SAFETY: same contract.
        unsafe { self.dist(a, b, n) }
    }
}

macro_rules! scalar_space {
    ($name:ident, $codes:ty, $codes8:ty, |$a:ident, $b:ident| $body:expr) => {
        #[derive(Clone, Copy)]
        pub(crate) struct $name;
        impl Space for $name {
            type Codes = $codes;
            type Codes8 = $codes8;
            type Bits = codes::scalar::Hamming;
            #[inline(always)]
            fn bits(self) -> codes::scalar::Hamming {
                codes::scalar::Hamming
            }
            #[inline(always)]
            fn codes(self) -> $codes {
                <$codes>::default()
            }
            #[inline(always)]
            fn codes8(self) -> $codes8 {
                <$codes8>::default()
            }
            #[inline(always)]
            unsafe fn dist(self, a: *const f32, b: *const f32, n: usize) -> f32 {
                // SAFETY: the caller guarantees both pointers are valid for `n` reads.
                let ($a, $b) = unsafe { (std::slice::from_raw_parts(a, n), std::slice::from_raw_parts(b, n)) };
                $body
            }
        }
    };
}

scalar_space!(ScalarL2, codes::scalar::L2, codes::scalar::L2x8, |a, b| scalar::l2_squared(a, b));
scalar_space!(ScalarDot, codes::scalar::Dot, codes::scalar::Dotx8, |a, b| -scalar::dot(a, b));
scalar_space!(ScalarL1, codes::scalar::L1, codes::scalar::L1x8, |a, b| scalar::l1(a, b));

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::codes::avx2 as codes;
    use super::Space;
    use crate::distance::avx2;

    macro_rules! avx_space {
        ($name:ident, $codes:ident, $codes8:ident, |$a:ident, $b:ident, $n:ident| $body:expr) => {
            /// Only constructed after `has_avx2_fma()` said yes.
            #[derive(Clone, Copy)]
            pub(crate) struct $name;
            impl Space for $name {
                type Codes = codes::$codes;
                type Codes8 = codes::$codes8;
                type Bits = codes::Hamming;
                #[inline(always)]
                fn bits(self) -> codes::Hamming {
                    codes::Hamming
                }
                #[inline(always)]
                fn codes(self) -> codes::$codes {
                    codes::$codes
                }
                #[inline(always)]
                fn codes8(self) -> codes::$codes8 {
                    codes::$codes8
                }
                #[inline(always)]
                unsafe fn dist(self, $a: *const f32, $b: *const f32, $n: usize) -> f32 {
                    // SAFETY: pointers valid per the caller; this type is only used once the
                    // CPU was found to support AVX2 and FMA.
                    unsafe { $body }
                }
            }
        };
    }
    /// Only constructed after `has_avx2_fma()` said yes.
    #[derive(Clone, Copy)]
    pub(crate) struct AvxL2;
    impl Space for AvxL2 {
        type Codes = codes::L2;
        type Codes8 = codes::L2x8;
        type Bits = codes::Hamming;
        #[inline(always)]
        fn bits(self) -> codes::Hamming {
            codes::Hamming
        }
        #[inline(always)]
        fn codes(self) -> codes::L2 {
            codes::L2
        }
        #[inline(always)]
        fn codes8(self) -> codes::L2x8 {
            codes::L2x8
        }
        #[inline(always)]
        unsafe fn dist(self, a: *const f32, b: *const f32, n: usize) -> f32 {
            // SAFETY: as in `avx_space!`.
            unsafe { avx2::l2_squared_ptr(a, b, n) }
        }
        #[inline(always)]
        unsafe fn dist_bounded(self, a: *const f32, b: *const f32, n: usize, bound: f32) -> f32 {
            // SAFETY: as in `avx_space!`.
            unsafe { avx2::l2_squared_bounded_ptr(a, b, n, bound) }
        }
    }
    avx_space!(AvxDot, Dot, Dotx8, |a, b, n| -avx2::dot_ptr(a, b, n));
    avx_space!(AvxL1, L1, L1x8, |a, b, n| avx2::l1_ptr(a, b, n));
}
#[cfg(target_arch = "x86_64")]
pub(crate) use x86::*;

/// Which kernel family to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

pub(crate) fn isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    if crate::distance::has_avx2_fma() {
        return Isa::Avx2;
    }
    Isa::Scalar
}

/// An operation that needs a distance kernel; `run` is compiled once per space. Its
/// implementations mark `run` `#[inline(always)]`, so that under [`dispatch`] the whole
/// operation is compiled with the CPU's features and the kernel is inlined into its loops.
pub(crate) trait Op {
    type Out;
    fn run<S: Space>(self, s: S) -> Self::Out;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx<O: Op, S: Space>(op: O, s: S) -> O::Out {
    op.run(s)
}

/// Runs `op` with the kernel for `metric` on this CPU.
pub(crate) fn dispatch<O: Op>(metric: Metric, op: O) -> O::Out {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` reported AVX2 and FMA.
        Isa::Avx2 => unsafe {
            match metric {
                Metric::Euclid => run_avx(op, AvxL2),
                Metric::Cosine | Metric::Dot => run_avx(op, AvxDot),
                Metric::Manhattan => run_avx(op, AvxL1),
            }
        },
        Isa::Scalar => match metric {
            Metric::Euclid => op.run(ScalarL2),
            Metric::Cosine | Metric::Dot => op.run(ScalarDot),
            Metric::Manhattan => op.run(ScalarL1),
        },
    }
}
