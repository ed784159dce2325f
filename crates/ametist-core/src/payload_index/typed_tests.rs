//! The datetime, uuid and geo indexes against a brute-force reference (the filter itself,
//! evaluated on every payload), on random data. Each test prints its seed;
//! `AMETIST_TEST_SEED=<seed>` replays it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{FieldType, PayloadIndex};
use crate::filter::Filter;
use crate::ids::PointId;
use crate::payload::Payload;

fn seed(what: &str) -> u64 {
    let seed = std::env::var("AMETIST_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
    });
    eprintln!("{what}: seed {seed} (replay with AMETIST_TEST_SEED={seed})");
    seed
}

fn obj(v: Value) -> Payload {
    v.as_object().cloned().expect("test payloads are objects")
}

/// Builds the index over `points`, then replaces a third of them (remove + insert), so
/// that both the bulk build and the incremental path are checked.
fn build(
    key: &str,
    kind: FieldType,
    points: &mut [Option<Payload>],
    rng: &mut StdRng,
    gen: &dyn Fn(&mut StdRng) -> Option<Payload>,
) -> PayloadIndex {
    let mut idx = PayloadIndex::new();
    idx.create_field(key, kind, points.iter().enumerate().map(|(i, p)| (i as u32, p.as_ref())));
    for _ in 0..points.len() / 3 {
        let slot = rng.random_range(0..points.len());
        points[slot] = gen(rng);
        idx.remove(slot as u32);
        idx.insert(slot as u32, points[slot].as_ref());
    }
    idx
}

/// Checks one filter: candidates are a superset of the truth (equal to it when the index
/// covers the filter), the estimate bounds it, and a covered filter's per-slot answer is
/// exact. Returns the number of matches (so that a test can tell that it tested some).
fn check(idx: &PayloadIndex, points: &[Option<Payload>], f: &Value, seed: u64) -> usize {
    let filter = Filter::from_value(f.clone()).unwrap_or_else(|e| panic!("{f}: {e}"));
    let truth: Vec<u32> = (0..points.len() as u32)
        .filter(|&i| filter.matches(&PointId::Num(u64::from(i)), points[i as usize].as_ref()))
        .collect();
    let cand = idx.candidates(&filter).unwrap_or_else(|| panic!("seed {seed}: {f} should be answered by the index"));
    assert!(cand.windows(2).all(|w| w[0] < w[1]), "seed {seed}: {f}: candidates not sorted");
    assert!(truth.iter().all(|t| cand.binary_search(t).is_ok()), "seed {seed}: {f}: {truth:?} not in {cand:?}");
    let estimate = idx.estimate(&filter).expect("an index that lists candidates also bounds them");
    assert!(estimate >= truth.len(), "seed {seed}: {f}: estimate {estimate} < {} matches", truth.len());
    if idx.covers(&filter) {
        assert_eq!(cand, truth, "seed {seed}: {f}");
        for slot in 0..points.len() as u32 {
            assert_eq!(
                idx.covered_match(&filter, slot),
                truth.binary_search(&slot).is_ok(),
                "seed {seed}: {f} slot {slot}"
            );
        }
    }
    truth.len()
}

/// A datetime in one of the spellings Qdrant accepts, with a random offset.
fn datetime(rng: &mut StdRng) -> String {
    let (y, mo, d) = (rng.random_range(2020..2023), rng.random_range(1..13), rng.random_range(1..29));
    let (h, mi, s) = (rng.random_range(0..24), rng.random_range(0..60), rng.random_range(0..60));
    match rng.random_range(0..7) {
        0 => format!("{y:04}-{mo:02}-{d:02}"),
        1 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        2 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}"),
        3 => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}"),
        4 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z", rng.random_range(0..1_000_000)),
        5 => format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+{:02}:{:02}",
            rng.random_range(0..14),
            [0, 30, 45][rng.random_range(0..3)]
        ),
        _ => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}-{:02}:00", rng.random_range(0..12)),
    }
}

