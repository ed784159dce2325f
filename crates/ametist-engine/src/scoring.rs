//! Orders other than "nearest to one vector": example queries (recommend `best_score` and
//! `sum_scores`, discover, context) and scroll orders (by a payload value, random).
//!
//! A partition applies these to the points that pass a request's filter, and the
//! coordinator merges the partitions' lists with the same comparison, so an answer does
//! not depend on the partitioning. The formulas are those of Qdrant (and of its client's
//! local mode, the reference the tests compare with): similarities are Qdrant's "core"
//! ones, where higher is closer for every metric (`dot` for cosine and dot, the negated
//! squared distance for euclid, the negated distance for manhattan).

use std::cmp::Ordering;

use serde_json::{Number, Value};

use ametist_core::filter::DateTime;
use ametist_core::payload_index::values_at;
use ametist_core::{Metric, Payload, PointId};

use crate::messages::{ContextPair, ExampleQuery, ScrollOrder};

/// f32's machine epsilon, as Qdrant's context score subtracts it.
const EPSILON: f32 = f32::EPSILON;

/// Qdrant's core similarity: higher is closer, for every metric.
fn similarity(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    -metric.distance(a, b)
}

fn fast_sigmoid(x: f32) -> f32 {
    if !x.is_finite() {
        return x;
    }
    x / (1.0 + x.abs())
}

fn scaled_fast_sigmoid(x: f32) -> f32 {
    0.5 * (fast_sigmoid(x) + 1.0)
}

/// The score of a stored vector `v` for an example query: higher is better.
pub fn example_score(metric: Metric, q: &ExampleQuery, v: &[f32]) -> f32 {
    match q {
        ExampleQuery::BestScore { positive, negative } => {
            let best = |xs: &[Vec<f32>]| xs.iter().map(|x| similarity(metric, x, v)).fold(f32::NEG_INFINITY, f32::max);
            let (pos, neg) = (best(positive), best(negative));
            if pos > neg {
                scaled_fast_sigmoid(pos)
            } else {
                -scaled_fast_sigmoid(neg)
            }
        }
        ExampleQuery::SumScores { positive, negative } => {
            let sum = |xs: &[Vec<f32>]| xs.iter().map(|x| similarity(metric, x, v)).sum::<f32>();
            sum(positive) - sum(negative)
        }
        ExampleQuery::Discover { target, pairs } => {
            rank(metric, pairs, v) as f32 + scaled_fast_sigmoid(similarity(metric, target, v))
        }
        ExampleQuery::Context { pairs } => pairs
            .iter()
            .map(|p| {
                let diff = similarity(metric, &p.positive, v) - similarity(metric, &p.negative, v) - EPSILON;
                fast_sigmoid(diff.min(0.0))
            })
            .sum(),
    }
}

/// Discovery's rank: +1 for each pair whose positive is nearer, -1 for each whose negative is.
fn rank(metric: Metric, pairs: &[ContextPair], v: &[f32]) -> i32 {
    pairs
        .iter()
        .map(|p| {
            let (pos, neg) = (similarity(metric, &p.positive, v), similarity(metric, &p.negative, v));
            match pos.partial_cmp(&neg) {
                Some(Ordering::Greater) => 1,
                Some(Ordering::Equal) => 0,
                _ => -1,
            }
        })
        .sum()
}

/// A payload value as an ordering value: numbers as they are, datetime strings as
/// microseconds since the epoch; anything else (booleans included) does not order.
pub fn order_value(v: &Value) -> Option<Number> {
    match v {
        Value::Number(n) => Some(n.clone()),
        Value::String(s) => {
            let dt = DateTime::parse(s)?;
            let micros = dt.unix_seconds().checked_mul(1_000_000)?.checked_add(i64::from(dt.subsec_nanos() / 1000))?;
            Some(Number::from(micros))
        }
        _ => None,
    }
}

