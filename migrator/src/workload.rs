//! The CPU work of `omwork spin` and the line it prints: a fixed number of steps of a 64-bit
//! LCG, so the result is the same wherever and however often the job moved. `omctl stress`
//! checks it with [`spin_checksum`], which gets the same value in microseconds.

/// Steps in one unit of work: about 0.1 s of one native CPU (release build; a step is one
/// dependent multiply-add, ~4 cycles). TCG guests take 10 to 30 times as long.
pub const STEPS_PER_UNIT: u64 = 75_000_000;

/// Knuth's MMIX LCG multiplier and increment.
const A: u64 = 6_364_136_223_846_793_005;
const C: u64 = 1_442_695_040_888_963_407;
/// The state before the first step ("omwork" in ASCII).
const SEED: u64 = 0x6f6d_776f_726b;
/// Steps between two `black_box`es of the state, which keep the loop a chain of real steps.
const BATCH: u64 = 1 << 16;

/// Does `units` units of CPU work and returns their checksum (the LCG state after them).
pub fn spin(units: u64) -> u64 {
    steps(SEED, units.saturating_mul(STEPS_PER_UNIT))
}

/// What [`spin`] returns for `units`, by jumping ahead (O(log steps), no real work).
pub fn spin_checksum(units: u64) -> u64 {
    jump(SEED, units.saturating_mul(STEPS_PER_UNIT))
}

/// The line `omwork spin` prints when it is done, and `omctl stress` expects.
pub fn spin_result(units: u64, checksum: u64) -> String {
    format!("result ok spin units={units} x={checksum:016x}")
}

/// `n` LCG steps from `x`, one by one. The constants go through `black_box`: known at compile
/// time, they let the optimiser fold eight unrolled steps into one multiply-add by A⁸, doing an
/// eighth of the work.
fn steps(mut x: u64, n: u64) -> u64 {
    let (a, c) = std::hint::black_box((A, C));
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        for _ in 0..k {
            x = x.wrapping_mul(a).wrapping_add(c);
        }
        x = std::hint::black_box(x);
        left -= k;
    }
    x
}

/// `n` LCG steps from `x` at once: the step is the affine map x ↦ A·x + C, and its n-th power
/// is found by squaring (powers of one map commute, so the order of composition is free).
fn jump(x: u64, mut n: u64) -> u64 {
    let (mut a, mut c) = (A, C);
    let (mut ra, mut rc) = (1u64, 0u64);
    while n > 0 {
        if n & 1 == 1 {
            ra = a.wrapping_mul(ra);
            rc = a.wrapping_mul(rc).wrapping_add(c);
        }
        c = a.wrapping_mul(c).wrapping_add(c);
        a = a.wrapping_mul(a);
        n >>= 1;
    }
    ra.wrapping_mul(x).wrapping_add(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumping_ahead_matches_stepping() {
        for n in [
            0,
            1,
            2,
            3,
            7,
            64,
            1000,
            BATCH - 1,
            BATCH,
            BATCH + 1,
            3 * BATCH + 5,
        ] {
            assert_eq!(jump(SEED, n), steps(SEED, n), "{n} steps");
        }
        assert_eq!(jump(12345, 99_999), steps(12345, 99_999));
    }

    #[test]
    fn no_work_is_the_seed_and_lines_are_fixed() {
        assert_eq!(spin(0), SEED);
        assert_eq!(spin_checksum(0), SEED);
        assert_eq!(
            spin_result(3, 0xab),
            "result ok spin units=3 x=00000000000000ab"
        );
        // Different lengths give different checksums.
        assert_ne!(spin_checksum(1), spin_checksum(2));
    }
}
