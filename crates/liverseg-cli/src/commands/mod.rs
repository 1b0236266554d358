pub mod convert;
pub mod demo;
pub mod dose;
pub mod info;
pub mod evaluate;
pub mod study;
pub mod train;
pub mod review;