#[test]
fn datetime_index_answers_ranges_exactly() {
    let seed = seed("datetime index");
    let mut rng = StdRng::seed_from_u64(seed);
    let gen = |rng: &mut StdRng| -> Option<Payload> {
        Some(obj(match rng.random_range(0..10) {
            0 => json!({}),
            1 => json!({"t": "not a date"}),
            2 => json!({"t": 1234}),
            3 => json!({"t": [datetime(rng), datetime(rng)]}),
            4 => return None,
            _ => json!({"t": datetime(rng)}),
        }))
    };
    let mut points: Vec<Option<Payload>> = (0..600).map(|_| gen(&mut rng)).collect();
    let idx = build("t", FieldType::Datetime, &mut points, &mut rng, &gen);
    let mut found = 0;
    for _ in 0..200 {
        let mut range = serde_json::Map::new();
        for bound in ["gt", "gte", "lt", "lte"] {
            if rng.random_bool(0.4) {
                range.insert(bound.into(), json!(datetime(&mut rng)));
            }
        }
        if range.is_empty() {
            range.insert("gte".into(), json!(datetime(&mut rng)));
        }
        found += check(&idx, &points, &json!({"must": [{"key": "t", "range": range}]}), seed);
    }
    assert!(found > 0, "seed {seed}: no range matched anything");
}

#[test]
fn datetime_offsets_name_one_instant() {
    let points: Vec<Option<Payload>> = [
        "2023-02-08T10:49:00Z",
        "2023-02-08T11:49:00+01:00",
        "2023-02-08T05:19:00-05:30",
        "2023-02-08T10:49:00",
        "2023-02-08T10:49:01Z",
    ]
    .iter()
    .map(|s| Some(obj(json!({"t": s}))))
    .collect();
    let mut idx = PayloadIndex::new();
    idx.create_field("t", FieldType::Datetime, points.iter().enumerate().map(|(i, p)| (i as u32, p.as_ref())));
    let f =
        json!({"must": [{"key": "t", "range": {"gte": "2023-02-08T12:49:00+02:00", "lte": "2023-02-08T10:49:00.5Z"}}]});
    let filter = Filter::from_value(f.clone()).expect("a valid filter");
    assert_eq!(idx.candidates(&filter), Some(vec![0, 1, 2, 3]));
    check(&idx, &points, &f, 0);
    let empty = json!({"must": [{"key": "t", "range": {"gt": "2023-02-08T10:49:01Z", "lt": "2023-02-08T10:49:00Z"}}]});
    assert_eq!(idx.candidates(&Filter::from_value(empty).expect("valid")), Some(vec![]));
}

#[test]
fn uuid_index_answers_match_and_any() {
    let seed = seed("uuid index");
    let mut rng = StdRng::seed_from_u64(seed);
    let pool: Vec<String> = (0..20).map(|_| uuid::Uuid::from_u128(rng.random()).to_string()).collect();
    let spell = |rng: &mut StdRng, u: &str| match rng.random_range(0..4) {
        0 => u.to_uppercase(),
        1 => u.replace('-', ""),
        _ => u.to_string(),
    };
    let gen = |rng: &mut StdRng| -> Option<Payload> {
        let u = &pool[rng.random_range(0..pool.len())];
        Some(obj(match rng.random_range(0..8) {
            0 => json!({}),
            1 => json!({"u": "not-a-uuid"}),
            2 => json!({"u": [spell(rng, u), &pool[rng.random_range(0..pool.len())]]}),
            _ => json!({"u": spell(rng, u)}),
        }))
    };
    let mut points: Vec<Option<Payload>> = (0..500).map(|_| gen(&mut rng)).collect();
    let idx = build("u", FieldType::Uuid, &mut points, &mut rng, &gen);
    let mut found = 0;
    for _ in 0..100 {
        let pick = rng.random_range(0..pool.len());
        let u = spell(&mut rng, &pool[pick]);
        found += check(&idx, &points, &json!({"must": [{"key": "u", "match": {"value": u}}]}), seed);
        let any: Vec<String> = (0..3).map(|_| pool[rng.random_range(0..pool.len())].clone()).collect();
        check(&idx, &points, &json!({"must": [{"key": "u", "match": {"any": any}}]}), seed);
    }
    assert!(found > 0, "seed {seed}: no uuid matched anything");
    // A string that is not a UUID may equal a payload string the index does not hold.
    let other = Filter::from_value(json!({"must": [{"key": "u", "match": {"value": "not-a-uuid"}}]})).expect("valid");
    assert_eq!(idx.candidates(&other), None);
}

