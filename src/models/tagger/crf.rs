//! Inference in a linear-chain conditional random field over one sentence:
//! the best tag sequence (Viterbi) and the posterior marginals with the
//! log-partition (forward–backward), under the transitions a tag set allows.
//!
//! Plain Rust over `f64`: a sentence is tens of tokens and tens of tags, so
//! a libtorch call per step would cost more in dispatch than the arithmetic.
//! Forward–backward runs on scaled probabilities (Rabiner 1989) rather than
//! in log space, so its inner loops are multiply-adds and only `n·T + T²`
//! exponentials are taken per sentence.

/// The scores of one sentence under a model of `tags` tags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chain<'a> {
    /// `tokens × tags` emission scores, row by row.
    pub emissions: &'a [f32],
    /// `(tags + 1) × tags` transition scores: row 0 from the start, row
    /// `1 + i` from tag `i`.
    pub transitions: &'a [f32],
    /// Which of `transitions` may be taken, in the same layout.
    pub allowed: &'a [bool],
    /// The number of tags.
    pub tags: usize,
}

/// What forward–backward finds for one sentence.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Posteriors {
    /// `ln Z`: the log of the summed scores of every allowed sequence.
    pub log_partition: f64,
    /// `tokens × tags`: the probability of each tag at each token.
    pub marginals: Vec<f64>,
    /// `(tags + 1) × tags`: the expected number of times each transition is
    /// taken (row 0: the first tag).
    pub transition_counts: Vec<f64>,
}

