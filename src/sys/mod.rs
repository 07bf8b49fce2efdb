//! The syscall layer: every `unsafe` block of the crate lives below this module (the crate
//! root denies `unsafe_code` elsewhere). Each block is one libc call (or, in `line_scan`, a
//! pair of vector loads; in `line_copy`, vector copies into reserved space) whose arguments
//! are checked next to it, with a SAFETY comment saying why it is sound.

pub mod credentials;
pub mod dir;
pub mod file_copy;
pub mod file_io;
pub mod file_lock;
pub mod limits;
pub mod line_copy;
pub mod line_scan;
pub mod memory;
pub mod poll;
pub mod process;
pub mod signal;
pub mod socket;
pub mod terminal;
