//! The pretrained sentence encoder all-MiniLM-L6-v2 (BERT: 6 layers, hidden
//! 384, 12 heads), read from the folder `make data` fills (`model.safetensors`,
//! `tokenizer.json`, `config.json`): WordPiece through the `tokenizers` crate,
//! the BERT forward pass in `tch`, mean pooling over the real tokens and L2
//! normalisation, as sentence-transformers does. Frozen: it is a backbone for
//! trainable heads, never trained itself, so its weights live outside any
//! `VarStore` (neither the optimiser nor EWC sees them).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::base::ModelError;

/// The shape of the BERT network, from `config.json`.
#[derive(Debug, Clone, Deserialize)]
struct BertShape {
    hidden_size: i64,
    num_attention_heads: i64,
    num_hidden_layers: usize,
    layer_norm_eps: f64,
    max_position_embeddings: i64,
}

/// A frozen MiniLM (BERT) sentence encoder.
#[derive(Debug)]
pub struct MiniLm {
    weights: HashMap<String, Tensor>,
    shape: BertShape,
    tokenizer: Arc<tokenizers::Tokenizer>,
    device: Device,
}

fn load_error(dir: &Path, what: impl std::fmt::Display) -> ModelError {
    ModelError::ModelFiles(format!("MiniLM encoder in {}: {what}", dir.display()))
}