impl Chain<'_> {
    fn tokens(&self) -> usize {
        self.emissions.len() / self.tags.max(1)
    }

    fn emission(&self, token: usize, tag: usize) -> f64 {
        f64::from(self.emissions[token * self.tags + tag])
    }

    /// The score of `sequence` (tag indices, one per token), whether or not
    /// its transitions are allowed.
    pub fn score(&self, sequence: &[usize]) -> f64 {
        let mut previous = 0;
        let mut total = 0.0;
        for (t, &tag) in sequence.iter().enumerate() {
            total += f64::from(self.transitions[previous * self.tags + tag]) + self.emission(t, tag);
            previous = 1 + tag;
        }
        total
    }

    /// Whether every transition of `sequence` is allowed.
    #[cfg(test)]
    pub fn is_allowed(&self, sequence: &[usize]) -> bool {
        let mut previous = 0;
        sequence.iter().all(|&tag| {
            let ok = self.allowed[previous * self.tags + tag];
            previous = 1 + tag;
            ok
        })
    }

    /// The allowed sequence of the highest score (empty for no tokens).
    pub fn viterbi(&self) -> Vec<usize> {
        let (n, k) = (self.tokens(), self.tags);
        if n == 0 || k == 0 {
            return Vec::new();
        }
        let mut best: Vec<f64> = (0..k)
            .map(|j| match self.allowed[j] {
                true => f64::from(self.transitions[j]) + self.emission(0, j),
                false => f64::NEG_INFINITY,
            })
            .collect();
        let mut back = vec![0u32; n * k];
        let mut next = vec![0.0; k];
        for t in 1..n {
            for (j, slot) in next.iter_mut().enumerate() {
                let mut top = (f64::NEG_INFINITY, 0);
                for (i, &b) in best.iter().enumerate() {
                    let at = (1 + i) * k + j;
                    if self.allowed[at] {
                        let s = b + f64::from(self.transitions[at]);
                        if s > top.0 {
                            top = (s, i);
                        }
                    }
                }
                *slot = top.0 + self.emission(t, j);
                back[t * k + j] = top.1 as u32;
            }
            std::mem::swap(&mut best, &mut next);
        }
        let mut tag = (0..k).max_by(|&a, &b| best[a].total_cmp(&best[b])).unwrap_or(0);
        let mut path = vec![0; n];
        for t in (0..n).rev() {
            path[t] = tag;
            tag = back[t * k + tag] as usize;
        }
        path
    }

    /// Forward–backward; `None` when no sequence is allowed or a score is
    /// not finite.
    pub fn posteriors(&self) -> Option<Posteriors> {
        let (n, k) = (self.tokens(), self.tags);
        if n == 0 || k == 0 {
            return Some(Posteriors {
                log_partition: 0.0,
                marginals: Vec::new(),
                transition_counts: vec![0.0; (k + 1) * k],
            });
        }
        // Potentials: exp of the scores, each token's shifted by its largest
        // emission (added back into ln Z), a forbidden transition 0.
        let potential: Vec<f64> = self
            .transitions
            .iter()
            .zip(self.allowed)
            .map(|(&s, &ok)| if ok { f64::from(s).exp() } else { 0.0 })
            .collect();
        let mut shift = 0.0;
        let mut emitted = vec![0.0; n * k];
        for t in 0..n {
            let row = &self.emissions[t * k..(t + 1) * k];
            let top = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            shift += f64::from(top);
            for (e, &s) in emitted[t * k..(t + 1) * k].iter_mut().zip(row) {
                *e = (f64::from(s) - f64::from(top)).exp();
            }
        }
        // Scaled forward: alpha[t] sums to 1, scale[t] is what it summed to.
        let mut alpha = vec![0.0; n * k];
        let mut scale = vec![0.0; n];
        for t in 0..n {
            for j in 0..k {
                let into = match t {
                    0 => potential[j],
                    _ => (0..k)
                        .map(|i| alpha[(t - 1) * k + i] * potential[(1 + i) * k + j])
                        .sum(),
                };
                alpha[t * k + j] = into * emitted[t * k + j];
            }
            let total: f64 = alpha[t * k..(t + 1) * k].iter().sum();
            if !(total > 0.0 && total.is_finite()) {
                return None;
            }
            scale[t] = total;
            alpha[t * k..(t + 1) * k].iter_mut().for_each(|a| *a /= total);
        }
        // Scaled backward, by the same factors.
        let mut beta = vec![1.0; n * k];
        for t in (0..n - 1).rev() {
            for i in 0..k {
                beta[t * k + i] = (0..k)
                    .map(|j| potential[(1 + i) * k + j] * emitted[(t + 1) * k + j] * beta[(t + 1) * k + j])
                    .sum::<f64>()
                    / scale[t + 1];
            }
        }
        let marginals: Vec<f64> = alpha.iter().zip(&beta).map(|(a, b)| a * b).collect();
        let mut transition_counts = vec![0.0; (k + 1) * k];
        transition_counts[..k].copy_from_slice(&marginals[..k]);
        for t in 1..n {
            for i in 0..k {
                let from = alpha[(t - 1) * k + i] / scale[t];
                for j in 0..k {
                    transition_counts[(1 + i) * k + j] +=
                        from * potential[(1 + i) * k + j] * emitted[t * k + j] * beta[t * k + j];
                }
            }
        }
        let log_partition = shift + scale.iter().map(|s| s.ln()).sum::<f64>();
        log_partition.is_finite().then_some(Posteriors {
            log_partition,
            marginals,
            transition_counts,
        })
    }
}

/// Which transitions valid BIO allows among `tags`, in the layout of
/// [`Chain::transitions`]: `I-X` only after `B-X` or `I-X`, never first.
/// Tags that are not BIO (`O`, or a plain label) follow anything.
pub(crate) fn bio_transitions(tags: &[String]) -> Vec<bool> {
    let k = tags.len();
    let mut allowed = vec![true; (k + 1) * k];
    for (j, next) in tags.iter().enumerate() {
        let Some(kind) = next.strip_prefix("I-") else {
            continue;
        };
        allowed[j] = false;
        for (i, previous) in tags.iter().enumerate() {
            let continues = previous
                .split_once('-')
                .is_some_and(|(prefix, of)| (prefix == "B" || prefix == "I") && of == kind);
            allowed[(1 + i) * k + j] = continues;
        }
    }
    allowed
}

