//! A duration that travels as a human string (`"60s"`, `"1h30m"`) in JSON.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] written and read as `500ms`, `30s`, `5m`, `2h`, `1d` or a concatenation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of `n` seconds.
    pub const fn secs(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n))
    }

    /// The duration in whole milliseconds, saturating.
    pub fn as_millis(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// A duration of `n` days.
    pub const fn days(n: u64) -> Self {
        HumanDuration(Duration::from_secs(n.saturating_mul(86_400)))
    }

    /// The duration as a chrono duration in whole milliseconds, saturating at
    /// `TimeDelta::MAX`. Adding it to an instant can still overflow: use
    /// `belfry_schedule::instant::saturating_add`.
    pub fn chrono(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::try_milliseconds(self.as_millis()).unwrap_or(chrono::TimeDelta::MAX)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&belfry_schedule::format_duration(self.0))
    }
}

impl utoipa::PartialSchema for HumanDuration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(r"^\s*([0-9]+(ms|s|m|h|d))+\s*$"))
            .description(Some("A duration: numbers with units ms, s, m, h, d, concatenated (`500ms`, `30s`, `1h30m`)."))
            .examples(["30s"])
            .into()
    }
}

impl utoipa::ToSchema for HumanDuration {}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        belfry_schedule::parse_duration(&s).map(HumanDuration).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_a_string() {
        let d: HumanDuration = serde_json::from_str("\"1h30m\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(5400));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h30m\"");
        assert!(serde_json::from_str::<HumanDuration>("\"10 parsecs\"").is_err());
    }

    #[test]
    fn converts_to_chrono_without_panicking() {
        assert_eq!(HumanDuration(Duration::MAX).chrono(), chrono::TimeDelta::MAX);
        assert_eq!(HumanDuration::days(2).chrono(), chrono::TimeDelta::days(2));
        let huge = serde_json::from_str::<HumanDuration>("\"100000000000000000000d\"").unwrap_err();
        assert!(huge.to_string().contains("too large"), "{huge}");
    }
}
