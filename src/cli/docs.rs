//! `keygate completions SHELL` and `keygate man`: generated from the command's own definition,
//! so they never fall behind it.

use std::io::Write;

use super::failure::Failure;

/// Writes `shell`'s completion script for `command` to stdout.
pub fn completions(shell: clap_complete::Shell, mut command: clap::Command) {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, &mut std::io::stdout());
}

/// Writes the roff man page of `command` to stdout.
pub fn man(command: clap::Command) -> Result<(), Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page).map_err(|e| Failure::local(format!("man page: {e}")))?;
    std::io::stdout().write_all(&page).map_err(|e| Failure::local(format!("stdout: {e}")))
}
