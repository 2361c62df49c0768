//! The descriptors a launch hands bubblewrap, numbered in one place. bubblewrap's argv
//! ([`crate::host::plan::bwrap_argv`]), the launcher that fills them
//! ([`crate::host::launch::execute`]) and `cell-init`'s spec (its job descriptor) all read
//! their numbers from a [`Descriptors`] table.
//!
//! Every number is fixed, whatever the plan holds, so a launcher can start bubblewrap before
//! its plan is made ([`crate::host::launch::Early`]) and hand it descriptors whose contents
//! come later. In order: bubblewrap's status pipe ([`STATUS_FD`]); from [`DATA_FD_BASE`] on,
//! `cell-init`'s spec, one descriptor per seccomp program
//! ([`crate::host::seccomp::PROGRAMS`]), the job pipe on which `cell-init` reports the
//! command's stops (with a terminal), the go pipe on which the launcher tells `cell-init` to
//! start the command (these two are passed through by bubblewrap untouched), the pipe that
//! carries bubblewrap's arguments when it was started early (`--args`), and last the
//! generated files (`Plan::files`, by index). A slot the launch does not use is not handed.

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
        slot(FILES + index)
    }

    /// The descriptor carrying `cell-init`'s spec.
    #[must_use]
    pub fn spec(&self) -> i32 {
        slot(0)
    }

    /// The descriptors of the seccomp programs, in the order they are installed.
    #[must_use]
    pub fn seccomp(&self) -> Vec<i32> {
        (0..self.seccomp).map(|i| slot(1 + i)).collect()
    }

    /// The job pipe, with a terminal.
    #[must_use]
    pub fn job(&self) -> Option<i32> {
        self.job.then(|| slot(1 + PROGRAMS))
    }

    /// The go pipe (`cell-init` reads, the launcher writes once the cell may start).
    #[must_use]
    pub fn go(&self) -> i32 {
        slot(2 + PROGRAMS)
    }

    /// The pipe bubblewrap reads its arguments from when it was started before the plan
    /// was made (`bwrap --args`).
    #[must_use]
    pub fn args(&self) -> i32 {
        slot(3 + PROGRAMS)
    }

    /// How many generated files the table has.
    #[must_use]
    pub fn files(&self) -> usize {
        self.files
    }
}

/// How many seccomp programs a launch may install.
const PROGRAMS: usize = crate::host::seccomp::PROGRAMS.len();

/// The slot of the first generated file.
const FILES: usize = 4 + PROGRAMS;

/// The n-th descriptor after the status pipe.
fn slot(n: usize) -> i32 {
    DATA_FD_BASE.saturating_add(i32::try_from(n).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_descriptor_has_a_number_of_its_own_above_the_status_pipe_fixed_by_its_role() {
        let fixed = Descriptors::new(0, true, true);
        for (files, seccomp, terminal) in [(0, false, false), (9, true, true), (3, false, true), (7, true, false)] {
            let t = Descriptors::new(files, seccomp, terminal);
            let mut all = vec![t.status(), t.spec(), t.go(), t.args()];
            all.extend((0..files).map(|i| t.file(i)));
            all.extend(t.seccomp());
            all.extend(t.job());
            let mut sorted = all.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), all.len(), "{t:?}: {all:?}");
            assert!(all.iter().all(|fd| *fd >= STATUS_FD), "{t:?}: {all:?}");
            assert!(all.iter().all(|fd| *fd < crate::sys::PARK_FD), "{t:?}: {all:?}");
            // A role's number never depends on what else the launch holds.
            assert_eq!((t.spec(), t.go(), t.args()), (fixed.spec(), fixed.go(), fixed.args()));
            if terminal {
                assert_eq!(t.job(), fixed.job());
            }
            if seccomp {
                assert_eq!(t.seccomp(), fixed.seccomp());
            }
            assert_eq!(t.seccomp().len(), if seccomp { crate::host::seccomp::programs().len() } else { 0 });
        }
    }
}
