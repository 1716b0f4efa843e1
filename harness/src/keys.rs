//! The keys a `#[derive(Deserialize)]` struct accepts, read from the derive
//! itself: the JSON Schemas (`sockspec schema`) list exactly the keys the
//! loader reads, so the two cannot drift apart.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A deserializer that only records the field list a derived struct hands
/// to `deserialize_struct`, then stops.
struct Recorder<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// The keys struct `T` reads (after `rename`), in declaration order; empty
/// when `T` is not a plain derived struct.
pub fn of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct S {
        a: u8,
        #[serde(rename = "where")]
        select: Option<String>,
    }

    #[test]
    fn the_derived_keys_with_renames() {
        assert_eq!(super::of::<S>(), ["a", "where"]);
        assert!(super::of::<u8>().is_empty());
    }
}
