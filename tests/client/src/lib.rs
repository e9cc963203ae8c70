//! Client integration tests live in tests/; this crate only holds their shared helpers.
