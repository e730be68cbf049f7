//! Pieces shared by the built-in models: the random start of an embedding
//! table (the token tagger's), and reading a variable from a checkpoint.

use tch::{Device, Tensor};

use crate::config::TextModelConfig;
use crate::error::ModelError;
use crate::features::SplitMix64;

/// A `buckets × dim` embedding drawn uniformly from ±1/dim by a generator
/// seeded with `seed` (fastText's initialisation), on the CPU.
pub(crate) fn initial_embedding(config: &TextModelConfig, seed: u64) -> Result<Tensor, ModelError> {
    let dim = config.embedding_dim;
    let mut rng = SplitMix64::new(seed);
    let scale = 1.0 / dim as f32;
    let init: Vec<f32> = (0..config.hash_buckets * dim)
        .map(|_| (rng.next_f32() * 2.0 - 1.0) * scale)
        .collect();
    Ok(Tensor::f_from_slice(&init)?.f_reshape([config.hash_buckets as i64, dim as i64])?)
}

/// A checkpoint's variable `name`, moved to `device`; an error naming it when
/// the checkpoint lacks it.
pub(crate) fn saved_param(
    params: &std::collections::BTreeMap<String, Tensor>,
    name: &str,
    device: Device,
) -> Result<Tensor, ModelError> {
    let saved = params
        .get(name)
        .ok_or_else(|| ModelError::NotSupported(format!("the checkpoint has no variable {name}")))?;
    Ok(saved.f_to_device(device)?)
}
