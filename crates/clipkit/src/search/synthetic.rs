//! Synthetic embeddings for benchmarks and tests: unit vectors gathered around random
//! centres, as real image embeddings gather around what they show. Deterministic per seed.
//!
//! A vector is `centre + noise` normalised, the noise having the same expected norm as the
//! centre, so a vector's cosine with its centre is about 0.7 and with another cluster's
//! vector about 0: uniform random vectors would make every neighbour equally far.

/// A deterministic generator of clustered unit vectors.
pub struct Clustered {
    dim: usize,
    centres: Vec<f32>,
    state: u64,
}

impl Clustered {
    /// `clusters` random centres in `dim` dimensions, drawn from `seed`.
    pub fn new(dim: usize, clusters: usize, seed: u64) -> Self {
        let mut gen = Clustered {
            dim,
            centres: Vec::new(),
            state: seed,
        };
        let mut centres = Vec::with_capacity(dim * clusters);
        for _ in 0..clusters.max(1) {
            let mut c: Vec<f32> = (0..dim).map(|_| gen.gaussian()).collect();
            normalise(&mut c);
            centres.extend(c);
        }
        gen.centres = centres;
        gen
    }

    /// The next vector (unit length).
    pub fn next_vector(&mut self) -> Vec<f32> {
        let clusters = self.centres.len() / self.dim.max(1);
        let c = (self.next_u64() % clusters as u64) as usize;
        let scale = 1.0 / (self.dim as f32).sqrt();
        let mut v: Vec<f32> = (0..self.dim)
            .map(|i| self.centres[c * self.dim + i] + self.gaussian() * scale)
            .collect();
        normalise(&mut v);
        v
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn gaussian(&mut self) -> f32 {
        // Box–Muller.
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_length_and_reproducible() {
        let a = Clustered::new(16, 4, 7).next_vector();
        let b = Clustered::new(16, 4, 7).next_vector();
        assert_eq!(a, b);
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