fn point(rng: &mut StdRng) -> Value {
    // Hot spots: the antimeridian, a pole, a city; and anywhere.
    let (lon, lat) = match rng.random_range(0..6) {
        0 => (rng.random_range(179.0..=180.0), rng.random_range(-2.0..2.0)),
        1 => (rng.random_range(-180.0..-179.0), rng.random_range(-2.0..2.0)),
        2 => (rng.random_range(-180.0..=180.0), rng.random_range(88.0..=90.0)),
        3 => (rng.random_range(13.0..14.0), rng.random_range(52.0..53.0)),
        _ => (rng.random_range(-180.0..=180.0), rng.random_range(-90.0..=90.0)),
    };
    json!({"lon": lon, "lat": lat})
}

/// A star-shaped ring around `(cx, cy)`: sorted angles, radii in `r_lo..r_hi` (simple).
fn ring(rng: &mut StdRng, cx: f64, cy: f64, r_lo: f64, r_hi: f64) -> Value {
    let n = rng.random_range(3..9);
    let mut angles: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..std::f64::consts::TAU)).collect();
    angles.sort_by(f64::total_cmp);
    let mut pts: Vec<Value> = angles
        .iter()
        .map(|a| {
            let r = rng.random_range(r_lo..r_hi);
            json!({"lon": cx + r * a.cos(), "lat": cy + r * a.sin()})
        })
        .collect();
    pts.push(pts[0].clone());
    json!({"points": pts})
}

fn shape(rng: &mut StdRng) -> Value {
    let hot: [(f64, f64); 5] = [(179.5, 0.0), (-179.5, 0.0), (0.0, 89.0), (13.5, 52.5), (0.0, 0.0)];
    let (cx, cy) = hot[rng.random_range(0..hot.len())];
    match rng.random_range(0..4) {
        0 => {
            let radius = [1_000.0, 50_000.0, 300_000.0, 5_000_000.0, 30_000_000.0][rng.random_range(0..5)];
            json!({"geo_radius": {"center": {"lon": cx, "lat": cy}, "radius": radius}})
        }
        1 => {
            // Left edge east of the right one: crosses the antimeridian (Qdrant's rule).
            let (w, e) = if rng.random_bool(0.5) {
                (rng.random_range(170.0..180.0), rng.random_range(-180.0..-170.0))
            } else {
                ((cx - 1.0f64).max(-180.0), (cx + 1.0f64).min(180.0))
            };
            let (n, s) = (rng.random_range(-1.0..3.0f64).min(90.0), rng.random_range(-3.0..1.0));
            json!({"geo_bounding_box": {"top_left": {"lon": w, "lat": n}, "bottom_right": {"lon": e, "lat": s}}})
        }
        _ => {
            let (cx, cy) = (cx.clamp(-175.0, 175.0), cy.clamp(-85.0, 85.0));
            let r = rng.random_range(0.5..4.0);
            let interiors = if rng.random_bool(0.6) { json!([ring(rng, cx, cy, r * 0.1, r * 0.4)]) } else { json!([]) };
            json!({"geo_polygon": {"exterior": ring(rng, cx, cy, r * 0.5, r), "interiors": interiors}})
        }
    }
}

