//! Tests that span files or need generators; unit tests of a single file
//! live at the bottom of that file.

mod authenticator;
mod header;
mod header_props;
mod lockout;
mod lockout_model;