fn as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// Compares two (value, id) places of a scroll order: by value in the order's direction,
/// ties by id.
pub fn order_cmp(order: &ScrollOrder, a: (&Number, &PointId), b: (&Number, &PointId)) -> Ordering {
    let by_value = match order {
        ScrollOrder::Payload { descending: true, .. } => as_f64(b.0).total_cmp(&as_f64(a.0)),
        ScrollOrder::Payload { .. } => as_f64(a.0).total_cmp(&as_f64(b.0)),
        ScrollOrder::Random { .. } => a.0.as_u64().cmp(&b.0.as_u64()),
    };
    by_value.then_with(|| a.1.cmp(b.1))
}

/// The first `limit` places of `points` (slot, id, payload) in the scroll order: for a
/// payload order one place per distinct value a point has at the key (from `start_from`
/// on), for a random order one per point.
pub fn ordered<'a>(
    order: &ScrollOrder,
    limit: usize,
    points: impl Iterator<Item = (u32, &'a PointId, Option<&'a Payload>)>,
) -> Vec<(u32, Number)> {
    let mut places: Vec<(Number, &PointId, u32)> = Vec::new();
    match order {
        ScrollOrder::Payload { key, descending, start_from } => {
            for (slot, id, payload) in points {
                let Some(payload) = payload else { continue };
                let mut seen: Vec<Number> = Vec::new();
                for v in values_at(payload, key) {
                    let Some(n) = order_value(v) else { continue };
                    let x = as_f64(&n);
                    let before_start = match start_from {
                        Some(s) if *descending => x > *s,
                        Some(s) => x < *s,
                        None => false,
                    };
                    if before_start || seen.iter().any(|m| as_f64(m) == x) {
                        continue;
                    }
                    seen.push(n.clone());
                    places.push((n, id, slot));
                }
            }
        }
        ScrollOrder::Random { seed } => {
            for (slot, id, _) in points {
                places.push((Number::from(mix(seed ^ id.stable_hash())), id, slot));
            }
        }
    }
    places.sort_by(|a, b| order_cmp(order, (&a.0, a.1), (&b.0, b.1)));
    places.truncate(limit);
    places.into_iter().map(|(n, _, slot)| (slot, n)).collect()
}

/// SplitMix64's finaliser: spreads a seed-mixed hash over all 64 bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn best_score_prefers_points_nearer_a_positive() {
        let q = ExampleQuery::BestScore { positive: vec![vec![1.0, 0.0]], negative: vec![vec![0.0, 1.0]] };
        let near_pos = example_score(Metric::Dot, &q, &[1.0, 0.0]);
        let near_neg = example_score(Metric::Dot, &q, &[0.0, 1.0]);
        assert!(near_pos > 0.0 && near_neg < 0.0, "{near_pos} {near_neg}");
        // Qdrant's scaled sigmoid of the positive similarity 1: 0.5 * (0.5 + 1).
        assert!((near_pos - 0.75).abs() < 1e-6);
    }

    #[test]
    fn payload_order_takes_each_distinct_value_once_and_breaks_ties_by_id() {
        let p1: Payload = serde_json::from_value(json!({"x": [3, 1, 3]})).unwrap();
        let p2: Payload = serde_json::from_value(json!({"x": 1})).unwrap();
        let p3: Payload = serde_json::from_value(json!({"x": "2020-01-01T00:00:00Z"})).unwrap();
        let ids = [PointId::Num(1), PointId::Num(2), PointId::Num(3)];
        let points = vec![(0, &ids[0], Some(&p1)), (1, &ids[1], Some(&p2)), (2, &ids[2], Some(&p3))];
        let order = ScrollOrder::Payload { key: "x".into(), descending: false, start_from: None };
        let got: Vec<(u32, f64)> =
            ordered(&order, 10, points.clone().into_iter()).into_iter().map(|(s, n)| (s, as_f64(&n))).collect();
        assert_eq!(got, vec![(0, 1.0), (1, 1.0), (0, 3.0), (2, 1_577_836_800_000_000.0)]);
        let desc = ScrollOrder::Payload { key: "x".into(), descending: true, start_from: Some(2.0) };
        let got: Vec<u32> = ordered(&desc, 10, points.into_iter()).into_iter().map(|(s, _)| s).collect();
        assert_eq!(got, vec![0, 1]);
    }
}
