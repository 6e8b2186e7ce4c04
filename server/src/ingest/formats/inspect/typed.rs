//! Typed parsing: what caplens keeps of a log, without a `Value` tree of the rest. The pieces
//! the header, sample and output readers share: [`Scalar`] (a JSON leaf), [`Fields`] (an object
//! of which a type keeps some fields) and the `other_kinds!` visitor methods.

use crate::ingest::limits::{KeptBudget, KeptKey, VALUE_COST};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A JSON leaf as a typed field sees it: the leaf, or the kind of the list or object found
/// instead (skipped unparsed). Text is charged to the record's [`KeptBudget`].
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(String),
    List,
    Object,
}

impl Scalar {
    pub(super) fn text(self) -> Option<String> {
        match self {
            Scalar::Text(t) => Some(t),
            _ => None,
        }
    }
    /// As `Value::as_f64`.
    pub(super) fn number(&self) -> Option<f64> {
        match *self {
            Scalar::Int(i) => Some(i as f64),
            Scalar::UInt(u) => Some(u as f64),
            Scalar::Float(f) => Some(f),
            _ => None,
        }
    }
    /// As `Value::as_i64`.
    pub(super) fn integer(&self) -> Option<i64> {
        match *self {
            Scalar::Int(i) => Some(i),
            Scalar::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }
    /// As [`kind`](crate::ingest::formats::common::kind) says of a `Value`.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) | Scalar::UInt(_) | Scalar::Float(_) => "a number",
            Scalar::Text(_) => "a string",
            Scalar::List => "a list",
            Scalar::Object => "an object",
        }
    }
}

/// Reads a [`Scalar`], charging its text to the budget (`Null` once the budget is spent).
#[derive(Clone, Copy)]
pub(super) struct ScalarSeed<'b>(pub(super) &'b KeptBudget);

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_> {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(if self.0.charge(VALUE_COST + v.len() as u64) {
            Scalar::Text(v.to_owned())
        } else {
            Scalar::Null
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// An object of which a type keeps some fields ([`Fields::field`]) and skips the others
/// unparsed. Anything but an object reads as the type's default (as `Value::get` finds nothing
/// in it).
pub(super) trait Fields: Default {
    /// Reads the value of `key` when the type keeps it; `false` to have it skipped.
    fn field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        budget: &KeptBudget,
    ) -> Result<bool, A::Error>;
}

pub(super) struct ObjectSeed<'b, T>(&'b KeptBudget, std::marker::PhantomData<T>);

pub(super) fn object<T: Fields>(budget: &KeptBudget) -> ObjectSeed<'_, T> {
    ObjectSeed(budget, std::marker::PhantomData)
}

impl<'de, T: Fields> DeserializeSeed<'de> for ObjectSeed<'_, T> {
    type Value = T;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Fields> Visitor<'de> for ObjectSeed<'_, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut fields = T::default();
        while let Some(key) = map.next_key_seed(KeptKey(self.0))? {
            if !fields.field(&key, &mut map, self.0)? {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(fields)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(T::default())
    }
    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<T, E> {
        Ok(T::default())
    }
}

/// The kind of value a typed visitor got instead of the one it reads (as
/// [`kind`](crate::ingest::formats::common::kind) names it); lists and objects are skipped.
macro_rules! other_kinds {
    ($value:ty, $wrap:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$value, E> {
            Ok($wrap("a boolean"))
        }
        fn visit_i64<E>(self, _: i64) -> Result<$value, E> {
            Ok($wrap("a number"))
        }
        fn visit_u64<E>(self, _: u64) -> Result<$value, E> {
            Ok($wrap("a number"))
        }
        fn visit_f64<E>(self, _: f64) -> Result<$value, E> {
            Ok($wrap("a number"))
        }
        fn visit_str<E>(self, _: &str) -> Result<$value, E> {
            Ok($wrap("a string"))
        }
    };
}

pub(super) use other_kinds;
