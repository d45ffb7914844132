//! The typed fast path: a `Serialize` value written straight into its wire item, with a `uuid`
//! stamped when it has none, and no [`Value`](serde_json::Value) in between.
//!
//! The value's top level is serialised through [`Stamp`], a serializer adapter that forwards a
//! map or struct to serde_json and watches its keys: if no string `uuid` was written, it adds
//! one before the closing brace. Anything it cannot do in one pass (a top level that is not a
//! map or struct, a `uuid` that is not a string) makes it bail out, and the caller takes the
//! `Value` path, which gives exactly the old result: an error for a non-object, an overwritten
//! `uuid` for a non-string one.

use alloc::string::String;
use core::cell::{Cell, RefCell};
use core::fmt;

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};

use crate::rng::Rng;

/// The item `{"payload":<value with uuid>}` (plus `"ephemeral":true`), as serde sees it.
pub(crate) struct TypedItem<'a, T: ?Sized> {
    pub(crate) payload: &'a T,
    pub(crate) ephemeral: bool,
    pub(crate) rng: &'a RefCell<Rng>,
    /// Set when the one-pass path could not serialise this value.
    pub(crate) bailed: &'a Cell<bool>,
}

impl<T: Serialize + ?Sized> Serialize for TypedItem<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut item = serializer.serialize_struct("Item", 2)?;
        item.serialize_field(
            "payload",
            &Payload {
                value: self.payload,
                rng: self.rng,
                bailed: self.bailed,
            },
        )?;
        if self.ephemeral {
            item.serialize_field("ephemeral", &true)?;
        }
        item.end()
    }
}

struct Payload<'a, T: ?Sized> {
    value: &'a T,
    rng: &'a RefCell<Rng>,
    bailed: &'a Cell<bool>,
}

impl<T: Serialize + ?Sized> Serialize for Payload<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Stamp {
            inner: serializer,
            rng: self.rng,
            bailed: self.bailed,
        })
    }
}

/// Forwards a top-level map or struct, stamping a `uuid` at its end when it had none.
struct Stamp<'a, S> {
    inner: S,
    rng: &'a RefCell<Rng>,
    bailed: &'a Cell<bool>,
}

impl<S: Serializer> Stamp<'_, S> {
    fn bail(&self) -> S::Error {
        self.bailed.set(true);
        ser::Error::custom("the typed path bails out; the Value path takes over")
    }
}

/// The `uuid` to add at the end of a top-level object that had no string one.
fn fresh_uuid(rng: &RefCell<Rng>) -> String {
    rng.borrow_mut().uuid_v4()
}

struct StampMap<'a, M> {
    inner: M,
    rng: &'a RefCell<Rng>,
    bailed: &'a Cell<bool>,
    next_is_uuid: bool,
    has_uuid: bool,
}

impl<M: SerializeMap> SerializeMap for StampMap<'_, M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_key<K: Serialize + ?Sized>(&mut self, key: &K) -> Result<(), M::Error> {
        self.next_is_uuid = key.serialize(IsStr(Some("uuid"))).unwrap_or(false);
        self.inner.serialize_key(key)
    }

    fn serialize_value<V: Serialize + ?Sized>(&mut self, value: &V) -> Result<(), M::Error> {
        if core::mem::take(&mut self.next_is_uuid) {
            if !value.serialize(IsStr(None)).unwrap_or(false) {
                self.bailed.set(true);
                return Err(ser::Error::custom("a uuid that is not a string"));
            }
            self.has_uuid = true;
        }
        self.inner.serialize_value(value)
    }

    fn end(mut self) -> Result<M::Ok, M::Error> {
        if !self.has_uuid {
            let uuid = fresh_uuid(self.rng);
            self.inner.serialize_entry("uuid", &uuid)?;
        }
        self.inner.end()
    }
}

struct StampStruct<'a, T> {
    inner: T,
    rng: &'a RefCell<Rng>,
    bailed: &'a Cell<bool>,
    has_uuid: bool,
}

