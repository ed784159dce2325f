//! Geo conditions, as Qdrant evaluates them.
//!
//! A payload geo point is an object `{"lon": .., "lat": ..}` (other fields ignored); an
//! array of such objects matches if any of them does.
//!
//! * `geo_bounding_box {top_left, bottom_right}`: strictly inside; when `top_left.lon >
//!   bottom_right.lon` the box crosses the antimeridian.
//! * `geo_radius {center, radius}`: haversine distance below `radius` meters, on a sphere
//!   of the mean Earth radius (6 371 008.8 m, as Qdrant's `geo` crate).
//! * `geo_polygon {exterior, interiors?}`: strictly inside the exterior ring and outside
//!   (and not on) every interior ring. Rings are closed (first point = last) with at least
//!   4 points, as Qdrant requires; coordinates are treated as planar (lon = x, lat = y).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    pub lon: f64,
    pub lat: f64,
}

/// `geo_bounding_box`
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoBoundingBox {
    pub top_left: GeoPoint,
    pub bottom_right: GeoPoint,
}

/// `geo_radius`; `radius` is in meters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoRadius {
    pub center: GeoPoint,
    pub radius: f64,
}

/// A closed ring of points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoLineString {
    pub points: Vec<GeoPoint>,
}

/// `geo_polygon`: an exterior ring and optional holes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPolygon {
    pub exterior: GeoLineString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interiors: Option<Vec<GeoLineString>>,
}

/// Qdrant's (the `geo` crate's) mean Earth radius, in meters.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

impl GeoPoint {
    /// Reads a payload value as a geo point: an object with finite numeric `lon` and `lat`.
    pub fn from_payload(v: &Value) -> Option<GeoPoint> {
        let obj = v.as_object()?;
        let lon = obj.get("lon")?.as_f64()?;
        let lat = obj.get("lat")?.as_f64()?;
        (lon.is_finite() && lat.is_finite()).then_some(GeoPoint { lon, lat })
    }

    /// Checks the coordinate ranges (lon in [-180, 180], lat in [-90, 90]).
    pub fn validate(&self) -> Result<(), String> {
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(format!("longitude {} is outside [-180, 180]", self.lon));
        }
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(format!("latitude {} is outside [-90, 90]", self.lat));
        }
        Ok(())
    }

    /// Haversine distance in meters.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (t1, t2) = (self.lat.to_radians(), other.lat.to_radians());
        let dt = (other.lat - self.lat).to_radians();
        let dl = (other.lon - self.lon).to_radians();
        let a = (dt / 2.0).sin().powi(2) + t1.cos() * t2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

impl GeoBoundingBox {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        let (tl, br) = (&self.top_left, &self.bottom_right);
        let lon_ok = if tl.lon > br.lon {
            // Crosses the antimeridian.
            p.lon > tl.lon || p.lon < br.lon
        } else {
            tl.lon < p.lon && p.lon < br.lon
        };
        lon_ok && br.lat < p.lat && p.lat < tl.lat
    }

    pub fn validate(&self) -> Result<(), String> {
        self.top_left.validate().map_err(|e| format!("top_left: {e}"))?;
        self.bottom_right.validate().map_err(|e| format!("bottom_right: {e}"))
    }
}

impl GeoRadius {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        self.center.distance_m(p) < self.radius
    }

    pub fn validate(&self) -> Result<(), String> {
        self.center.validate().map_err(|e| format!("center: {e}"))?;
        if !self.radius.is_finite() {
            return Err("radius must be a finite number of meters".into());
        }
        Ok(())
    }
}

impl GeoLineString {
    fn validate(&self, what: &str) -> Result<(), String> {
        if self.points.len() < 4 {
            return Err(format!("{what} must have at least 4 points, got {}", self.points.len()));
        }
        for (i, p) in self.points.iter().enumerate() {
            p.validate().map_err(|e| format!("{what}.points[{i}]: {e}"))?;
        }
        let (first, last) = (self.points[0], self.points[self.points.len() - 1]);
        if (first.lat - last.lat).abs() > f64::EPSILON || (first.lon - last.lon).abs() > f64::EPSILON {
            return Err(format!("{what} is not closed: its first and last points must be the same"));
        }
        Ok(())
    }

