//! The datdot extension messages, carried as Hypercore `Extension{name, message}` (type 9)
//! on a feed's replication channel — JS peers register them with
//! `core.registerExtension(name)`.
//!
//! | name | direction | message |
//! |---|---|---|
//! | `datdot/v1/receipt` | hoster → reader | `codec::to_bytes(SignedReceipt)` (version 1, tag `0x20`, ≤ 41,128 B) |
//! | `datdot/v1/end` | reader → hoster | empty: "I am done; send the final receipt" |
//!
//! On the wire (protomux message type 9): `name` as a compact-encoding string, then the
//! message as a compact-encoding **buffer** (varint length, bytes). That is how
//! `hypercore-protocol` 0.7.2 encodes `Extension.message`; JS Hypercore puts the raw
//! bytes there instead, so a JS datdot peer wraps/unwraps the body with
//! `c.encode(c.buffer, body)` / `c.decode(c.buffer, raw)` (see `interop/reader.js`).
//!
//! Unknown extension names are ignored (other Hypercore extensions may share the
//! channel); a known name with a payload that does not decode is misbehaviour.

use datdot_protocol::codec::{Message as _, from_bytes, to_bytes};
use datdot_protocol::receipt::SignedReceipt;
use hypercore_protocol::Message;
use hypercore_protocol::schema::Extension;

/// Extension name of a hoster's signed receipt.
pub const RECEIPT: &str = "datdot/v1/receipt";
/// Extension name of a reader's end-of-session request.
pub const END: &str = "datdot/v1/end";

/// A decoded datdot extension message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatdotMsg {
    /// A hoster's receipt.
    Receipt(Box<SignedReceipt>),
    /// The reader ends the session.
    End,
}

impl DatdotMsg {
    /// As a Hypercore extension message.
    pub fn to_message(&self) -> Message {
        let (name, message) = match self {
            DatdotMsg::Receipt(r) => (RECEIPT, to_bytes(r.as_ref())),
            DatdotMsg::End => (END, Vec::new()),
        };
        Message::Extension(Extension {
            name: name.to_string(),
            message,
        })
    }

    /// Decode an extension; `Ok(None)` for names that are not ours.
    pub fn decode(ext: &Extension) -> Result<Option<Self>, String> {
        match ext.name.as_str() {
            RECEIPT => {
                if ext.message.len() > SignedReceipt::MAX_SIZE {
                    return Err(format!(
                        "receipt of {} bytes exceeds {}",
                        ext.message.len(),
                        SignedReceipt::MAX_SIZE
                    ));
                }
                from_bytes::<SignedReceipt>(&ext.message)
                    .map(|r| Some(DatdotMsg::Receipt(Box::new(r))))
                    .map_err(|e| format!("receipt: {e}"))
            }
            END if ext.message.is_empty() => Ok(Some(DatdotMsg::End)),
            END => Err("end message must be empty".into()),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datdot_protocol::identity::Keypair;
    use datdot_protocol::receipt::ReceiptEntry;

    fn ext(m: Message) -> Extension {
        match m {
            Message::Extension(e) => e,
            other => panic!("not an extension: {other:?}"),
        }
    }

    #[test]
    fn round_trip_and_rejects() {
        let kp = Keypair::from_seed(&[7; 32]);
        let r = SignedReceipt::sign(
            &kp,
            [9; 32],
            [1; 32],
            [2; 32],
            0,
            vec![ReceiptEntry {
                index: 3,
                hash: [4; 32],
            }],
        );
        for m in [DatdotMsg::Receipt(Box::new(r)), DatdotMsg::End] {
            assert_eq!(DatdotMsg::decode(&ext(m.to_message())), Ok(Some(m)));
        }
        let mut e = ext(DatdotMsg::End.to_message());
        e.message.push(0);
        assert!(DatdotMsg::decode(&e).is_err());
        e.name = RECEIPT.into();
        assert!(DatdotMsg::decode(&e).is_err());
        e.message = vec![0; SignedReceipt::MAX_SIZE + 1];
        assert!(DatdotMsg::decode(&e).unwrap_err().contains("exceeds"));
        e.name = "other".into();
        assert_eq!(DatdotMsg::decode(&e), Ok(None));
    }
}
