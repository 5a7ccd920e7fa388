//! Serde forms for times and days that read well in JSON and stay small in binary formats.
//!
//! The same `Entry` type is both the documented export schema (RFC 3339 strings) and what the
//! control protocol carries (postcard); `is_human_readable` tells the two apart, so a frame does
//! not pay 24 bytes for every timestamp.

/// `jiff::Timestamp` as RFC 3339 text, or milliseconds since the epoch in binary.
pub mod timestamp {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes a timestamp.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(
                &t.round(jiff::Unit::Millisecond)
                    .map_err(serde::ser::Error::custom)?,
            )
        } else {
            s.serialize_i64(t.as_millisecond())
        }
    }

    /// Deserializes a timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse::<Timestamp>()
                .map_err(|e| D::Error::custom(format!("bad timestamp {s:?}: {e}")))
        } else {
            let ms = i64::deserialize(d)?;
            Timestamp::from_millisecond(ms).map_err(D::Error::custom)
        }
    }
}

/// `Option<jiff::Timestamp>` in the same forms as [`timestamp`].
pub mod opt_timestamp {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrap(#[serde(with = "super::timestamp")] Timestamp);

    /// Serializes an optional timestamp.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.map(Wrap).serialize(s)
    }

    /// Deserializes an optional timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

/// `jiff::civil::Date` as `YYYY-MM-DD`, or the number `YYYYMMDD` in binary.
pub mod date {
    use jiff::civil::Date;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Serializes a date.
    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(d)
        } else {
            s.serialize_i32(
                i32::from(d.year()) * 10_000 + i32::from(d.month()) * 100 + i32::from(d.day()),
            )
        }
    }

    /// Deserializes a date.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse::<Date>()
                .map_err(|e| D::Error::custom(format!("bad date {s:?}: {e}")))
        } else {
            let n = i32::deserialize(d)?;
            let (year, month, day) = (n / 10_000, (n / 100) % 100, n % 100);
            let year = i16::try_from(year).map_err(D::Error::custom)?;
            let month = i8::try_from(month).map_err(D::Error::custom)?;
            let day = i8::try_from(day).map_err(D::Error::custom)?;
            Date::new(year, month, day).map_err(D::Error::custom)
        }
    }
}
