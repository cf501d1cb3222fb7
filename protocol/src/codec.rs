//! The wire codec: versioned, length-limited, strict.
//!
//! A top-level message is `version: u8 || tag: u8 || body`. Integers are fixed-width
//! little-endian; byte strings and lists carry a `u32` little-endian count. Every
//! top-level type declares a `MAX_SIZE`; [`from_bytes`] rejects input that is larger,
//! truncated, of another version or kind, or followed by trailing bytes. Lists declare a
//! maximum count and are checked against the bytes remaining *before* allocating, so a
//! forged count cannot make a decoder allocate more than the input's size.

use alloc::vec::Vec;

/// The wire version written and accepted by this build.
pub const VERSION: u8 = 1;

/// Why bytes could not be decoded. Always the sender's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Input longer than the message kind allows.
    #[error("message of {got} bytes exceeds the limit of {max}")]
    Oversized {
        /// The limit.
        max: usize,
        /// The input length.
        got: usize,
    },
    /// Input ended in the middle of a field.
    #[error("truncated input")]
    Truncated,
    /// Bytes left over after a complete message.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// A wire version this build does not speak.
    #[error("unsupported wire version {0}")]
    Version(u8),
    /// A message of another kind.
    #[error("expected message tag {expected}, got {got}")]
    Tag {
        /// The tag this decoder reads.
        expected: u8,
        /// The tag in the input.
        got: u8,
    },
    /// A list longer than its limit.
    #[error("{what}: {got} items exceed the limit of {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// The limit.
        max: usize,
        /// The count in the input.
        got: usize,
    },
    /// A field whose value is not allowed.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Appends encoded fields to a buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }
    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    /// A byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// A little-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A fixed-size array, without length.
    pub fn array<const N: usize>(&mut self, v: &[u8; N]) {
        self.buf.extend_from_slice(v);
    }
    /// A `u32` length then the bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.buf.extend_from_slice(v);
    }
    /// A `u32` count then each item.
    pub fn list<T: Encode>(&mut self, items: &[T]) {
        self.len(items.len());
        for i in items {
            i.encode(self);
        }
    }
    fn len(&mut self, n: usize) {
        // Lengths are bounded by MAX_SIZE limits far below u32::MAX.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// Reads fields from a byte slice, never past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Read from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    /// A byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    /// A length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::TooMany { what, max, got: n });
        }
        self.take(n)
    }
    /// A counted list of at most `max` items, each at least `T::MIN_SIZE` bytes.
    pub fn list<T: Decode>(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError::TooMany { what, max, got: n });
        }
        if n.saturating_mul(T::MIN_SIZE.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(T::decode(self)?);
        }
        Ok(out)
    }
    /// A boolean encoded as 0 or 1.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid("bool")),
        }
    }
}

/// A value that can be written to the wire.
pub trait Encode {
    /// Append the encoding of `self`.
    fn encode(&self, w: &mut Writer);
}

/// A value that can be read from the wire.
pub trait Decode: Sized {
    /// The smallest encoding of this type, used to bound list allocations.
    const MIN_SIZE: usize = 1;
    /// Read one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A top-level message kind: has a tag and a size limit.
pub trait Message: Encode + Decode {
    /// The message kind's tag byte.
    const TAG: u8;
    /// The largest encoding (including version and tag) accepted.
    const MAX_SIZE: usize;
}

/// Encode a top-level message with version and tag.
pub fn to_bytes<T: Message>(v: &T) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u8(T::TAG);
    v.encode(&mut w);
    w.into_bytes()
}

/// Decode a top-level message: checks size, version, tag and that nothing trails.
pub fn from_bytes<T: Message>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > T::MAX_SIZE {
        return Err(DecodeError::Oversized {
            max: T::MAX_SIZE,
            got: bytes.len(),
        });
    }
    let mut r = Reader::new(bytes);
    let v = r.u8()?;
    if v != VERSION {
        return Err(DecodeError::Version(v));
    }
    let tag = r.u8()?;
    if tag != T::TAG {
        return Err(DecodeError::Tag {
            expected: T::TAG,
            got: tag,
        });
    }
    let out = T::decode(&mut r)?;
    match r.remaining() {
        0 => Ok(out),
        n => Err(DecodeError::Trailing(n)),
    }
}

macro_rules! fixed_codec {
    ($($t:ty => $w:ident, $n:expr);* $(;)?) => {$(
        impl Encode for $t {
            fn encode(&self, w: &mut Writer) {
                w.$w(*self);
            }
        }
        impl Decode for $t {
            const MIN_SIZE: usize = $n;
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$w()
            }
        }
    )*};
}
fixed_codec!(u8 => u8, 1; u16 => u16, 2; u32 => u32, 4; u64 => u64, 8);

impl Encode for [u8; 32] {
    fn encode(&self, w: &mut Writer) {
        w.array(self);
    }
}

impl Decode for [u8; 32] {
    const MIN_SIZE: usize = 32;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Probe(Vec<u64>);
    impl Encode for Probe {
        fn encode(&self, w: &mut Writer) {
            w.list(&self.0);
        }
    }
    impl Decode for Probe {
        fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
            Ok(Probe(r.list("probe", 8)?))
        }
    }
    impl Message for Probe {
        const TAG: u8 = 0xee;
        const MAX_SIZE: usize = 2 + 4 + 8 * 8;
    }

    #[test]
    fn forged_count_does_not_allocate() {
        // Count says 8 items but only one follows: rejected before allocating.
        let mut bytes = vec![VERSION, 0xee, 8, 0, 0, 0];
        bytes.extend_from_slice(&1u64.to_le_bytes());
        assert_eq!(from_bytes::<Probe>(&bytes), Err(DecodeError::Truncated));
        let bytes = [VERSION, 0xee, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            from_bytes::<Probe>(&bytes),
            Err(DecodeError::TooMany { .. })
        ));
    }

    #[test]
    fn version_tag_trailing_oversize() {
        let good = to_bytes(&Probe(vec![1, 2]));
        assert_eq!(from_bytes::<Probe>(&good), Ok(Probe(vec![1, 2])));
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(from_bytes::<Probe>(&v), Err(DecodeError::Version(9)));
        let mut t = good.clone();
        t[1] = 1;
        assert!(matches!(
            from_bytes::<Probe>(&t),
            Err(DecodeError::Tag { .. })
        ));
        let mut tr = good.clone();
        tr.push(0);
        assert_eq!(from_bytes::<Probe>(&tr), Err(DecodeError::Trailing(1)));
        let big = vec![0u8; Probe::MAX_SIZE + 1];
        assert!(matches!(
            from_bytes::<Probe>(&big),
            Err(DecodeError::Oversized { .. })
        ));
        for cut in 0..good.len() {
            assert!(from_bytes::<Probe>(&good[..cut]).is_err());
        }
    }
}