    /// Whether `p` lies on one of the ring's segments.
    fn on_boundary(&self, p: &GeoPoint) -> bool {
        self.points.windows(2).any(|w| {
            let (a, b) = (w[0], w[1]);
            let cross = (b.lon - a.lon) * (p.lat - a.lat) - (b.lat - a.lat) * (p.lon - a.lon);
            cross == 0.0
                && p.lon >= a.lon.min(b.lon)
                && p.lon <= a.lon.max(b.lon)
                && p.lat >= a.lat.min(b.lat)
                && p.lat <= a.lat.max(b.lat)
        })
    }

    /// Even-odd ray casting; the boundary is handled separately.
    fn encloses(&self, p: &GeoPoint) -> bool {
        let mut inside = false;
        for w in self.points.windows(2) {
            let (a, b) = (w[0], w[1]);
            if (a.lat > p.lat) != (b.lat > p.lat) {
                let x = a.lon + (p.lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon);
                if p.lon < x {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

impl GeoPolygon {
    pub fn contains(&self, p: &GeoPoint) -> bool {
        if self.exterior.on_boundary(p) || !self.exterior.encloses(p) {
            return false;
        }
        self.interiors.iter().flatten().all(|hole| !hole.on_boundary(p) && !hole.encloses(p))
    }

    pub fn validate(&self) -> Result<(), String> {
        self.exterior.validate("exterior")?;
        for (i, ring) in self.interiors.iter().flatten().enumerate() {
            ring.validate(&format!("interiors[{i}]"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(lon: f64, lat: f64) -> GeoPoint {
        GeoPoint { lon, lat }
    }

    #[test]
    fn radius_uses_haversine_meters() {
        let berlin = pt(13.413637435864272, 52.52197645);
        let moscow = pt(37.62137960067377, 55.7536283);
        let d = berlin.distance_m(&moscow);
        assert!((1_600_000.0..1_620_000.0).contains(&d), "{d}");
        let near = GeoRadius { center: pt(13.423637, 52.511), radius: 2000.0 };
        assert!(near.contains(&berlin));
        assert!(!GeoRadius { center: pt(20.423637, 52.511), radius: 2000.0 }.contains(&berlin));
    }

    #[test]
    fn bounding_box_and_antimeridian() {
        let berlin_box = GeoBoundingBox { top_left: pt(13.08835, 52.67551), bottom_right: pt(13.76116, 52.33826) };
        assert!(berlin_box.contains(&pt(13.404954, 52.520008)));
        assert!(!berlin_box.contains(&pt(37.6, 55.7)));
        let pacific = GeoBoundingBox { top_left: pt(170.0, 10.0), bottom_right: pt(-170.0, -10.0) };
        assert!(pacific.contains(&pt(179.0, 0.0)));
        assert!(pacific.contains(&pt(-175.0, 0.0)));
        assert!(!pacific.contains(&pt(0.0, 0.0)));
    }

    #[test]
    fn polygon_with_a_hole() {
        let ring = |pts: &[(f64, f64)]| GeoLineString { points: pts.iter().map(|&(x, y)| pt(x, y)).collect() };
        let poly = GeoPolygon {
            exterior: ring(&[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]),
            interiors: Some(vec![ring(&[(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0), (4.0, 4.0)])]),
        };
        poly.validate().unwrap();
        assert!(poly.contains(&pt(1.0, 1.0)));
        assert!(poly.contains(&pt(9.9, 5.0)));
        assert!(!poly.contains(&pt(5.0, 5.0)), "inside the hole");
        assert!(!poly.contains(&pt(4.0, 5.0)), "on the hole's edge");
        assert!(!poly.contains(&pt(0.0, 5.0)), "on the exterior edge");
        assert!(!poly.contains(&pt(11.0, 5.0)));
        let open = GeoPolygon { exterior: ring(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]), interiors: None };
        assert!(open.validate().unwrap_err().contains("not closed"));
        let small = GeoPolygon { exterior: ring(&[(0.0, 0.0), (1.0, 0.0), (0.0, 0.0)]), interiors: None };
        assert!(small.validate().unwrap_err().contains("at least 4 points, got 3"));
    }

    #[test]
    fn payload_points() {
        assert_eq!(GeoPoint::from_payload(&serde_json::json!({"lon": 1, "lat": 2.5, "x": 0})), Some(pt(1.0, 2.5)));
        assert_eq!(GeoPoint::from_payload(&serde_json::json!({"lon": "1", "lat": 2})), None);
        assert_eq!(GeoPoint::from_payload(&serde_json::json!([1, 2])), None);
        assert!(pt(181.0, 0.0).validate().unwrap_err().contains("longitude 181"));
    }
}
