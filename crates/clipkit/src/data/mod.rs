//! Training and evaluation data: the built-in shapes world.

pub mod shapes;
