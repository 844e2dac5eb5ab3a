//! A target's extra request headers, kept as a sorted list rather than a map.
//!
//! A job has a handful of headers at most, and a million jobs each holding a B-tree node
//! (room for eleven pairs, allocated for one) cost half a kilobyte apiece. [`Headers`] holds
//! exactly its pairs, sorted by name, and reads and writes as the JSON object users write.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Header names and values, names unique and in order, as a JSON object on the wire. Names and
/// values of up to 24 bytes (most of them) sit inside the pair, with no allocation of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Pair>);

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// How many headers there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The pairs with their values writable, in name order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut CompactString)> {
        self.0.iter_mut().map(|(n, v)| (n.as_str(), v))
    }

    /// The values, in name order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(_, v)| v.as_str())
    }

    /// The value of header `name` (compared exactly, as a map key would be).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| self.0[i].1.as_str())
    }

    /// Sets header `name` to `value`, returning the value it replaced.
    pub fn insert(&mut self, name: impl Into<CompactString>, value: impl Into<CompactString>) -> Option<CompactString> {
        let name = name.into();
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value.into())),
            Err(i) => {
                self.0.insert(i, (name, value.into()));
                None
            }
        }
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }
}

impl<N: Into<CompactString>, V: Into<CompactString>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, pairs: I) {
        for (name, value) in pairs {
            self.insert(name, value);
        }
    }
}

impl<N: Into<CompactString>, V: Into<CompactString>> FromIterator<(N, V)> for Headers {
    /// Later pairs replace earlier ones of the same name, as in a map.
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Headers {
        let map: BTreeMap<CompactString, CompactString> =
            pairs.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        Headers::from(map)
    }
}

impl From<BTreeMap<CompactString, CompactString>> for Headers {
    fn from(map: BTreeMap<CompactString, CompactString>) -> Headers {
        let mut pairs: Vec<_> = map.into_iter().collect();
        pairs.shrink_to_fit();
        Headers(pairs)
    }
}

impl From<BTreeMap<String, String>> for Headers {
    fn from(map: BTreeMap<String, String>) -> Headers {
        map.into_iter().collect()
    }
}

type Pair = (CompactString, CompactString);

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, Pair>, fn(&'a Pair) -> (&'a str, &'a str)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl std::ops::Index<&str> for Headers {
    type Output = CompactString;

    /// The value of header `name`; panics when there is none, as a map's index does (tests and
    /// callers that have just checked).
    fn index(&self, name: &str) -> &CompactString {
        match self.position(name) {
            Ok(i) => &self.0[i].1,
            Err(_) => panic!("no header {name}"),
        }
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Headers {
    /// A JSON object; a name given twice keeps its last value, as before this type.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        BTreeMap::<CompactString, CompactString>::deserialize(d).map(Headers::from)
    }
}

impl utoipa::PartialSchema for Headers {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Object)
            .additional_properties(Some(
                utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String),
            ))
            .into()
    }
}

impl utoipa::ToSchema for Headers {}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Headers {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn headers_stay_sorted_and_unique_by_name() {
        let mut h = pairs(&[("X-B", "2"), ("X-A", "1"), ("X-B", "3")]);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("X-A", "1"), ("X-B", "3")]);
        assert_eq!(h.insert("X-A", "4"), Some("1".into()));
        assert_eq!(h.insert("X-0", "0"), None);
        assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["X-0", "X-A", "X-B"]);
        assert_eq!((h.get("X-A"), h.get("x-a")), (Some("4"), None));
        assert_eq!(h["X-B"], "3");
    }

    #[test]
    fn headers_read_and_write_as_the_json_object_a_map_did() {
        let json = r#"{"Content-Type":"application/json","Authorization":"Bearer t","Content-Type":"text/plain"}"#;
        let h: Headers = serde_json::from_str(json).unwrap();
        let map: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&h).unwrap(), serde_json::to_string(&map).unwrap());
        assert_eq!(h, Headers::from(map));
        assert!(serde_json::from_str::<Headers>(r#"{"A":1}"#).is_err(), "values are strings");
    }
}
