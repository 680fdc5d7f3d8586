//! Measures how many shapes-world samples one thread renders per second.
//!
//! `cargo run --release -p clipkit --example shapes_speed -- [COUNT] [SIZE]`
//! (defaults 5000 samples of 64×64). Generation runs on one thread so the figure is per
//! core; a data loader with `k` threads gets about `k` times as many.

use std::time::Instant;

use clipkit::data::shapes::{ShapesConfig, ShapesWorld};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let size: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let world = ShapesWorld::new(ShapesConfig {
        image_size: size,
        ..Default::default()
    })?;
    let start = Instant::now();
    let mut checksum = 0u64;
    for index in 0..count {
        let sample = world.sample(index);
        checksum = checksum.wrapping_add(u64::from(sample.image.as_raw()[0]));
        checksum = checksum.wrapping_add(sample.caption.len() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{count} samples of {size}x{size} in {seconds:.3} s on one thread: {:.0} samples/s (checksum {checksum})",
        count as f64 / seconds
    );
    Ok(())
}
