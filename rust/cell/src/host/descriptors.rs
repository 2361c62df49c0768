//! The descriptors a launch hands bubblewrap, numbered in one place. bubblewrap's argv
//! ([`crate::host::plan::bwrap_argv`]), the launcher that fills them
//! ([`crate::host::launch::execute`]) and `cell-init`'s spec (its job descriptor) all read
//! their numbers from a [`Descriptors`] table.
//!
//! In order: bubblewrap's status pipe ([`STATUS_FD`]); from [`DATA_FD_BASE`] on, the
//! generated files (`Plan::files`, by index), then `cell-init`'s spec, then one descriptor
//! per seccomp program ([`crate::host::seccomp::PROGRAMS`]), then, with a terminal, the
//! job pipe on which `cell-init` reports the command's stops, and last the go pipe on which
//! the launcher tells `cell-init` to start the command (these two are passed through by
//! bubblewrap untouched; bubblewrap reads and closes the others).

use crate::contract::{DATA_FD_BASE, STATUS_FD};

/// The descriptor numbers of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptors {
    /// Number of generated files.
    files: usize,
    /// Number of seccomp programs (0 without the filter).
    seccomp: usize,
    /// Whether there is a job pipe.
    job: bool,
}

impl Descriptors {
    /// The table for `files` generated files, the seccomp filter or none, and a job pipe
    /// when the cell has a terminal.
    #[must_use]
    pub fn new(files: usize, seccomp: bool, terminal: bool) -> Self {
        let seccomp = if seccomp { crate::host::seccomp::PROGRAMS.len() } else { 0 };
        Self { files, seccomp, job: terminal }
    }

    /// bubblewrap's status pipe (`--json-status-fd`).
    #[must_use]
    pub const fn status(&self) -> i32 {
        STATUS_FD
    }

    /// The descriptor carrying generated file `index` (`Plan::files[index]`).
    #[must_use]
    pub fn file(&self, index: usize) -> i32 {
        slot(index)
    }

    /// The descriptor carrying `cell-init`'s spec.
    #[must_use]
    pub fn spec(&self) -> i32 {
        slot(self.files)
    }

    /// The descriptors of the seccomp programs, in the order they are installed.
    #[must_use]
    pub fn seccomp(&self) -> Vec<i32> {
        (0..self.seccomp).map(|i| slot(self.files + 1 + i)).collect()
    }

    /// The job pipe, with a terminal.
    #[must_use]
    pub fn job(&self) -> Option<i32> {
        self.job.then(|| slot(self.files + 1 + self.seccomp))
    }

    /// The go pipe (`cell-init` reads, the launcher writes once the cell may start).
    #[must_use]
    pub fn go(&self) -> i32 {
        slot(self.files + 1 + self.seccomp + usize::from(self.job))
    }
}

/// The n-th descriptor after the status pipe.
fn slot(n: usize) -> i32 {
    DATA_FD_BASE.saturating_add(i32::try_from(n).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_descriptor_has_a_number_of_its_own_above_the_status_pipe() {
        for (files, seccomp, terminal) in [(0, false, false), (9, true, true), (3, false, true), (7, true, false)] {
            let t = Descriptors::new(files, seccomp, terminal);
            let mut all = vec![t.status()];
            all.extend((0..files).map(|i| t.file(i)));
            all.push(t.spec());
            all.extend(t.seccomp());
            all.extend(t.job());
            all.push(t.go());
            let expected: Vec<i32> = (STATUS_FD..STATUS_FD + i32::try_from(all.len()).unwrap()).collect();
            assert_eq!(all, expected, "{t:?}");
            assert_eq!(t.seccomp().len(), if seccomp { crate::host::seccomp::programs().len() } else { 0 });
        }
    }
}
