//! What the benchmarks in `benches/` share: their `NAME=COUNT` arguments and how they show
//! times.

use std::time::Duration;

/// `NAME=COUNT` among the arguments after `--` (the last one wins), else `default`.
pub fn count_arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter_map(|a| {
            a.strip_prefix(name)?
                .strip_prefix('=')
                .map(|v| v.parse().unwrap_or(default))
        })
        .next_back()
        .unwrap_or(default)
}

/// The mean of `v` (zero for none).
pub fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len().max(1) as u32
}

/// The median of `v` (the mean of the middle two for an even count; zero for none).
pub fn median(v: &[Duration]) -> Duration {
    let mut sorted = v.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// `MEAN s (MIN s)`.
pub fn show(v: &[Duration]) -> String {
    format!(
        "{:.2} s ({:.2} s)",
        mean(v).as_secs_f64(),
        v.iter().min().copied().unwrap_or_default().as_secs_f64()
    )
}

/// `MEAN ms (MIN ms)`.
pub fn show_ms(v: &[Duration]) -> String {
    format!(
        "{:.1} ms ({:.1} ms)",
        mean(v).as_secs_f64() * 1e3,
        v.iter().min().copied().unwrap_or_default().as_secs_f64() * 1e3
    )
}
