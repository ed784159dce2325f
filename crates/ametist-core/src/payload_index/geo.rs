//! The geo index's grid: which cells a point falls in, and which cells a geo condition
//! can reach.
//!
//! A geo field index keys each point by the cell of a fixed grid (`CELL_DEG` degrees of
//! latitude by as many of longitude) it lies in, and keeps the point itself to check it
//! exactly. A condition is answered by listing the points of every cell its shape's
//! bounding region touches (a margin of one cell on each side, so that rounding at a cell
//! edge never loses a point) and checking each with the same `contains` the payload filter
//! uses: the index's answer is exact, and its posting counts bound the matches from above.
//!
//! Points outside the valid coordinate ranges (a payload may hold `{"lon": 500, "lat": 0}`;
//! the filter evaluates it as it is) go to one `OUTSIDE` row that every condition lists,
//! so that the index never answers differently from the filter.

use crate::filter::{FieldCondition, GeoBoundingBox, GeoPoint, GeoPolygon, GeoRadius};

/// Cell size in degrees: 0.1° is about 11 km of latitude, fine enough for a city-scale
/// query to list few cells' worth of points, coarse enough that a world-sized one walks
/// at most 1 800 rows.
const CELL_DEG: f64 = 0.1;
const ROWS: i32 = (180.0 / CELL_DEG) as i32;
const COLS: i32 = (360.0 / CELL_DEG) as i32;
/// The row of points with out-of-range coordinates.
pub(super) const OUTSIDE: i32 = i32::MIN;

