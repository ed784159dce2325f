//! Multivectors (late interaction, ColBERT-style): a point's field holds a list of vectors
//! of the field's dimension, compared by MaxSim.
//!
//! A multivector travels and is stored as its vectors concatenated: a `Vec<f32>` whose
//! length is a non-zero multiple of the field's dimension. One representation for single
//! and multi fields keeps every write message, WAL record and image section unchanged; the
//! field's settings say how to cut it.
//!
//! MaxSim, as Qdrant defines it: for each query vector, the best similarity among the
//! point's vectors, summed over the query's vectors. In Ametist's internal convention
//! (lower is closer, see [`crate::distance`]) that is the sum of the per-query-vector
//! smallest distances, and [`crate::Metric::score`] turns it into the score Qdrant shows
//! (the sum of similarities for cosine and dot, the square root of the summed squared
//! distances for euclid, the summed distance for manhattan).

use crate::distance::Metric;
use crate::error::CoreError;
use crate::vector;

/// How the vectors of a multivector are compared (Qdrant's `comparator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// For each query vector its best match among the point's vectors, summed.
    MaxSim,
}

/// The most vectors one multivector may hold: far above any late-interaction model's token
/// count, low enough that one point cannot make a query score millions of pairs.
pub const MAX_VECTORS: usize = 4096;

/// Checks that `v` is one or more `dim`-dimensional vectors of finite values.
pub fn validate(dim: usize, v: &[f32]) -> Result<(), CoreError> {
    check_shape(dim, v.len())?;
    for (i, part) in v.chunks_exact(dim).enumerate() {
        vector::validate(dim, part).map_err(|e| CoreError::InMultivector { index: i, error: Box::new(e) })?;
    }
    Ok(())
}

/// Validates a multivector and prepares each of its vectors as [`vector::prepare`] does
/// (unit length for cosine, magnitude limits for the others).
pub fn prepare(metric: Metric, dim: usize, v: Vec<f32>) -> Result<Vec<f32>, CoreError> {
    check_shape(dim, v.len())?;
    let mut out = Vec::with_capacity(v.len());
    for (i, part) in v.chunks_exact(dim).enumerate() {
        let p = vector::prepare(metric, dim, part.to_vec())
            .map_err(|e| CoreError::InMultivector { index: i, error: Box::new(e) })?;
        out.extend_from_slice(&p);
    }
    Ok(out)
}

/// MaxSim of two prepared multivectors as an internal distance (lower is closer): the sum,
/// over the query's vectors, of the smallest distance to any of the point's vectors.
pub fn max_sim(metric: Metric, dim: usize, query: &[f32], point: &[f32]) -> f32 {
    debug_assert!(dim > 0 && point.len() % dim == 0);
    max_sim_parts(metric, dim, query, || point.chunks_exact(dim))
}

/// [`max_sim`] over a point whose vectors are not contiguous (an index keeps each in a
/// slot of its own): `parts` lists them, afresh at each call. The sum is taken in f64 and
/// capped at `f32::MAX`, so that many query vectors whose distances are each within the
/// magnitude limits cannot add up to infinity.
pub fn max_sim_parts<'a, I>(metric: Metric, dim: usize, query: &[f32], parts: impl Fn() -> I) -> f32
where
    I: Iterator<Item = &'a [f32]>,
{
    debug_assert!(dim > 0 && query.len() % dim == 0);
    let mut sum = 0.0f64;
    for q in query.chunks_exact(dim) {
        let best = parts().map(|p| metric.distance(q, p)).fold(f32::INFINITY, f32::min);
        sum += best as f64;
    }
    sum.clamp(-(f32::MAX as f64), f32::MAX as f64) as f32
}

fn check_shape(dim: usize, len: usize) -> Result<(), CoreError> {
    if len == 0 {
        return Err(CoreError::EmptyVector);
    }
    if dim == 0 || len % dim != 0 {
        return Err(CoreError::WrongDimension { expected: dim, got: len });
    }
    if len / dim > MAX_VECTORS {
        return Err(CoreError::TooManyVectors { got: len / dim, limit: MAX_VECTORS });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_sim_sums_each_query_vectors_best_match() {
        // Query vectors (1,0) and (0,1); the point has (1,0), (0.5,0.5) and (0,2).
        let q = [1.0, 0.0, 0.0, 1.0];
        let p = [1.0, 0.0, 0.5, 0.5, 0.0, 2.0];
        // Dot: best for (1,0) is 1, for (0,1) is 2: MaxSim 3, internal -3.
        assert_eq!(max_sim(Metric::Dot, 2, &q, &p), -3.0);
        assert_eq!(Metric::Dot.score(max_sim(Metric::Dot, 2, &q, &p)), 3.0);
        // Euclid: (1,0) matches exactly (0), (0,1) is 0.5 from (0.5,0.5) squared: 0.5.
        assert_eq!(max_sim(Metric::Euclid, 2, &q, &p), 0.5);
        // Order of the point's vectors does not matter.
        let swapped = [0.0, 2.0, 0.5, 0.5, 1.0, 0.0];
        assert_eq!(max_sim(Metric::Dot, 2, &q, &swapped), -3.0);
    }

    #[test]
    fn shapes_and_values_are_checked_per_vector() {
        assert_eq!(validate(2, &[]), Err(CoreError::EmptyVector));
        assert_eq!(validate(2, &[1.0, 2.0, 3.0]), Err(CoreError::WrongDimension { expected: 2, got: 3 }));
        let e = validate(2, &[1.0, 2.0, 3.0, f32::NAN]).unwrap_err();
        assert!(e.to_string().contains("vector 1 of the multivector"), "{e}");
        assert!(validate(2, &vec![1.0; 2 * (MAX_VECTORS + 1)]).is_err());
        let p = prepare(Metric::Cosine, 2, vec![3.0, 4.0, 0.0, 2.0]).expect("valid");
        assert_eq!(p, vec![0.6, 0.8, 0.0, 1.0]);
        assert!(prepare(Metric::Cosine, 2, vec![3.0, 4.0, 0.0, 0.0]).is_err(), "a zero vector inside is refused");
    }

    #[test]
    fn huge_sums_stay_finite() {
        let dim = 4;
        let limit = vector::magnitude_limit(dim);
        let q: Vec<f32> = (0..8 * dim).map(|i| if i % 2 == 0 { limit } else { -limit }).collect();
        let p: Vec<f32> = q.iter().map(|x| -x).collect();
        assert!(max_sim(Metric::Euclid, dim, &q, &p).is_finite());
    }
}
