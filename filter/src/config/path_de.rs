//! Deserializes the configuration out of parsed JSON, naming the field of any
//! error (`auth.remote_jwks.cluster`, `mcp_paths[0]`, `.` for the whole).
//!
//! Hand-written rather than `serde_path_to_error`: that crate wraps every
//! visitor of every configuration type in a generic tracking visitor, which
//! came to ~110 KB of the 1 MiB `.wasm` for code that runs once, at load.
//! Here the path rides on the deserializer (a borrowed chain of keys and
//! indices) and visitors stay the derived ones. Owns only that; validation
//! of values stays with each feature's `compile()`.

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;
use std::fmt;

/// Where a value sits in the configuration.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("."),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(Path::Root, i) => write!(f, "[{i}]"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// A deserialization error and the field it is about (set where it arose).
#[derive(Debug)]
pub struct PathError {
    pub path: Option<String>,
    pub message: String,
}

impl PathError {
    fn at(mut self, path: &Path<'_>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
        }
        self
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PathError {}

impl de::Error for PathError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        PathError {
            path: None,
            message: msg.to_string(),
        }
    }
}

/// `T` out of `value`; an error names its field.
pub fn from_value<T: de::DeserializeOwned>(value: &Value) -> Result<T, PathError> {
    T::deserialize(At {
        value,
        path: &Path::Root,
    })
    .map_err(|e| e.at(&Path::Root))
}

struct At<'v, 'p> {
    value: &'v Value,
    path: &'p Path<'p>,
}

impl<'de> de::Deserializer<'de> for At<'de, '_> {
    type Error = PathError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let path = self.path;
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items {
                items: items.iter(),
                index: 0,
                path,
            }),
            Value::Object(map) => visitor.visit_map(Entries {
                entries: map.iter(),
                pending: None,
                path,
            }),
        };
        result.map_err(|e| e.at(path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PathError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        let path = self.path;
        match self.value {
            // Unit variants, as the configuration spells them.
            Value::String(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: PathError| e.at(path)),
            _ => Err(<PathError as de::Error>::custom("expected a string").at(path)),
        }
    }

    // A visitor is only offered the JSON type it asks for; anything else is
    // the error its default would give. Forwarding these to
    // `deserialize_any` would compile every arm (a struct's `visit_seq`,
    // a number's `visit_map`...) for every configuration type: dead code,
    // tens of KB of the .wasm.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PathError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let path = self.path;
        match self.value {
            Value::Object(map) => visitor
                .visit_map(Entries {
                    entries: map.iter(),
                    pending: None,
                    path,
                })
                .map_err(|e| e.at(path)),
            other => Err(self.mismatch(other, &visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let path = self.path;
        match self.value {
            Value::Array(items) => visitor
                .visit_seq(Items {
                    items: items.iter(),
                    index: 0,
                    path,
                })
                .map_err(|e| e.at(path)),
            other => Err(self.mismatch(other, &visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        match self.value {
            Value::String(s) => visitor
                .visit_borrowed_str(s)
                .map_err(|e: PathError| e.at(self.path)),
            other => Err(self.mismatch(other, &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        match self.value {
            Value::Bool(b) => visitor
                .visit_bool(*b)
                .map_err(|e: PathError| e.at(self.path)),
            other => Err(self.mismatch(other, &visitor)),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.number(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.number(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.number(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.number(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        self.number(visitor)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i128 u128 f32 f64 char
        bytes byte_buf unit unit_struct tuple tuple_struct
        identifier ignored_any
    }
}

impl<'de> At<'de, '_> {
    fn number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PathError> {
        let result = match self.value {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                (None, None) => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            other => return Err(self.mismatch(other, &visitor)),
        };
        result.map_err(|e: PathError| e.at(self.path))
    }

    /// The error a visitor gives for a JSON type it does not take.
    fn mismatch(&self, value: &Value, expected: &dyn de::Expected) -> PathError {
        let unexpected = match value {
            Value::Null => de::Unexpected::Unit,
            Value::Bool(b) => de::Unexpected::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => de::Unexpected::Unsigned(u),
                (None, Some(i)) => de::Unexpected::Signed(i),
                (None, None) => de::Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => de::Unexpected::Str(s),
            Value::Array(_) => de::Unexpected::Seq,
            Value::Object(_) => de::Unexpected::Map,
        };
        <PathError as de::Error>::invalid_type(unexpected, expected).at(self.path)
    }
}

struct Items<'v, 'p> {
    items: std::slice::Iter<'v, Value>,
    index: usize,
    path: &'p Path<'p>,
}

impl<'de> SeqAccess<'de> for Items<'de, '_> {
    type Error = PathError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PathError> {
        let Some(value) = self.items.next() else {
            return Ok(None);
        };
        let path = Path::Index(self.path, self.index);
        self.index += 1;
        seed.deserialize(At { value, path: &path })
            .map(Some)
            .map_err(|e| e.at(&path))
    }
}

struct Entries<'v, 'p> {
    entries: serde_json::map::Iter<'v>,
    pending: Option<(&'v str, &'v Value)>,
    path: &'p Path<'p>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = PathError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PathError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        let path = Path::Key(self.path, key);
        let key: de::value::BorrowedStrDeserializer<'de, PathError> =
            de::value::BorrowedStrDeserializer::new(key);
        seed.deserialize(key).map(Some).map_err(|e| e.at(&path))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PathError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("a value without its key"));
        };
        let path = Path::Key(self.path, key);
        seed.deserialize(At { value, path: &path })
            .map_err(|e| e.at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        port: u16,
        mode: Option<Mode>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Pass,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
        list: Option<Vec<Inner>>,
    }

    fn error(json: &str) -> (String, String) {
        let value: Value = serde_json::from_str(json).unwrap();
        let e = from_value::<Outer>(&value).unwrap_err();
        (e.path.unwrap(), e.message)
    }

    #[test]
    fn errors_name_the_innermost_field() {
        assert_eq!(error(r#"{"name":1}"#).0, "name");
        assert_eq!(
            error(r#"{"name":"a","inner":{"port":"x"}}"#).0,
            "inner.port"
        );
        assert_eq!(
            error(r#"{"name":"a","inner":{"port":1,"x":1}}"#).0,
            "inner.x"
        );
        assert_eq!(
            error(r#"{"name":"a","inner":{"port":1,"mode":"no"}}"#).0,
            "inner.mode"
        );
        assert_eq!(
            error(r#"{"name":"a","list":[{"port":1},{"port":70000}]}"#).0,
            "list[1].port"
        );
        assert_eq!(error(r#"{"name":"a","inner":{}}"#).0, "inner");
        let (path, message) = error(r#"{"nam":"a"}"#);
        assert_eq!(path, "nam");
        assert!(message.contains("unknown field `nam`"), "{message}");
        assert_eq!(error(r#"[]"#).0, ".");
    }

    #[test]
    fn valid_values_come_through() {
        let value: Value =
            serde_json::from_str(r#"{"name":"a","inner":{"port":8,"mode":"pass"},"list":[]}"#)
                .unwrap();
        let outer: Outer = from_value(&value).unwrap();
        assert_eq!(outer.name, "a");
        assert!(matches!(
            outer.inner,
            Some(Inner {
                port: 8,
                mode: Some(Mode::Pass)
            })
        ));
    }
}
