pub mod convert;
pub mod demo;
pub mod info;
