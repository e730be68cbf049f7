//! The hyper-parameters of the built-in hashed n-gram text models, beside
//! the models (re-exported by [`crate::config`], whose `text_model` field
//! holds them).

use serde::{Deserialize, Serialize};

/// Hyper-parameters of the built-in hashed n-gram text models (the linear
/// classifier and regressor, and the token tagger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextModelConfig {
    /// Number of hash buckets for word uni- and bi-grams (rows of the
    /// linear models' weight table) and for the tagger's token features.
    pub hash_buckets: usize,
    /// Width of the embedding of the convolutional token tagger of earlier
    /// versions; the CRF tagger has none. Still read, so that
    /// configurations that set it load.
    pub embedding_dim: usize,
    /// At most this many tokens of an input are used (the rest is ignored).
    pub max_tokens: usize,
    /// Adam learning rate of an update of the models Adam trains (the token
    /// tagger). Each update is a single epoch over a small batch, so the rate
    /// must let a fresh model learn in one pass: on the news stream 0.1 gave
    /// the best held-out accuracy of 0.02, 0.05, 0.1 and 0.3 (for the
    /// embedding-bag classifier this library had then).
    pub learning_rate: f64,
    /// Examples per Adam step inside an update.
    pub minibatch_size: usize,
    /// Base rate of the adaptive (row-wise AdaGrad) steps of the hashed
    /// linear classifier and regressor: each n-gram's step is this divided
    /// by the root of its squared gradients so far (see [`crate::optim`]).
    /// An input's n-grams share a total value of 1, so this is how far an
    /// input's scores may move when all its n-grams are new. 16 was the best
    /// of 0.5, 1, 2, 4, 8, 16, 32 and 64 on the first 1,000 news articles in
    /// date order, both for updates of 50 and of 1.
    pub linear_learning_rate: f64,
    /// Inputs of at least this many n-grams (words and word pairs) take a
    /// full step of the built-in classifier: their scores move by up to
    /// `linear_learning_rate` on first sight; a shorter input of `n` moves
    /// them by `linear_learning_rate·√(n/full_step_ngrams)`, since it
    /// carries less evidence (a wrong label on a tweet was memorised as
    /// firmly as one on a whole article). Chosen on the validation streams
    /// (docs/measurements.md, "Wrong labels"); 1 gives every input a full
    /// step (the classifier before).
    pub full_step_ngrams: usize,
    /// The same base rate for the hashed linear regressor. A score moves
    /// through a sigmoid and is judged by its absolute error, so it wants
    /// smaller steps: 1 was the best of 0.1–16 (mean absolute error 0.108 vs
    /// 0.286 at 16) on the last fifth of the VADER tweets' training part,
    /// trained on the rest in updates of 200.
    pub regressor_learning_rate: f64,
    /// Examples per adaptive step of the hashed linear models and the token
    /// tagger: 1 learns each example in turn, as Vowpal Wabbit does.
    pub linear_minibatch_size: usize,
    /// Base rate of the token tagger's adaptive steps (its feature rows
    /// row-wise, its transitions each). 0.2 was the best of 0.05, 0.1,
    /// 0.15, 0.2, 0.3, 0.4, 0.8 and 1.6 on the WNUT-16 validation split
    /// (`examples/peer_tagger.rs --split validation`), after one pass and
    /// after three; above 0.3 updates began to be rolled back.
    pub tagger_learning_rate: f64,
    /// Seed of the weight initialisation (mixed with the agent and task names).
    pub seed: u64,
}

impl Default for TextModelConfig {
    fn default() -> Self {
        TextModelConfig {
            hash_buckets: 1 << 18,
            embedding_dim: 32,
            max_tokens: 1000,
            learning_rate: 0.1,
            minibatch_size: 16,
            linear_learning_rate: 16.0,
            full_step_ngrams: 1024,
            regressor_learning_rate: 1.0,
            linear_minibatch_size: 1,
            tagger_learning_rate: 0.2,
            seed: 0x0f_7e_f1_e5,
        }
    }
}
