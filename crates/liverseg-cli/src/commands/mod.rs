pub mod convert;
pub mod demo;
pub mod info;
pub mod evaluate;
pub mod study;