impl<T: SerializeStruct> SerializeStruct for StampStruct<'_, T> {
    type Ok = T::Ok;
    type Error = T::Error;

    fn serialize_field<V: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &V,
    ) -> Result<(), T::Error> {
        if key == "uuid" {
            if !value.serialize(IsStr(None)).unwrap_or(false) {
                self.bailed.set(true);
                return Err(ser::Error::custom("a uuid that is not a string"));
            }
            self.has_uuid = true;
        }
        self.inner.serialize_field(key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), T::Error> {
        self.inner.skip_field(key)
    }

    fn end(mut self) -> Result<T::Ok, T::Error> {
        if !self.has_uuid {
            let uuid = fresh_uuid(self.rng);
            self.inner.serialize_field("uuid", &uuid)?;
        }
        self.inner.end()
    }
}

macro_rules! bail {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name(self, $(_: $ty),*) -> Result<S::Ok, S::Error> {
            Err(self.bail())
        })*
    };
}

impl<'a, S: Serializer> Serializer for Stamp<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Impossible<S::Ok, S::Error>;
    type SerializeTuple = Impossible<S::Ok, S::Error>;
    type SerializeTupleStruct = Impossible<S::Ok, S::Error>;
    type SerializeTupleVariant = Impossible<S::Ok, S::Error>;
    type SerializeMap = StampMap<'a, S::SerializeMap>;
    type SerializeStruct = StampStruct<'a, S::SerializeStruct>;
    type SerializeStructVariant = Impossible<S::Ok, S::Error>;

    bail! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<S::Ok, S::Error> {
        Err(self.bail())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        Err(self.bail())
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, S::Error> {
        Err(self.bail())
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        Err(self.bail())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        Err(self.bail())
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(StampMap {
            inner: self.inner.serialize_map(len.map(|n| n + 1))?,
            rng: self.rng,
            bailed: self.bailed,
            next_is_uuid: false,
            has_uuid: false,
        })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(StampStruct {
            inner: self.inner.serialize_struct(name, len + 1)?,
            rng: self.rng,
            bailed: self.bailed,
            has_uuid: false,
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        Err(self.bail())
    }
}

/// Answers whether a value is a string (equal to the given one, if any), without writing it.
struct IsStr(Option<&'static str>);

#[derive(Debug)]
struct NotAStr;

impl fmt::Display for NotAStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a string")
    }
}

impl ser::StdError for NotAStr {}

impl ser::Error for NotAStr {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotAStr
    }
}

macro_rules! not_str {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name(self, $(_: $ty),*) -> Result<bool, NotAStr> {
            Ok(false)
        })*
    };
}

impl Serializer for IsStr {
    type Ok = bool;
    type Error = NotAStr;
    type SerializeSeq = Impossible<bool, NotAStr>;
    type SerializeTuple = Impossible<bool, NotAStr>;
    type SerializeTupleStruct = Impossible<bool, NotAStr>;
    type SerializeTupleVariant = Impossible<bool, NotAStr>;
    type SerializeMap = Impossible<bool, NotAStr>;
    type SerializeStruct = Impossible<bool, NotAStr>;
    type SerializeStructVariant = Impossible<bool, NotAStr>;

    not_str! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
    }

    fn serialize_char(self, v: char) -> Result<bool, NotAStr> {
        let mut buf = [0; 4];
        self.serialize_str(v.encode_utf8(&mut buf))
    }

    fn serialize_str(self, v: &str) -> Result<bool, NotAStr> {
        Ok(self.0.is_none_or(|want| want == v))
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<bool, NotAStr> {
        // serde_json writes a unit variant as its name, a string.
        self.serialize_str(variant)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, NotAStr> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<bool, NotAStr> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<bool, NotAStr> {
        Ok(false)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, NotAStr> {
        Err(NotAStr)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, NotAStr> {
        Err(NotAStr)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAStr> {
        Err(NotAStr)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAStr> {
        Err(NotAStr)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, NotAStr> {
        Err(NotAStr)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, NotAStr> {
        Err(NotAStr)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, NotAStr> {
        Err(NotAStr)
    }
}
