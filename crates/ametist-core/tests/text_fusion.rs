//! Fusion of ranked lists: RRF (Qdrant's k = 2, 0-based ranks), DBSF, linear.

use ametist_core::text::fusion::{
    dbsf, linear, normalise, rrf, score_fusion, weighted_rrf, Normalization, DEFAULT_RRF_K,
};

fn close(a: f32, b: f64) -> bool {
    (a as f64 - b).abs() < 1e-6
}

#[test]
fn rrf_is_the_sum_of_reciprocal_ranks() {
    let lists = vec![vec![2u64, 1], vec![1, 2, 3], vec![5, 3, 1]];
    let fused = rrf(&lists, DEFAULT_RRF_K);
    // By hand, 1/(2 + rank) with 0-based ranks:
    let want = [
        (1u64, 1.0 / 3.0 + 1.0 / 2.0 + 1.0 / 4.0),
        (2, 1.0 / 2.0 + 1.0 / 3.0),
        (3, 1.0 / 4.0 + 1.0 / 3.0),
        (5, 1.0 / 2.0),
    ];
    assert_eq!(fused.len(), want.len());
    for ((id, score), (wid, wscore)) in fused.iter().zip(want) {
        assert_eq!(*id, wid);
        assert!(close(*score, wscore), "{id}: {score} vs {wscore}");
    }
    // Qdrant's own figures for these lists.
    assert_eq!(fused.iter().map(|f| f.1).collect::<Vec<_>>(), [1.0833334, 0.8333334, 0.5833334, 0.5]);
    // The paper's constant, 1/(60 + rank), 1-based, is k = 61 with 0-based ranks.
    let paper = rrf(&[vec!["a", "b"], vec!["b", "c"]], 61.0);
    assert_eq!(paper[0].0, "b");
    assert!(close(paper[0].1, 1.0 / 62.0 + 1.0 / 61.0));
    assert!(close(paper[1].1, 1.0 / 61.0));
    assert_eq!((paper[1].0, paper[2].0), ("a", "c"));
}

#[test]
fn rrf_ties_break_by_id_and_duplicates_count_once() {
    let fused = rrf(&[vec![9u32, 4], vec![4u32, 9]], DEFAULT_RRF_K);
    assert_eq!(fused.iter().map(|f| f.0).collect::<Vec<_>>(), [4, 9]);
    assert_eq!(fused[0].1, fused[1].1);
    // An id repeated in one list counts at its best position only; later ones move up.
    let fused = rrf(&[vec![1u32, 1, 2]], DEFAULT_RRF_K);
    assert_eq!(fused, [(1, 0.5), (2, 1.0 / 3.0)]);
    assert!(rrf::<u32>(&[], DEFAULT_RRF_K).is_empty());
    assert!(rrf::<u32>(&[vec![], vec![]], DEFAULT_RRF_K).is_empty());
}

#[test]
fn weighted_rrf_compresses_positions() {
    let lists = vec![vec![1u32, 2], vec![2u32, 1]];
    // Weight 1 everywhere is plain RRF.
    assert_eq!(weighted_rrf(&lists, 2.0, &[1.0, 1.0]), rrf(&lists, 2.0));
    // 1/((rank + 1)/w + k − 1)
    let fused = weighted_rrf(&lists, 2.0, &[3.0, 1.0]);
    let s1 = 1.0 / (1.0 / 3.0 + 1.0) + 1.0 / (2.0 / 1.0 + 1.0);
    let s2 = 1.0 / (2.0 / 3.0 + 1.0) + 1.0 / (1.0 / 1.0 + 1.0);
    assert_eq!(fused[0].0, 2);
    assert!(close(fused[0].1, s2) && close(fused[1].1, s1));
    // A weight of 0 contributes nothing.
    let fused = weighted_rrf(&[vec![1u32], vec![2u32]], 2.0, &[1.0, 0.0]);
    assert_eq!(fused, [(1, 0.5), (2, 0.0)]);
}

#[test]
fn dbsf_normalises_by_three_sigma_and_sums() {
    // List A: scores 10, 20, 30 → mean 20, sample sd 10, range [−10, 50].
    // List B: scores 0.9, 0.5 → mean 0.7, sample sd 0.2828427, range [−0.1485281, 1.5485281].
    let a = vec![("x", 30.0f32), ("y", 20.0), ("z", 10.0)];
    let b = vec![("y", 0.9f32), ("w", 0.5)];
    let fused = dbsf(&[a, b]);
    let sd_b = (0.08f64).sqrt();
    let (lo_b, hi_b) = (0.7 - 3.0 * sd_b, 0.7 + 3.0 * sd_b);
    let nb = |s: f64| (s - lo_b) / (hi_b - lo_b);
    let want = [("y", 0.5 + nb(0.9)), ("x", 40.0 / 60.0), ("w", nb(0.5)), ("z", 20.0 / 60.0)];
    assert_eq!(fused.len(), 4);
    for ((id, score), (wid, ws)) in fused.iter().zip(want) {
        assert_eq!(*id, wid);
        assert!(close(*score, ws), "{id}: {score} vs {ws}");
    }
    // One score, or equal scores, normalise to 0.5.
    assert_eq!(normalise(&[7.0], Normalization::Distribution), [0.5]);
    assert_eq!(normalise(&[3.0, 3.0, 3.0], Normalization::Distribution), [0.5, 0.5, 0.5]);
    assert!(normalise(&[], Normalization::Distribution).is_empty());
    // Scale and shift of a list do not change its normalised scores.
    let s = [1.0f32, 2.0, 4.0, 8.0];
    let t: Vec<f32> = s.iter().map(|x| 100.0 * x - 7.0).collect();
    for (p, q) in normalise(&s, Normalization::Distribution).iter().zip(normalise(&t, Normalization::Distribution)) {
        assert!((p - q).abs() < 1e-5);
    }
}

#[test]
fn min_max_and_linear_fusion() {
    assert_eq!(normalise(&[2.0, 4.0, 3.0], Normalization::MinMax), [0.0, 1.0, 0.5]);
    assert_eq!(normalise(&[2.0], Normalization::MinMax), [2.0]);
    assert_eq!(normalise(&[2.0, 2.0], Normalization::MinMax), [0.5, 0.5]);
    let a = vec![(1u32, 2.0f32), (2, 1.0)];
    let b = vec![(2u32, 10.0f32), (3, 4.0)];
    assert_eq!(linear(&[a.clone(), b.clone()], &[0.5, 0.1]), [(2, 1.5), (1, 1.0), (3, 0.4)]);
    // Missing weights are 1.
    assert_eq!(linear(&[a.clone(), b.clone()], &[]), [(2, 11.0), (3, 4.0), (1, 2.0)]);
    assert_eq!(score_fusion(&[a, b], &[1.0, 1.0], Normalization::MinMax), [(1, 1.0), (2, 1.0), (3, 0.0)]);
}
