//! Account backends and password verification. OWNER: auth helper.

mod account;
pub mod hash;
pub mod passwd_file;
pub mod system;
pub mod username;

pub use account::{Account, AuthError};