#[test]
fn geo_index_answers_shapes_exactly() {
    let seed = seed("geo index");
    let mut rng = StdRng::seed_from_u64(seed);
    let gen = |rng: &mut StdRng| -> Option<Payload> {
        Some(obj(match rng.random_range(0..12) {
            0 => json!({}),
            1 => json!({"g": {"lon": "1", "lat": 2}}),
            // Out of range: the filter still evaluates it, so the index must list it.
            2 => json!({"g": {"lon": 179.9 + 360.0, "lat": 0.5}}),
            3 => json!({"g": [point(rng), point(rng)]}),
            _ => json!({"g": point(rng)}),
        }))
    };
    let mut points: Vec<Option<Payload>> = (0..1500).map(|_| gen(&mut rng)).collect();
    let idx = build("g", FieldType::Geo, &mut points, &mut rng, &gen);
    let (mut found, mut hit_shapes) = (0, 0);
    for _ in 0..150 {
        let mut c = shape(&mut rng);
        c["key"] = json!("g");
        let n = check(&idx, &points, &json!({"must": [c]}), seed);
        found += n;
        hit_shapes += usize::from(n > 0);
    }
    eprintln!("geo index: {hit_shapes} of 150 shapes matched {found} points in all");
    assert!(hit_shapes > 10, "seed {seed}: too few shapes matched anything");
}

#[test]
fn geo_edge_cases() {
    let pts = [(5.0, 5.0), (1.0, 1.0), (4.0, 5.0), (179.5, 0.0), (-179.5, 0.0), (0.0, 0.0), (9.99, 9.99)];
    let points: Vec<Option<Payload>> =
        pts.iter().map(|&(lon, lat)| Some(obj(json!({"g": {"lon": lon, "lat": lat}})))).collect();
    let mut idx = PayloadIndex::new();
    idx.create_field("g", FieldType::Geo, points.iter().enumerate().map(|(i, p)| (i as u32, p.as_ref())));
    let sq = |lo: f64, hi: f64| json!({"points": [{"lon": lo, "lat": lo}, {"lon": hi, "lat": lo}, {"lon": hi, "lat": hi}, {"lon": lo, "lat": hi}, {"lon": lo, "lat": lo}]});
    let holed =
        json!({"must": [{"key": "g", "geo_polygon": {"exterior": sq(0.0, 10.0), "interiors": [sq(4.0, 6.0)]}}]});
    // (5,5) is in the hole, (4,5) on its edge, (0,0) on the exterior's corner.
    assert_eq!(idx.candidates(&Filter::from_value(holed.clone()).expect("valid")), Some(vec![1, 6]));
    check(&idx, &points, &holed, 0);
    let pacific = json!({"must": [{"key": "g", "geo_bounding_box": {"top_left": {"lon": 170.0, "lat": 10.0}, "bottom_right": {"lon": -170.0, "lat": -10.0}}}]});
    assert_eq!(idx.candidates(&Filter::from_value(pacific.clone()).expect("valid")), Some(vec![3, 4]));
    check(&idx, &points, &pacific, 0);
    let across =
        json!({"must": [{"key": "g", "geo_radius": {"center": {"lon": 180.0, "lat": 0.0}, "radius": 60_000.0}}]});
    assert_eq!(idx.candidates(&Filter::from_value(across.clone()).expect("valid")), Some(vec![3, 4]));
    // A geo condition on a non-geo index, or a match on a geo index, is not the index's to answer.
    let mut other = PayloadIndex::new();
    other.create_field("g", FieldType::Keyword, points.iter().enumerate().map(|(i, p)| (i as u32, p.as_ref())));
    assert_eq!(other.candidates(&Filter::from_value(across).expect("valid")), None);
    let m = json!({"must": [{"key": "g", "match": {"value": "x"}}]});
    assert_eq!(idx.candidates(&Filter::from_value(m).expect("valid")), None);
}
