//! Distinct values counted with HyperLogLog: 1,024 one-byte registers, about 3% standard
//! error, whatever the number of values. Lock-free: a value is added with one atomic
//! `fetch_max`. Written here rather than taken from a crate: the HLL crates keep their
//! registers behind `&mut self`, and a lock on every flood request is what the shield must
//! not take (measured in `witness::tests::cost`: docs/architecture.md).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

const BITS: u32 = 10;
const REGISTERS: usize = 1 << BITS;

/// A HyperLogLog sketch of distinct values.
#[derive(Debug)]
pub(crate) struct Distinct {
    registers: [AtomicU8; REGISTERS],
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct { registers: std::array::from_fn(|_| AtomicU8::new(0)) }
    }
}

impl Distinct {
    pub(crate) fn add(&self, value: impl Hash) {
        let mut h = std::hash::DefaultHasher::new();
        value.hash(&mut h);
        let x = h.finish();
        let index = (x >> (64 - BITS)) as usize;
        // The position of the first 1 in the remaining bits (a guard bit bounds it).
        let rank = ((x << BITS) | (1 << (BITS - 1))).leading_zeros() as u8 + 1;
        self.registers[index].fetch_max(rank, Relaxed);
    }

    pub(crate) fn estimate(&self) -> u64 {
        self.estimate_with(None)
    }

    /// The distinct values of `self` and `other` together.
    pub(crate) fn estimate_union(&self, other: &Distinct) -> u64 {
        self.estimate_with(Some(other))
    }

    fn estimate_with(&self, other: Option<&Distinct>) -> u64 {
        let m = REGISTERS as f64;
        let (mut sum, mut zeros) = (0.0, 0u32);
        for (i, r) in self.registers.iter().enumerate() {
            let v = r.load(Relaxed).max(other.map_or(0, |o| o.registers[i].load(Relaxed)));
            sum += (-f64::from(v)).exp2();
            zeros += u32::from(v == 0);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let e = if raw <= 2.5 * m && zeros > 0 { m * (m / f64::from(zeros)).ln() } else { raw };
        e.round() as u64
    }

    pub(crate) fn clear(&self) {
        for r in &self.registers {
            r.store(0, Relaxed);
        }
    }
}