impl MiniLm {
    /// Reads the encoder from `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<MiniLm, ModelError> {
        let config = std::fs::read_to_string(dir.join("config.json")).map_err(|e| load_error(dir, e))?;
        let shape: BertShape = serde_json::from_str(&config).map_err(|e| load_error(dir, e))?;
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| load_error(dir, e))?;
        // Sentences of a batch are padded to the longest of them, not to 128.
        tokenizer.with_padding(Some(tokenizers::PaddingParams::default()));
        let weights = Tensor::read_safetensors(dir.join("model.safetensors"))?
            .into_iter()
            .map(|(name, t)| Ok((name, t.f_to_device(device)?)))
            .collect::<Result<HashMap<_, _>, ModelError>>()?;
        let encoder = MiniLm {
            weights,
            shape,
            tokenizer: Arc::new(tokenizer),
            device,
        };
        encoder.weight("embeddings.word_embeddings.weight")?;
        Ok(encoder)
    }

    /// Another handle on the same weights (no copy): each model owns its
    /// handles, and reading the weights from several threads is safe.
    pub fn shallow_copy(&self) -> MiniLm {
        MiniLm {
            weights: self
                .weights
                .iter()
                .map(|(k, t)| (k.clone(), t.shallow_clone()))
                .collect(),
            shape: self.shape.clone(),
            tokenizer: Arc::clone(&self.tokenizer),
            device: self.device,
        }
    }

    /// Where its weights are.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The size of a sentence vector.
    pub fn dim(&self) -> i64 {
        self.shape.hidden_size
    }

    fn weight(&self, name: &str) -> Result<&Tensor, ModelError> {
        self.weights
            .get(name)
            .ok_or_else(|| ModelError::ModelFiles(format!("MiniLM weights have no {name}")))
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor, ModelError> {
        let w = self.weight(&format!("{name}.weight"))?;
        let b = self.weight(&format!("{name}.bias"))?;
        Ok(x.f_matmul(&w.f_tr()?)?.f_add(b)?)
    }

    fn layer_norm(&self, x: &Tensor, name: &str) -> Result<Tensor, ModelError> {
        let w = self.weight(&format!("{name}.weight"))?;
        let b = self.weight(&format!("{name}.bias"))?;
        Ok(x.f_layer_norm(
            [self.shape.hidden_size],
            Some(w),
            Some(b),
            self.shape.layer_norm_eps,
            false,
        )?)
    }

    /// One unit-length vector per sentence, `sentences × 384`, computed
    /// without gradients.
    pub fn embed(&self, sentences: &[&str]) -> Result<Tensor, ModelError> {
        if sentences.is_empty() {
            return Ok(Tensor::f_zeros([0, self.dim()], (Kind::Float, self.device))?);
        }
        crate::grad::no_grad(|| self.forward(sentences))
    }

    fn forward(&self, sentences: &[&str]) -> Result<Tensor, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(sentences.to_vec(), true)
            .map_err(|e| ModelError::ModelFiles(format!("tokenizing for MiniLM: {e}")))?;
        let batch = encodings.len() as i64;
        let length = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0) as i64;
        let length = length.min(self.shape.max_position_embeddings);
        let mut ids = Vec::with_capacity((batch * length) as usize);
        let mut mask = Vec::with_capacity((batch * length) as usize);
        for e in &encodings {
            ids.extend(e.get_ids().iter().take(length as usize).map(|&i| i64::from(i)));
            mask.extend(e.get_attention_mask().iter().take(length as usize).map(|&m| m as f32));
        }
        let ids = Tensor::f_from_slice(&ids)?
            .f_reshape([batch, length])?
            .f_to_device(self.device)?;
        let mask = Tensor::f_from_slice(&mask)?
            .f_reshape([batch, length])?
            .f_to_device(self.device)?;

        let positions = Tensor::f_arange(length, (Kind::Int64, self.device))?;
        let word = self
            .weight("embeddings.word_embeddings.weight")?
            .f_index_select(0, &ids.f_reshape([-1])?)?;
        let position = self
            .weight("embeddings.position_embeddings.weight")?
            .f_index_select(0, &positions)?;
        let token_type = self.weight("embeddings.token_type_embeddings.weight")?.f_get(0)?;
        let hidden = self.shape.hidden_size;
        let x = word
            .f_reshape([batch, length, hidden])?
            .f_add(&position)?
            .f_add(&token_type)?;
        let mut x = self.layer_norm(&x, "embeddings.LayerNorm")?;

        let heads = self.shape.num_attention_heads;
        let head_dim = hidden / heads;
        // Padding gets a large negative score, so no attention goes to it.
        let bias = mask
            .f_neg()?
            .f_add_scalar(1.0)?
            .f_mul_scalar(-1e9)?
            .f_reshape([batch, 1, 1, length])?;
        let split = |t: Tensor| -> Result<Tensor, ModelError> {
            Ok(t.f_reshape([batch, length, heads, head_dim])?.f_transpose(1, 2)?)
        };
        for layer in 0..self.shape.num_hidden_layers {
            let p = format!("encoder.layer.{layer}");
            let q = split(self.linear(&x, &format!("{p}.attention.self.query"))?)?;
            let k = split(self.linear(&x, &format!("{p}.attention.self.key"))?)?;
            let v = split(self.linear(&x, &format!("{p}.attention.self.value"))?)?;
            let scores = q
                .f_matmul(&k.f_transpose(-1, -2)?)?
                .f_div_scalar((head_dim as f64).sqrt())?
                .f_add(&bias)?;
            let context = scores
                .f_softmax(-1, Kind::Float)?
                .f_matmul(&v)?
                .f_transpose(1, 2)?
                .f_reshape([batch, length, hidden])?;
            let attended = self.layer_norm(
                &self
                    .linear(&context, &format!("{p}.attention.output.dense"))?
                    .f_add(&x)?,
                &format!("{p}.attention.output.LayerNorm"),
            )?;
            let inner = self
                .linear(&attended, &format!("{p}.intermediate.dense"))?
                .f_gelu("none")?;
            x = self.layer_norm(
                &self.linear(&inner, &format!("{p}.output.dense"))?.f_add(&attended)?,
                &format!("{p}.output.LayerNorm"),
            )?;
        }
        // Mean over the real tokens, then unit length.
        let weights = mask.f_unsqueeze(-1)?;
        let summed = x
            .f_mul(&weights)?
            .f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
        let counts = weights
            .f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?
            .f_clamp_min(1e-9)?;
        let mean = summed.f_div(&counts)?;
        let norm = mean
            .f_norm_scalaropt_dim(2, [1i64].as_slice(), true)?
            .f_clamp_min(1e-12)?;
        Ok(mean.f_div(&norm)?)
    }
}
