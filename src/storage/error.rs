//! Maildrop errors: the type is the protocol's (`protocol::StoreError`), since it crosses the
//! `Maildrop` port; storage raises it.

pub use crate::protocol::StoreError;
