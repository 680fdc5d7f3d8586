//! AdamW (decoupled weight decay) with per-variable decay, gradient clipping by global norm,
//! and a state that can be saved and restored to resume a run exactly.
//!
//! It updates any set of named candle variables: a model's parameters (see
//! [`Parameters::trainable`](super::Parameters::trainable)) or free variables, such as an
//! image being optimised.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

/// AdamW's hyper-parameters (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Decay of the first-moment estimate.
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay, applied to the variables marked [`TrainableVar::decays`]
    /// (for a model: matrices only, see [`decays`](super::decays)).
    pub weight_decay: f64,
    /// Gradients are scaled down so their global L2 norm is at most this; `None` disables.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    /// The CLIP paper's choices: β = (0.9, 0.98), ε = 1e-6, decay 0.2; clipping at norm 1.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-6,
            weight_decay: 0.2,
            max_grad_norm: Some(1.0),
        }
    }
}

/// One variable for the optimiser to update.
#[derive(Debug, Clone)]
pub struct TrainableVar {
    /// Unique name: the key of its moments in [`AdamW::state`].
    pub name: String,
    /// The variable, updated in place by [`AdamW::step`].
    pub var: Var,
    /// Whether decoupled weight decay applies to it.
    pub decays: bool,
}

struct Slot {
    name: String,
    var: Var,
    decays: bool,
    /// First and second moment estimates, flattened.
    m: Vec<f32>,
    v: Vec<f32>,
}

/// The optimiser and its moment estimates for every parameter.
pub struct AdamW {
    slots: Vec<Slot>,
    config: AdamWConfig,
    steps_taken: u64,
}

/// What one optimiser step saw.
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
}

impl AdamW {
    /// An optimiser over `vars`, updated in the order given, with zeroed moments; an error
    /// when two share a name.
    pub fn new(vars: Vec<TrainableVar>, config: AdamWConfig) -> Result<Self> {
        let mut names = std::collections::HashSet::new();
        if let Some(twice) = vars.iter().find(|t| !names.insert(t.name.as_str())) {
            candle_core::bail!("two optimiser variables are named {}", twice.name);
        }
        let slots = vars
            .into_iter()
            .map(|t| Slot {
                m: vec![0.0; t.var.elem_count()],
                v: vec![0.0; t.var.elem_count()],
                name: t.name,
                var: t.var,
                decays: t.decays,
            })
            .collect();
        Ok(AdamW {
            slots,
            config,
            steps_taken: 0,
        })
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.steps_taken
    }

    /// Applies one update with learning rate `lr` from the gradients of a backward pass.
    /// Parameters without a gradient (unused in the graph) are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<StepReport> {
        let mut flat: Vec<Option<Vec<f32>>> = Vec::with_capacity(self.slots.len());
        let mut square_sum = 0f64;
        for slot in &self.slots {
            let grad = match grads.get(slot.var.as_tensor()) {
                Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
                None => {
                    flat.push(None);
                    continue;
                }
            };
            square_sum += grad
                .iter()
                .map(|&g| f64::from(g) * f64::from(g))
                .sum::<f64>();
            flat.push(Some(grad));
        }
        let grad_norm = square_sum.sqrt();
        // torch.nn.utils.clip_grad_norm_: scale by max/(norm + 1e-6) when that is below one.
        let clip = match self.config.max_grad_norm {
            Some(max) => (max / (grad_norm + 1e-6)).min(1.0),
            None => 1.0,
        } as f32;
        self.steps_taken += 1;
        let t = self.steps_taken as i32;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2_root = (1.0 - c.beta2.powi(t)).sqrt();
        let step_size = (lr / bias1) as f32;
        let (beta1, beta2, eps) = (c.beta1 as f32, c.beta2 as f32, c.eps as f32);
        for (slot, grad) in self.slots.iter_mut().zip(flat) {
            let Some(grad) = grad else { continue };
            let mut values = slot.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let shrink = if slot.decays {
                (1.0 - lr * c.weight_decay) as f32
            } else {
                1.0
            };
            for (((p, g), m), v) in values
                .iter_mut()
                .zip(grad)
                .zip(slot.m.iter_mut())
                .zip(slot.v.iter_mut())
            {
                let g = g * clip;
                *m = beta1 * *m + (1.0 - beta1) * g;
                *v = beta2 * *v + (1.0 - beta2) * g * g;
                let denom = v.sqrt() / bias2_root as f32 + eps;
                *p = *p * shrink - step_size * *m / denom;
            }
            slot.var
                .set(&Tensor::from_vec(values, slot.var.shape(), &Device::Cpu)?)?;
        }
        Ok(StepReport { grad_norm })
    }

    /// The moments as named tensors (`m.<name>`, `v.<name>`) and the step count, to save.
    pub fn state(&self) -> Result<(HashMap<String, Tensor>, u64)> {
        let mut tensors = HashMap::new();
        for slot in &self.slots {
            let shape = slot.var.shape();
            tensors.insert(
                format!("m.{}", slot.name),
                Tensor::from_slice(&slot.m, shape, &Device::Cpu)?,
            );
            tensors.insert(
                format!("v.{}", slot.name),
                Tensor::from_slice(&slot.v, shape, &Device::Cpu)?,
            );
        }
        Ok((tensors, self.steps_taken))
    }

    /// Restores moments and step count saved by [`AdamW::state`].
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, steps_taken: u64) -> Result<()> {
        for slot in &mut self.slots {
            for (prefix, moment) in [("m", &mut slot.m), ("v", &mut slot.v)] {
                let key = format!("{prefix}.{}", slot.name);
                let saved = tensors.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimizer state lacks {key}"))
                })?;
                let values = saved.flatten_all()?.to_vec1::<f32>()?;
                if values.len() != moment.len() {
                    candle_core::bail!(
                        "optimizer state {key} has {} values, the parameter {}",
                        values.len(),
                        moment.len()
                    );
                }
                *moment = values;
            }
        }
        self.steps_taken = steps_taken;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(name: &str, values: &[f32]) -> TrainableVar {
        TrainableVar {
            name: name.into(),
            var: Var::from_slice(values, values.len(), &Device::Cpu).unwrap(),
            decays: false,
        }
    }

    /// A variable that belongs to no model, minimising ||x - target||², reaches the target.
    #[test]
    fn optimises_a_free_variable_to_its_target() {
        let target = Tensor::new(&[0.5f32, -1.5, 2.0, 0.0], &Device::Cpu).unwrap();
        let x = free("x", &[3.0, 3.0, -3.0, 1.0]);
        let var = x.var.clone();
        let config = AdamWConfig {
            weight_decay: 0.0,
            max_grad_norm: None,
            ..AdamWConfig::default()
        };
        let mut optimizer = AdamW::new(vec![x], config).unwrap();
        for _ in 0..500 {
            let loss = (var.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            optimizer.step(&loss.backward().unwrap(), 0.05).unwrap();
        }
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        let want = target.to_vec1::<f32>().unwrap();
        for (g, w) in got.iter().zip(&want) {
            // Written so that a NaN fails.
            assert!((g - w).abs() <= 1e-3, "got {got:?}, want {want:?}");
        }
        assert_eq!(optimizer.steps_taken(), 500);
    }

    #[test]
    fn refuses_two_variables_of_one_name() {
        let err = AdamW::new(
            vec![free("x", &[1.0]), free("x", &[2.0])],
            AdamWConfig::default(),
        )
        .err()
        .expect("duplicate names are refused");
        assert!(err.to_string().contains("named x"), "{err}");
    }
}
