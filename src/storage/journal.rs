//! OWNER: see src/storage/mod.rs.
