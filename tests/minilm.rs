//! The pretrained MiniLM encoder from `data/minilm` reproduces the published
//! sentence-transformers similarities.

use std::path::Path;

use onthefly::models::MiniLm;

fn encoder() -> MiniLm {
    MiniLm::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/minilm"), tch::Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}; run `make data`"))
}

fn cosine(encoder: &MiniLm, a: &str, b: &str) -> f64 {
    let v = encoder.embed(&[a, b]).unwrap();
    v.get(0).dot(&v.get(1)).double_value(&[])
}

#[test]
fn similar_sentences_score_0_755_and_unrelated_ones_near_zero() {
    let e = encoder();
    let food = cosine(&e, "A man is eating food.", "A man is eating a piece of bread.");
    let unrelated = cosine(&e, "A man is eating food.", "The stock market fell sharply on Tuesday.");
    println!("cosine: similar {food:.4}, unrelated {unrelated:.4}");
    assert!((food - 0.755).abs() <= 0.005, "similar sentences: {food:.4}");
    assert!(unrelated.abs() < 0.15, "unrelated sentences: {unrelated:.4}");

    // Unit vectors, one per sentence, the same alone as in a padded batch.
    let batch = e.embed(&["A man is eating food.", "short", "a much longer sentence with many more words in it"]).unwrap();
    assert_eq!(batch.size(), [3, 384]);
    let norms = Vec::<f32>::try_from(batch.norm_scalaropt_dim(2, [1i64].as_slice(), false)).unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
    let alone = e.embed(&["short"]).unwrap();
    let diff = (alone.get(0) - batch.get(1)).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "padding changed a sentence's vector by {diff}");
}
