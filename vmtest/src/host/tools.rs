//! Host programs the framework runs, checked before anything is created: a missing one is an
//! error that says how to install it.

use crate::error::{Error, Result};

/// `program` is on `PATH`; else an error naming `install`, the command that installs it.
pub(crate) fn require(program: &str, install: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(Error::MissingTool {
            program: program.into(),
            hint: format!("install it with `{install}`"),
        })
    }
}
