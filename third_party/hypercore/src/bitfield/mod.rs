mod dynamic;
mod fixed;

pub(crate) use dynamic::DynamicBitfield as Bitfield;
