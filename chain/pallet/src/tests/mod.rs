//! Unit tests of the pallet in `TestExternalities`, one file per area.

mod audits;
mod chains;
mod fraud;
mod jobs;
mod lifecycle;
mod plans;
mod registration;