pub(crate) use crate::base::repair_bio;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::SplitMix64;

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    /// Every sequence of `n` tags of `k`.
    fn sequences(n: usize, k: usize) -> Vec<Vec<usize>> {
        (0..k.pow(n as u32))
            .map(|mut code| {
                (0..n)
                    .map(|_| {
                        let tag = code % k;
                        code /= k;
                        tag
                    })
                    .collect()
            })
            .collect()
    }

    fn random(len: usize, rng: &mut SplitMix64) -> Vec<f32> {
        (0..len).map(|_| rng.next_f32() * 6.0 - 3.0).collect()
    }

    #[test]
    fn forward_backward_and_viterbi_match_enumeration() {
        let tags = strings("O B-per I-per B-loc I-loc");
        let allowed = bio_transitions(&tags);
        let mut rng = SplitMix64::new(7);
        for n in 1..=5 {
            let emissions = random(n * tags.len(), &mut rng);
            let transitions = random((tags.len() + 1) * tags.len(), &mut rng);
            let chain = Chain {
                emissions: &emissions,
                transitions: &transitions,
                allowed: &allowed,
                tags: tags.len(),
            };
            let valid: Vec<Vec<usize>> = sequences(n, tags.len())
                .into_iter()
                .filter(|s| chain.is_allowed(s))
                .collect();
            let z: f64 = valid.iter().map(|s| chain.score(s).exp()).sum();
            let posteriors = chain.posteriors().unwrap();
            assert!((posteriors.log_partition - z.ln()).abs() < 1e-6, "n = {n}");
            for t in 0..n {
                for j in 0..tags.len() {
                    let p: f64 = valid
                        .iter()
                        .filter(|s| s[t] == j)
                        .map(|s| chain.score(s).exp())
                        .sum::<f64>()
                        / z;
                    assert!((posteriors.marginals[t * tags.len() + j] - p).abs() < 1e-9);
                }
            }
            let k = tags.len();
            for from in 0..=k {
                for j in 0..k {
                    let expected: f64 = valid
                        .iter()
                        .map(|s| {
                            let mut previous = 0;
                            let mut count = 0.0;
                            for &tag in s {
                                if previous == from && tag == j {
                                    count += 1.0;
                                }
                                previous = 1 + tag;
                            }
                            count * chain.score(s).exp() / z
                        })
                        .sum();
                    assert!((posteriors.transition_counts[from * k + j] - expected).abs() < 1e-9);
                }
            }
            let best = valid
                .iter()
                .max_by(|a, b| chain.score(a).total_cmp(&chain.score(b)))
                .unwrap();
            assert_eq!(&chain.viterbi(), best, "n = {n}");
        }
    }

    #[test]
    fn large_scores_neither_overflow_nor_lose_the_partition() {
        let tags = strings("O B-x I-x");
        let allowed = bio_transitions(&tags);
        let emissions = [900.0, -900.0, 0.0, 0.0, 850.0, 849.0];
        let transitions = [0.0; 12];
        let chain = Chain {
            emissions: &emissions,
            transitions: &transitions,
            allowed: &allowed,
            tags: 3,
        };
        let posteriors = chain.posteriors().unwrap();
        // Dominated by O then B-x (I-x may not follow O): 900 + 850.
        assert!((posteriors.log_partition - 1750.0).abs() < 1e-6);
        assert_eq!(chain.viterbi(), vec![0, 1]);
    }

    #[test]
    fn bio_forbids_an_inside_tag_that_continues_nothing() {
        let tags = strings("O B-per I-per I-loc");
        let allowed = bio_transitions(&tags);
        let k = tags.len();
        let ok = |from: Option<usize>, to: usize| allowed[from.map_or(0, |f| 1 + f) * k + to];
        assert!(!ok(None, 2) && !ok(None, 3) && ok(None, 0) && ok(None, 1));
        assert!(ok(Some(1), 2) && ok(Some(2), 2) && !ok(Some(0), 2) && !ok(Some(1), 3));
        assert!(!ok(Some(2), 3) && ok(Some(3), 3) && ok(Some(2), 0));
    }

    #[test]
    fn repair_turns_an_orphan_inside_into_a_beginning() {
        let mut tags = strings("I-per I-per O I-loc B-per I-loc");
        repair_bio(&mut tags);
        assert_eq!(tags, strings("B-per I-per O B-loc B-per B-loc"));
    }
}
