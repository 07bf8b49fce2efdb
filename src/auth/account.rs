//! Accounts and authentication errors: the types are the protocol's, since they cross the
//! `Services` port; the backends produce them.

pub use crate::protocol::{Account, AuthError};
