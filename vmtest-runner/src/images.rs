//! `vmtest-runner images`: the image cache, through [`vmtest::images`].

use std::time::{Duration, SystemTime};

use clap::Subcommand;
use vmtest::images::{self, Cache, Prune};

use crate::Result;

#[derive(Debug, Subcommand)]
pub(crate) enum Images {
    /// Resolve references into the cache (download or build), printing REF and the file
    Pull {
        /// Image references: `debian:12`, `recipe:tiny`, `https://...#sha256=...`, `file:PATH`.
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Cached downloads, recipe builds and snapshots: size, source, last use
    List,
    /// Re-hash every cached download and snapshot (a corrupt one is removed)
    Verify,
    /// Remove cached downloads and snapshots, by age or all (DUR: 30d, 12h, 90m, 45s); a
    /// damaged snapshot always goes
    Prune {
        /// Downloaded at least this long ago.
        #[arg(long, value_name = "DUR", value_parser = crate::parse_duration)]
        older_than: Option<Duration>,
        /// Not used for at least this long.
        #[arg(long, value_name = "DUR", value_parser = crate::parse_duration)]
        unused_for: Option<Duration>,
        /// Every entry.
        #[arg(long)]
        all: bool,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Build (or reuse) the image of a local recipe
    Build {
        /// The recipe's name (a directory of `fixtures/`), e.g. `tiny`.
        recipe: String,
    },
}

pub(crate) fn run(command: Images) -> Result {
    match command {
        Images::Pull { references } => pull(&references),
        Images::List => list(),
        Images::Verify => verify(),
        Images::Prune {
            older_than,
            unused_for,
            all,
            dry_run,
        } => prune(
            Prune {
                older_than,
                unused_since: unused_for,
                all,
            },
            dry_run,
        ),
        Images::Build { recipe } => pull(&[format!("recipe:{recipe}")]),
    }
}

fn cache() -> Result<Cache> {
    Cache::open(images::default_root()).map_err(|e| e.to_string())
}

fn pull(refs: &[String]) -> Result {
    let mut failed = Vec::new();
    for r in refs {
        match images::pull(r) {
            Ok(path) => println!("{r}\t{}", path.display()),
            Err(e) => {
                eprintln!("vmtest-runner: {r}: {e}");
                failed.push(r.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("could not pull {}", failed.join(", ")))
    }
}

fn list() -> Result {
    let entries = cache()?.list().map_err(|e| e.to_string())?;
    println!(
        "{:>10}  {:<12}  {:<8}  source",
        "size", "last used", "state"
    );
    for e in entries {
        let state = if e.is_complete() { "ok" } else { "partial" };
        println!(
            "{:>10}  {:<12}  {:<8}  {}",
            human_size(e.size),
            ago(e.last_used),
            state,
            e.source
        );
    }
    let snapshots = images::snapshots(&images::default_root());
    if !snapshots.is_empty() {
        println!(
            "\n{:>10}  {:<12}  {:<12}  {:<8}  snapshot",
            "size", "built", "last used", "state"
        );
        for s in snapshots {
            let when = |t: Option<SystemTime>| t.map(ago).unwrap_or_else(|| "?".into());
            println!(
                "{:>10}  {:<12}  {:<12}  {:<8}  {} ({})",
                human_size(s.size),
                when(s.built),
                when(s.last_used),
                if s.damaged.is_some() { "damaged" } else { "ok" },
                s.name,
                s.image.as_deref().unwrap_or("?")
            );
        }
    }
    let builds = images::recipe_builds(&images::default_root());
    if !builds.is_empty() {
        println!(
            "\n{:>10}  {:<12}  {:<8}  directory",
            "size", "built", "recipe"
        );
        for b in builds {
            println!(
                "{:>10}  {:<12}  {:<10}  {}",
                human_size(b.size),
                b.built.map(ago).unwrap_or_else(|| "?".into()),
                b.name,
                b.dir.display()
            );
        }
    }
    Ok(())
}

fn verify() -> Result {
    let cache = cache()?;
    let mut bad = 0;
    for e in cache.list().map_err(|e| e.to_string())? {
        if !e.is_complete() {
            continue;
        }
        match cache.verify(&e.path) {
            Ok(()) => println!("ok   {}", e.source),
            Err(err) => {
                bad += 1;
                println!("BAD  {}: {err}", e.source);
            }
        }
    }
    for s in images::snapshots(&images::default_root()) {
        match images::verify_snapshot(&s) {
            Ok(()) => println!("ok   snapshot {}", s.name),
            Err(err) => {
                bad += 1;
                println!("BAD  {err}");
            }
        }
    }
    if bad == 0 {
        Ok(())
    } else {
        Err(format!(
            "{bad} cache entries failed verification (and were removed)"
        ))
    }
}

fn prune(filter: Prune, dry_run: bool) -> Result {
    // The cache refuses an empty filter before anything goes.
    let removed = (cache()?.prune(filter.clone(), dry_run)).map_err(|e| e.to_string())?;
    let snapshots = images::prune_snapshots(&images::default_root(), &filter, dry_run)
        .map_err(|e| e.to_string())?;
    let verb = if dry_run { "would remove" } else { "removed" };
    for e in &removed {
        println!("{verb} {} ({})", e.source, human_size(e.size));
    }
    for s in &snapshots {
        println!("{verb} snapshot {} ({})", s.name, human_size(s.size));
    }
    println!(
        "{verb} {} entries, {}",
        removed.len() + snapshots.len(),
        human_size(
            (removed.iter().map(|e| e.size)).sum::<u64>()
                + snapshots.iter().map(|s| s.size).sum::<u64>()
        )
    );
    Ok(())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn ago(t: SystemTime) -> String {
    crate::human_duration(SystemTime::now().duration_since(t).unwrap_or_default()) + " ago"
}
