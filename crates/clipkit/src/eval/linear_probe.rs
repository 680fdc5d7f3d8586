//! Linear probe: multinomial logistic (softmax) regression with L2 regularisation, fitted
//! on frozen image embeddings by full-batch Nesterov-accelerated gradient descent.
//!
//! Legend: N = examples, D = embedding dims (+1 for the bias column), C = classes.
//!
//! Features are centred on the training mean, and a constant column carries the bias.
//! The loss is mean cross-entropy + (λ/2)·‖W‖² (the bias is regularised too; with
//! centred features its effect is negligible). The step is 1/L with L = ½·λmax(XᵀX/N) + λ,
//! the loss's smoothness constant (λmax by power iteration), so every step descends.

use candle_core::{DType, Device, Tensor, D};

use super::metrics;
use crate::error::{Error, Result};

/// How a probe is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    /// L2 strength λ (default 1e-4).
    pub l2: f64,
    /// Gradient steps (default 1000).
    pub iterations: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            l2: 1e-4,
            iterations: 1000,
        }
    }
}

/// A fitted linear classifier over embeddings.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    /// (D) training mean subtracted from every input.
    mean: Tensor,
    /// (D+1, C), the last row is the bias.
    weight: Tensor,
}

impl LinearProbe {
    /// Fits `classes` classes to `features` (N, D) with `labels` (N) below `classes`.
    pub fn fit(
        features: &Tensor,
        labels: &[usize],
        classes: usize,
        config: &ProbeConfig,
    ) -> Result<Self> {
        let (n, _) = features.dims2()?;
        if n == 0 || n != labels.len() {
            return Err(Error::InvalidArgument(format!(
                "linear probe: {n} feature rows for {} labels",
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::InvalidArgument(format!(
                "linear probe: label {bad} is not below the {classes} classes"
            )));
        }
        let features = features.to_dtype(DType::F32)?;
        let mean = features.mean(0)?; // (D)
        let x = with_bias_column(&features.broadcast_sub(&mean)?)?; // (N, D+1)
        let y = one_hot(labels, classes)?; // (N, C)
        let step = 1.0 / (0.5 * largest_eigenvalue(&x)? + config.l2);
        let zeros = Tensor::zeros((x.dim(1)?, classes), DType::F32, &Device::Cpu)?;
        let (mut w, mut look) = (zeros.clone(), zeros);
        for k in 0..config.iterations {
            let next = (&look - (gradient(&x, &y, &look, config.l2)? * step)?)?;
            let momentum = k as f64 / (k as f64 + 3.0);
            look = (&next + ((&next - &w)? * momentum)?)?;
            w = next;
        }
        Ok(LinearProbe { mean, weight: w })
    }

    /// Class scores (N, C) of `features` (N, D).
    pub fn logits(&self, features: &Tensor) -> Result<Tensor> {
        let x = with_bias_column(&features.to_dtype(DType::F32)?.broadcast_sub(&self.mean)?)?;
        Ok(x.matmul(&self.weight)?)
    }

    /// The most likely class of each row of `features`.
    pub fn predict(&self, features: &Tensor) -> Result<Vec<usize>> {
        Ok(metrics::argmax(&metrics::rows(&self.logits(features)?)?))
    }

    /// The fraction of rows of `features` whose predicted class is `labels`'.
    pub fn accuracy(&self, features: &Tensor, labels: &[usize]) -> Result<f64> {
        Ok(metrics::accuracy(&self.predict(features)?, labels))
    }
}

/// ∇ of mean cross-entropy + (λ/2)‖W‖²: Xᵀ(softmax(XW) − Y)/N + λW, (D+1, C).
fn gradient(x: &Tensor, y: &Tensor, w: &Tensor, l2: f64) -> Result<Tensor> {
    let n = x.dim(0)? as f64;
    let probs = candle_nn::ops::softmax(&x.matmul(w)?, D::Minus1)?; // (N, C)
    let grad = (x.t()?.matmul(&(probs - y)?)? / n)?;
    Ok((grad + (w * l2)?)?)
}

/// (N, D) → (N, D+1) with a last column of ones.
fn with_bias_column(x: &Tensor) -> Result<Tensor> {
    let ones = Tensor::ones((x.dim(0)?, 1), DType::F32, x.device())?;
    Ok(Tensor::cat(&[x, &ones], 1)?)
}

fn one_hot(labels: &[usize], classes: usize) -> Result<Tensor> {
    let mut data = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        data[i * classes + l] = 1.0;
    }
    Ok(Tensor::from_vec(
        data,
        (labels.len(), classes),
        &Device::Cpu,
    )?)
}

/// λmax(XᵀX/N) by power iteration, rounded up by 10 % to stay a safe bound.
fn largest_eigenvalue(x: &Tensor) -> Result<f64> {
    let n = x.dim(0)? as f64;
    let gram = (x.t()?.matmul(x)? / n)?; // (D+1, D+1)
    let mut v = Tensor::ones((gram.dim(0)?, 1), DType::F32, &Device::Cpu)?;
    let mut value = 0.0;
    for _ in 0..50 {
        let next = gram.matmul(&v)?;
        let norm = f64::from(next.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?);
        if norm == 0.0 {
            break;
        }
        value = norm;
        v = (next / norm)?;
    }
    Ok(value.max(1e-6) * 1.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Three well-separated Gaussian blobs in 8 dims (unit-normalised, like embeddings).
    fn blobs(n_per_class: usize, seed: u64) -> (Tensor, Vec<usize>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for class in 0..3 {
            for _ in 0..n_per_class {
                let mut row: Vec<f32> = (0..8).map(|_| rng.random_range(-0.3..0.3)).collect();
                row[class] += 1.0;
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                data.extend(row.iter().map(|v| v / norm));
                labels.push(class);
            }
        }
        let rows = labels.len();
        (
            Tensor::from_vec(data, (rows, 8), &Device::Cpu).unwrap(),
            labels,
        )
    }

    #[test]
    fn separable_classes_are_learned() {
        let (train, train_labels) = blobs(60, 1);
        let (test, test_labels) = blobs(40, 2);
        let probe = LinearProbe::fit(&train, &train_labels, 3, &ProbeConfig::default()).unwrap();
        assert!(probe.accuracy(&train, &train_labels).unwrap() >= 0.99);
        assert!(probe.accuracy(&test, &test_labels).unwrap() >= 0.95);
    }

    #[test]
    fn bad_labels_are_refused() {
        let (x, mut labels) = blobs(2, 1);
        labels[0] = 7;
        assert!(LinearProbe::fit(&x, &labels, 3, &ProbeConfig::default()).is_err());
        assert!(LinearProbe::fit(&x, &labels[1..], 8, &ProbeConfig::default()).is_err());
    }
}
