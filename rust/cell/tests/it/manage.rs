//! The everyday loop: `--env`, managing cells (`ps`, `stop`, `du`, `reset`), the mount
//! points a launch leaves in a shared home, and a shell that looks like the user's.

use crate::both;
use crate::support::{ok, show, stderr, stdout};

both!(env_flag_sets_a_variable_for_one_run, |h| {
    let o = h.run(["run", "--env", "CELL_T1=one two", "--env", "CELL_T2=", "--", "sh", "-c", "echo \"$CELL_T1|${CELL_T2-unset}\""]);
    assert_eq!(ok(&o).trim(), "one two|", "{}", show(&o));
    let o = h.run(["run", "--", "sh", "-c", "echo \"${CELL_T1-unset}\""]);
    assert_eq!(ok(&o).trim(), "unset", "a --env outlived its run:\n{}", show(&o));
    for bad in ["1X=v", "A-B=v", "NOEQUALS", "=v"] {
        let o = h.run(["run", "--env", bad, "--", "true"]);
        assert_eq!(o.status.code(), Some(2), "--env {bad} was accepted:\n{}", show(&o));
        assert!(stderr(&o).contains("--env"), "{}", show(&o));
    }
});