/// Mean Earth radius in meters, as the filter's haversine uses (Qdrant's `geo` crate).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A geo condition's shape.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape<'a> {
    Box(&'a GeoBoundingBox),
    Radius(&'a GeoRadius),
    Polygon(&'a GeoPolygon),
}

/// Cells `col_lo..=col_hi` of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub row: i32,
    pub col_lo: i32,
    pub col_hi: i32,
}

/// The `(row, col)` cell of a point, or `(OUTSIDE, 0)` for out-of-range coordinates.
pub(super) fn cell(p: &GeoPoint) -> (i32, i32) {
    if !(-90.0..=90.0).contains(&p.lat) || !(-180.0..=180.0).contains(&p.lon) {
        return (OUTSIDE, 0);
    }
    (row_of(p.lat), col_of(p.lon))
}

fn row_of(lat: f64) -> i32 {
    (((lat + 90.0) / CELL_DEG).floor() as i32).clamp(0, ROWS - 1)
}

fn col_of(lon: f64) -> i32 {
    (((lon + 180.0) / CELL_DEG).floor() as i32).clamp(0, COLS - 1)
}

impl<'a> Shape<'a> {
    /// The geo shape of a condition, if it is a geo condition.
    pub fn of(c: &'a FieldCondition) -> Option<Shape<'a>> {
        if c.r#match.is_some() || c.range.is_some() {
            return None;
        }
        c.geo_bounding_box
            .as_ref()
            .map(Shape::Box)
            .or_else(|| c.geo_radius.as_ref().map(Shape::Radius))
            .or_else(|| c.geo_polygon.as_ref().map(Shape::Polygon))
    }

    /// Exactly the filter's test (see `filter::geo`).
    pub fn contains(&self, p: &GeoPoint) -> bool {
        match self {
            Shape::Box(b) => b.contains(p),
            Shape::Radius(r) => r.contains(p),
            Shape::Polygon(g) => g.contains(p),
        }
    }

    /// The grid cells that hold every point the shape can contain (and more), as row
    /// spans; the `OUTSIDE` row is always included.
    pub fn spans(&self) -> Vec<Span> {
        let mut out = vec![Span { row: OUTSIDE, col_lo: 0, col_hi: 0 }];
        let Some((lat_lo, lat_hi, lons)) = self.region() else { return out };
        let (r_lo, r_hi) = ((row_of(lat_lo) - 1).max(0), (row_of(lat_hi) + 1).min(ROWS - 1));
        for row in r_lo..=r_hi {
            for &(lon_lo, lon_hi) in &lons {
                let (c_lo, c_hi) = ((col_of(lon_lo) - 1).max(0), (col_of(lon_hi) + 1).min(COLS - 1));
                if c_lo <= c_hi {
                    out.push(Span { row, col_lo: c_lo, col_hi: c_hi });
                }
            }
        }
        out
    }

    /// A latitude interval and one or two longitude intervals (two when the region
    /// crosses the antimeridian) that enclose the shape; `None` when it holds no point.
    #[allow(clippy::type_complexity)]
    fn region(&self) -> Option<(f64, f64, Vec<(f64, f64)>)> {
        const ALL: (f64, f64) = (-180.0, 180.0);
        match self {
            Shape::Box(b) => {
                let (tl, br) = (&b.top_left, &b.bottom_right);
                if br.lat >= tl.lat {
                    return None;
                }
                // Qdrant's rule: a box whose left edge is east of its right edge crosses
                // the antimeridian.
                let lons =
                    if tl.lon > br.lon { vec![(tl.lon, 180.0), (-180.0, br.lon)] } else { vec![(tl.lon, br.lon)] };
                Some((br.lat, tl.lat, lons))
            }
            Shape::Radius(r) => {
                if r.radius.is_nan() || r.radius <= 0.0 {
                    return None;
                }
                let d = r.radius / EARTH_RADIUS_M;
                if d >= std::f64::consts::PI {
                    return Some((-90.0, 90.0, vec![ALL]));
                }
                let dlat = d.to_degrees();
                let (lat_lo, lat_hi) = (r.center.lat - dlat, r.center.lat + dlat);
                if lat_lo <= -90.0 || lat_hi >= 90.0 {
                    // The circle holds a pole: every longitude.
                    return Some((lat_lo.max(-90.0), lat_hi.min(90.0), vec![ALL]));
                }
                // The widest longitude offset on a circle of angular radius `d` around a
                // point at latitude φ is asin(sin d / cos φ) (its tangent meridians).
                let s = d.sin() / r.center.lat.to_radians().cos();
                if s >= 1.0 {
                    return Some((lat_lo, lat_hi, vec![ALL]));
                }
                let dlon = s.asin().to_degrees();
                let (lo, hi) = (r.center.lon - dlon, r.center.lon + dlon);
                let lons = if lo < -180.0 {
                    vec![(-180.0, hi), (lo + 360.0, 180.0)]
                } else if hi > 180.0 {
                    vec![(lo, 180.0), (-180.0, hi - 360.0)]
                } else {
                    vec![(lo, hi)]
                };
                Some((lat_lo, lat_hi, lons))
            }
            // Polygons are planar (lon = x, lat = y): the exterior's bounding box holds them.
            Shape::Polygon(g) => {
                let pts = &g.exterior.points;
                let fold = |f: fn(&GeoPoint) -> f64| {
                    pts.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
                };
                let (lon_lo, lon_hi) = fold(|p| p.lon);
                let (lat_lo, lat_hi) = fold(|p| p.lat);
                (lat_lo <= lat_hi).then(|| (lat_lo, lat_hi, vec![(lon_lo, lon_hi)]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint { lon, lat }
    }

    fn in_spans(spans: &[Span], p: &GeoPoint) -> bool {
        let (row, col) = cell(p);
        spans.iter().any(|s| s.row == row && s.col_lo <= col && col <= s.col_hi)
    }

    #[test]
    fn cells_cover_the_edges() {
        assert_eq!(cell(&pt(-180.0, -90.0)), (0, 0));
        assert_eq!(cell(&pt(180.0, 90.0)), (ROWS - 1, COLS - 1));
        assert_eq!(cell(&pt(181.0, 0.0)).0, OUTSIDE);
        let r = GeoRadius { center: pt(179.9, 0.0), radius: 50_000.0 };
        let spans = Shape::Radius(&r).spans();
        assert!(in_spans(&spans, &pt(-179.9, 0.0)), "across the antimeridian");
        assert!(!in_spans(&spans, &pt(0.0, 0.0)));
        let polar = GeoRadius { center: pt(0.0, 89.9), radius: 50_000.0 };
        assert!(in_spans(&Shape::Radius(&polar).spans(), &pt(180.0, 89.9)), "around the pole");
    }
}
