//! The text features shared by the built-in text models: hashed word uni- and
//! bi-grams looked up in one embedding table and averaged per input (an
//! embedding bag, fastText style).

use tch::{Device, Tensor};

use crate::config::TextModelConfig;
use crate::error::ModelError;
use crate::features::{ngram_ids, SplitMix64};

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

/// The mean embedding of each input's n-grams, `inputs × dim`. With `sparse`
/// the embedding's gradient is a sparse tensor of the rows used (Adam cannot
/// take those; the per-example Fisher can, and it is much cheaper).
pub(crate) fn mean_embedding(
    embedding: &Tensor,
    inputs: &[&str],
    config: &TextModelConfig,
    device: Device,
    sparse: bool,
) -> Result<Tensor, ModelError> {
    let mut ids = Vec::new();
    let mut offsets = Vec::with_capacity(inputs.len());
    for text in inputs {
        offsets.push(ids.len() as i64);
        ids.extend(ngram_ids(text, config.hash_buckets, config.max_tokens));
    }
    let ids = Tensor::f_from_slice(&ids)?.f_to_device(device)?;
    let offsets = Tensor::f_from_slice(&offsets)?.f_to_device(device)?;
    // Mode 1 is the mean of the bag.
    let (bag, _, _, _) = Tensor::f_embedding_bag(embedding, &ids, &offsets, false, 1, sparse, None::<Tensor>, false)?;
    Ok(bag)
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
