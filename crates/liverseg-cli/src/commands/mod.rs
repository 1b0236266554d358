pub mod convert;
pub mod demo;
pub mod dose;
pub mod info;
