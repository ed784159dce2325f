//! Datetimes for `range` conditions (Qdrant's `DatetimeRange`), without a date library.
//!
//! Accepted spellings, as Qdrant documents them:
//!
//! * RFC 3339: `2023-02-08T10:49:00Z`, `2023-02-08T11:49:00+01:00`, with optional fractions
//!   of a second (`2023-02-08T10:49:00.123456Z`);
//! * without a time zone (UTC is assumed): `2023-02-08T10:49:00`, `2023-02-08 10:49:00`,
//!   without seconds `2023-02-08T10:49`;
//! * a date alone (midnight UTC): `2023-02-08`.
//!
//! Offsets may be written `+01:00`, `+0100` or `+01`. Payload strings are read with the same
//! rules; a payload value that is not a datetime never falls in a datetime range.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in UTC with nanosecond precision. Ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    nanos: u32,
}

impl DateTime {
    /// Builds an instant from seconds since the Unix epoch and nanoseconds (`< 1e9`).
    pub fn from_unix(secs: i64, nanos: u32) -> DateTime {
        assert!(nanos < 1_000_000_000, "nanoseconds must be below one second");
        DateTime { secs, nanos }
    }

    /// Seconds since the Unix epoch (rounded down).
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second.
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Parses one of the accepted spellings (see the module docs).
    pub fn parse(s: &str) -> Option<DateTime> {
        let mut p = Cursor { s: s.as_bytes(), i: 0 };
        let year = p.digits(4, 4)? as i64;
        p.byte(b'-')?;
        let month = p.digits(2, 2)? as u32;
        p.byte(b'-')?;
        let day = p.digits(2, 2)? as u32;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let mut secs = days_from_civil(year, month, day) * 86_400;
        let mut nanos = 0u32;
        if p.done() {
            return Some(DateTime { secs, nanos });
        }
        match p.next()? {
            b'T' | b't' | b' ' => {}
            _ => return None,
        }
        let hour = p.digits(2, 2)? as i64;
        p.byte(b':')?;
        let minute = p.digits(2, 2)? as i64;
        let mut second = 0i64;
        if p.peek() == Some(b':') {
            p.i += 1;
            second = p.digits(2, 2)? as i64;
            if p.peek() == Some(b'.') {
                p.i += 1;
                let start = p.i;
                let frac = p.digits(1, 18)?;
                let len = p.i - start;
                // Keep nanosecond precision; drop finer digits.
                nanos = if len <= 9 {
                    (frac * 10u64.pow((9 - len) as u32)) as u32
                } else {
                    (frac / 10u64.pow((len - 9) as u32)) as u32
                };
            }
        }
        // 60 is allowed for leap seconds, as RFC 3339 does; it rolls into the next minute.
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        secs += hour * 3600 + minute * 60 + second;
        if !p.done() {
            match p.next()? {
                b'Z' | b'z' => {}
                sign @ (b'+' | b'-') => {
                    let oh = p.digits(2, 2)? as i64;
                    let mut om = 0;
                    if p.peek() == Some(b':') {
                        p.i += 1;
                        om = p.digits(2, 2)? as i64;
                    } else if !p.done() {
                        om = p.digits(2, 2)? as i64;
                    }
                    if oh > 23 || om > 59 {
                        return None;
                    }
                    let offset = oh * 3600 + om * 60;
                    // Local time = UTC + offset, so UTC = local - offset.
                    secs -= if sign == b'+' { offset } else { -offset };
                }
                _ => return None,
            }
            if !p.done() {
                return None;
            }
        }
        Some(DateTime { secs, nanos })
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }
    fn byte(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }
    /// Reads between `min` and `max` ASCII digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<u64> {
        let start = self.i;
        let mut v: u64 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(b @ b'0'..=b'9') => {
                    v = v * 10 + u64::from(b - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i - start >= min).then_some(v)
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for DateTime {
    /// RFC 3339 in UTC: `2023-02-08T10:49:00Z`, with a fraction only when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(86_400);
        let rem = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)?;
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// The error of [`DateTime::from_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTimeParseError(pub String);

impl fmt::Display for DateTimeParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a datetime (expected RFC 3339 such as `2023-02-08T10:49:00Z`, \
             `2023-02-08T10:49:00`, `2023-02-08 10:49` or `2023-02-08`)",
            self.0
        )
    }
}

impl std::error::Error for DateTimeParseError {}

impl FromStr for DateTime {
    type Err = DateTimeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse(s).ok_or_else(|| DateTimeParseError(s.to_string()))
    }
}

impl Serialize for DateTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DateTime {
        DateTime::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn parses_documented_formats() {
        let base = dt("2023-02-08T10:49:00Z");
        assert_eq!(base.unix_seconds(), 1_675_853_340);
        assert_eq!(dt("2023-02-08T11:49:00+01:00"), base);
        assert_eq!(dt("2023-02-08T11:49:00+0100"), base);
        assert_eq!(dt("2023-02-08T09:49:00-01"), base);
        assert_eq!(dt("2023-02-08T10:49:00"), base);
        assert_eq!(dt("2023-02-08 10:49:00"), base);
        assert_eq!(dt("2023-02-08T10:49"), base);
        assert_eq!(dt("2023-02-08").unix_seconds(), 1_675_814_400);
        assert_eq!(dt("1970-01-01T00:00:00Z").unix_seconds(), 0);
        assert_eq!(dt("1969-12-31T23:59:59Z").unix_seconds(), -1);
        let frac = dt("2023-02-08T10:49:00.5Z");
        assert_eq!(frac.subsec_nanos(), 500_000_000);
        assert!(frac > base);
        assert_eq!(dt("2023-02-08T10:49:00.123456789123Z").subsec_nanos(), 123_456_789);
        assert_eq!(dt("2024-02-29").unix_seconds() + 86_400, dt("2024-03-01").unix_seconds());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2023",
            "2023-2-8",
            "2023-02-30",
            "2023-13-01",
            "2023-02-08T25:00",
            "2023-02-08T10",
            "2023-02-08T10:49:00Zjunk",
            "2023-02-08X10:49",
            "2023-02-08T10:49:00+25:00",
            "yesterday",
        ] {
            assert!(DateTime::parse(bad).is_none(), "{bad:?} should be rejected");
        }
        assert!("nope".parse::<DateTime>().unwrap_err().to_string().contains("`nope` is not a datetime"));
    }

    #[test]
    fn displays_rfc3339_and_round_trips() {
        for s in ["2023-02-08T10:49:00Z", "1969-07-20T20:17:40.25Z", "2000-02-29T00:00:00Z", "0001-01-01T00:00:00Z"] {
            assert_eq!(dt(s).to_string(), s);
            assert_eq!(dt(&dt(s).to_string()), dt(s));
        }
        assert_eq!(dt("2023-02-08T11:49:00+01:00").to_string(), "2023-02-08T10:49:00Z");
    }
}
