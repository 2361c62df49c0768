# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_cell_global_optspecs
    string join \n config= h/help V/version
end

function __fish_cell_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_cell_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_cell_using_subcommand
    set -l cmd (__fish_cell_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c cell -n "__fish_cell_needs_command" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_needs_command" -s V -l version -d 'Print version'
complete -c cell -n "__fish_cell_needs_command" -f -a "run" -d 'Run a command in a cell and exit with its status (128+N if a signal N ended it)'
complete -c cell -n "__fish_cell_needs_command" -f -a "shell" -d 'Start an interactive shell in a cell: its `command` (default: bash, else sh), never the agent it declares'
complete -c cell -n "__fish_cell_needs_command" -f -a "claude" -d 'Start Claude Code in a cell, permission prompts off (the cell is the boundary)'
complete -c cell -n "__fish_cell_needs_command" -f -a "codex" -d 'Start the Codex CLI in a cell, approvals and its own sandbox off'
complete -c cell -n "__fish_cell_needs_command" -f -a "gemini" -d 'Start the Gemini CLI in a cell in YOLO mode'
complete -c cell -n "__fish_cell_needs_command" -f -a "opencode" -d 'Start opencode in a cell with every permission allowed'
complete -c cell -n "__fish_cell_needs_command" -f -a "verify" -d 'Check inside a fresh cell that every entrypoint fragment\'s promise holds (state links, patches directory, MCP servers, ...); exits non-zero naming each failure'
complete -c cell -n "__fish_cell_needs_command" -f -a "login" -d 'Log in to websites in the cell\'s browser, for the agent\'s browser tools.'
complete -c cell -n "__fish_cell_needs_command" -f -a "plan" -d 'Print what `cell run` would do (mounts, environment, the exact bubblewrap command line) without running anything'
complete -c cell -n "__fish_cell_needs_command" -f -a "doctor" -d 'Check that this host can build cells; exits non-zero when it cannot'
complete -c cell -n "__fish_cell_needs_command" -f -a "check" -d 'Validate the configuration (schema, values, allowlists, MCP servers) without looking at the file system or running anything; exit 2 naming every bad field. The Nix modules run this when a system or home is built'
complete -c cell -n "__fish_cell_needs_command" -f -a "selftest" -d 'Attack a cell built from your configuration with the escape catalog (reading and writing outside, protected paths, ptrace, `io_uring`, nested namespaces, host sockets, network bypasses, fail-closed launches) and report what held'
complete -c cell -n "__fish_cell_needs_command" -f -a "net" -d 'The network of a cell: its egress audit log'
complete -c cell -n "__fish_cell_needs_command" -f -a "git" -d 'The cell\'s commits. A cell works in a git directory of its own (your repository\'s git directory is never writable inside); the branches it changed reach your repository as `cell/<cell>/<branch>` when it ends (`cell git sync` brings over those of a launch that was killed)'
complete -c cell -n "__fish_cell_needs_command" -f -a "ps" -d 'List the running cells: name, worktree, uptime, proxy on or off, pid of its init'
complete -c cell -n "__fish_cell_needs_command" -f -a "status" -d 'Show what runs beside each running instance of a cell (its sidecars and host services: pids and ports), asked of its launcher over the launch\'s control socket'
complete -c cell -n "__fish_cell_needs_command" -f -a "stop" -d 'Stop the running instances of a cell: SIGTERM to its init, which ends its command; each launcher then cleans up as usual'
complete -c cell -n "__fish_cell_needs_command" -f -a "du" -d 'Show the disk use of each cell\'s home and state directories, largest first'
complete -c cell -n "__fish_cell_needs_command" -f -a "reset" -d 'Delete a cell\'s home (asks first on a terminal; `--yes` otherwise). Refused while a cell using that home runs; links in the home are removed, never followed'
complete -c cell -n "__fish_cell_needs_command" -f -a "project" -d 'A repository\'s suggested settings (`.cell.json` at the worktree\'s root): show them, approve them, or forget the approval.'
complete -c cell -n "__fish_cell_needs_command" -f -a "schema" -d 'Print the JSON Schema of the configuration file'
complete -c cell -n "__fish_cell_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c cell -n "__fish_cell_needs_command" -f -a "man" -d 'Print the man page (roff) to standard output'
complete -c cell -n "__fish_cell_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand run" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand run" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand run" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand run" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand shell" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand shell" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand shell" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand shell" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand shell" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand claude" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand claude" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand claude" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand claude" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand claude" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand codex" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand codex" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand codex" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand codex" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand codex" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand gemini" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand gemini" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand gemini" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand gemini" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand gemini" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand opencode" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand opencode" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand opencode" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand opencode" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand opencode" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand verify" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand verify" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand verify" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand verify" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand login" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand login" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand login" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l close-timeout -d 'Seconds the browser gets to close after Enter before it is killed (its fresh cookies may be lost then, and nothing is exported)' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand login" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand login" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand plan" -l agent -d 'Plan `cell AGENT` instead of a command (the trailing arguments go to the agent)' -r -f -a "claude\t'Anthropic\'s Claude Code'
codex\t'`OpenAI`\'s Codex CLI'
gemini\t'Google\'s Gemini CLI'
opencode\t'opencode'
custom\t'Any other command (set `agent.command`)'"
complete -c cell -n "__fish_cell_using_subcommand plan" -l cell -d 'Cell to use (default: the config\'s `defaultCell`, the only cell, or `default`)' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l workdir -d 'Worktree: the directory bound read-write at its own path (default: current directory)' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l bind -d 'Make a host path visible: SRC, SRC:DST, SRC:ro, SRC:DST:rw (read-only unless `rw`)' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l network -d 'Network mode for this run: `none` (loopback only) or `proxy` (only through the egress proxy, only to the allowlist)' -r -f -a "none\t'Loopback only; nothing leaves the cell'
proxy\t'Only through the egress proxy, only to the allowlist'"
complete -c cell -n "__fish_cell_using_subcommand plan" -l allow -d 'Let the proxy through to HOST[:PORT] (or *.DOMAIN[:PORT]) for this run; implies `--network proxy`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l publish -d 'Reach the cell\'s 127.0.0.1:CELLPORT (default: HOSTPORT) from the host\'s 127.0.0.1:HOSTPORT while the cell runs, through a socket (never a route); works in either network mode. ADDRESS:HOSTPORT:CELLPORT listens on another host address (0.0.0.0: every interface, other machines too), with a warning. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l display -d 'Share a display with the cell, for graphical programs such as the cell\'s browser: `auto` (Wayland when `$WAYLAND_DISPLAY` is set, else an error), `wayland`, `x11` (an X11 client can read and type into every window of the display), `none`. Default: none for run, shell and agents (only this flag gives them a display); for login, `$CELL_DISPLAY` or else auto' -r -f -a "auto\t'Wayland when `$WAYLAND_DISPLAY` is set; otherwise an error that explains the choices'
wayland\t'The Wayland socket `$WAYLAND_DISPLAY` (clients cannot see each other\'s windows)'
x11\t'The X11 display `$DISPLAY`: the browser can then read and type into every window of that display, for the time of the login'
none\t'No window: a headless browser (scripted renewals, tests)'"
complete -c cell -n "__fish_cell_using_subcommand plan" -l env -d 'Set the variable K to V in the cell for this run, over the config\'s `env`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l host-port -d 'Make the service listening on the host\'s 127.0.0.1:PORT reachable inside the cell at 127.0.0.1:PORT (that port alone, forwarded over a unix socket; no route), beside the config\'s `ports.host`. Repeatable' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand plan" -l json -d 'Print the plan as JSON'
complete -c cell -n "__fish_cell_using_subcommand plan" -l allow-broad-worktree -d 'Allow `/`, your home directory or a parent of it as the worktree'
complete -c cell -n "__fish_cell_using_subcommand plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand doctor" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand check" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand check" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand selftest" -l cell -d 'Cell to test' -r
complete -c cell -n "__fish_cell_using_subcommand selftest" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand selftest" -l json -d 'Print the results as JSON'
complete -c cell -n "__fish_cell_using_subcommand selftest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand net; and not __fish_seen_subcommand_from log reload help" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand net; and not __fish_seen_subcommand_from log reload help" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand net; and not __fish_seen_subcommand_from log reload help" -f -a "log" -d 'Show the cell\'s egress decisions (every connection the proxy allowed or denied)'
complete -c cell -n "__fish_cell_using_subcommand net; and not __fish_seen_subcommand_from log reload help" -f -a "reload" -d 'Re-read the configuration and apply the cell\'s allowlist and name pins to its running instances now; open connections stay open'
complete -c cell -n "__fish_cell_using_subcommand net; and not __fish_seen_subcommand_from log reload help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from log" -l cell -d 'Cell whose log to show' -r
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from log" -s n -l lines -d 'Show only the last N decisions (0: all)' -r
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from log" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from log" -l json -d 'Print the raw JSON lines'
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from log" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from reload" -l cell -d 'Cell to reload' -r
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from reload" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from reload" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from help" -f -a "log" -d 'Show the cell\'s egress decisions (every connection the proxy allowed or denied)'
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from help" -f -a "reload" -d 'Re-read the configuration and apply the cell\'s allowlist and name pins to its running instances now; open connections stay open'
complete -c cell -n "__fish_cell_using_subcommand net; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand git; and not __fish_seen_subcommand_from sync log diff merge help" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand git; and not __fish_seen_subcommand_from sync log diff merge help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand git; and not __fish_seen_subcommand_from sync log diff merge help" -f -a "sync" -d 'Bring the branches of launches that were killed over now (a running cell\'s come over when it ends: until then it could change what host git would read)'
complete -c cell -n "__fish_cell_using_subcommand git; and not __fish_seen_subcommand_from sync log diff merge help" -f -a "log" -d 'Show the commits of the cell\'s branches that your current branch does not have'
complete -c cell -n "__fish_cell_using_subcommand git; and not __fish_seen_subcommand_from sync log diff merge help" -f -a "diff" -d 'Show what a cell branch changes against your current branch (since they diverged)'
complete -c cell -n "__fish_cell_using_subcommand git; and not __fish_seen_subcommand_from sync log diff merge help" -f -a "merge" -d 'Take a cell branch into your current branch. The worktree is shared, so it already holds the cell\'s files: when your branch has nothing the cell\'s lacks, your branch moves to the cell\'s commit and the index follows, the files stay as they are (`git status` then shows only what differs from the cell\'s commit, such as its uncommitted work). When both have commits of their own, it says how to merge'
complete -c cell -n "__fish_cell_using_subcommand git; and not __fish_seen_subcommand_from sync log diff merge help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from sync" -l cell -d 'Cell whose branches to bring over' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from sync" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from sync" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from log" -l cell -d 'Cell whose branches to show' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from log" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from log" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from diff" -l cell -d 'Cell whose branch to show' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from diff" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from diff" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from merge" -l cell -d 'Cell whose branch to take' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from merge" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from merge" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from help" -f -a "sync" -d 'Bring the branches of launches that were killed over now (a running cell\'s come over when it ends: until then it could change what host git would read)'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from help" -f -a "log" -d 'Show the commits of the cell\'s branches that your current branch does not have'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from help" -f -a "diff" -d 'Show what a cell branch changes against your current branch (since they diverged)'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from help" -f -a "merge" -d 'Take a cell branch into your current branch. The worktree is shared, so it already holds the cell\'s files: when your branch has nothing the cell\'s lacks, your branch moves to the cell\'s commit and the index follows, the files stay as they are (`git status` then shows only what differs from the cell\'s commit, such as its uncommitted work). When both have commits of their own, it says how to merge'
complete -c cell -n "__fish_cell_using_subcommand git; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand ps" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand ps" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand status" -l cell -d 'Cell to show' -r
complete -c cell -n "__fish_cell_using_subcommand status" -l restart -d 'Restart this sidecar first in each instance: its stop signal, SIGKILL after 3 s, then started again with the same command, environment and secrets, and waited for until ready (open connections to it end)' -r
complete -c cell -n "__fish_cell_using_subcommand status" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand status" -l json -d 'Print the answers as JSON, one line per instance'
complete -c cell -n "__fish_cell_using_subcommand status" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand stop" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand stop" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand du" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand du" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand reset" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand reset" -l yes -d 'Delete without asking'
complete -c cell -n "__fish_cell_using_subcommand reset" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -l cell -d 'The cell whose `project` settings apply' -r
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -l workdir -d 'The worktree (default: the current directory, or the cell\'s `worktree.path`)' -r
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -f -a "show" -d 'Show the file, its SHA-256, whether you approved it and what it would add'
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -f -a "allow" -d 'Approve the file as it is now (asks first on a terminal; `--yes` otherwise)'
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -f -a "forget" -d 'Forget the approval of this worktree\'s file'
complete -c cell -n "__fish_cell_using_subcommand project; and not __fish_seen_subcommand_from show allow forget help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from show" -l cell -d 'The cell whose `project` settings apply' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from show" -l workdir -d 'The worktree (default: the current directory, or the cell\'s `worktree.path`)' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from show" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from allow" -l cell -d 'The cell whose `project` settings apply' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from allow" -l workdir -d 'The worktree (default: the current directory, or the cell\'s `worktree.path`)' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from allow" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from allow" -l yes -d 'Approve without asking'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from allow" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from forget" -l cell -d 'The cell whose `project` settings apply' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from forget" -l workdir -d 'The worktree (default: the current directory, or the cell\'s `worktree.path`)' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from forget" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from forget" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the file, its SHA-256, whether you approved it and what it would add'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "allow" -d 'Approve the file as it is now (asks first on a terminal; `--yes` otherwise)'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "forget" -d 'Forget the approval of this worktree\'s file'
complete -c cell -n "__fish_cell_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand schema" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand schema" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand completions" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand completions" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand man" -l config -d 'Configuration file to use instead of the usual lookup' -r
complete -c cell -n "__fish_cell_using_subcommand man" -s h -l help -d 'Print help'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "run" -d 'Run a command in a cell and exit with its status (128+N if a signal N ended it)'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "shell" -d 'Start an interactive shell in a cell: its `command` (default: bash, else sh), never the agent it declares'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "claude" -d 'Start Claude Code in a cell, permission prompts off (the cell is the boundary)'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "codex" -d 'Start the Codex CLI in a cell, approvals and its own sandbox off'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "gemini" -d 'Start the Gemini CLI in a cell in YOLO mode'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "opencode" -d 'Start opencode in a cell with every permission allowed'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "verify" -d 'Check inside a fresh cell that every entrypoint fragment\'s promise holds (state links, patches directory, MCP servers, ...); exits non-zero naming each failure'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "login" -d 'Log in to websites in the cell\'s browser, for the agent\'s browser tools.'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "plan" -d 'Print what `cell run` would do (mounts, environment, the exact bubblewrap command line) without running anything'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "doctor" -d 'Check that this host can build cells; exits non-zero when it cannot'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "check" -d 'Validate the configuration (schema, values, allowlists, MCP servers) without looking at the file system or running anything; exit 2 naming every bad field. The Nix modules run this when a system or home is built'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "selftest" -d 'Attack a cell built from your configuration with the escape catalog (reading and writing outside, protected paths, ptrace, `io_uring`, nested namespaces, host sockets, network bypasses, fail-closed launches) and report what held'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "net" -d 'The network of a cell: its egress audit log'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "git" -d 'The cell\'s commits. A cell works in a git directory of its own (your repository\'s git directory is never writable inside); the branches it changed reach your repository as `cell/<cell>/<branch>` when it ends (`cell git sync` brings over those of a launch that was killed)'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "ps" -d 'List the running cells: name, worktree, uptime, proxy on or off, pid of its init'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "status" -d 'Show what runs beside each running instance of a cell (its sidecars and host services: pids and ports), asked of its launcher over the launch\'s control socket'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "stop" -d 'Stop the running instances of a cell: SIGTERM to its init, which ends its command; each launcher then cleans up as usual'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "du" -d 'Show the disk use of each cell\'s home and state directories, largest first'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "reset" -d 'Delete a cell\'s home (asks first on a terminal; `--yes` otherwise). Refused while a cell using that home runs; links in the home are removed, never followed'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "project" -d 'A repository\'s suggested settings (`.cell.json` at the worktree\'s root): show them, approve them, or forget the approval.'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "schema" -d 'Print the JSON Schema of the configuration file'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "man" -d 'Print the man page (roff) to standard output'
complete -c cell -n "__fish_cell_using_subcommand help; and not __fish_seen_subcommand_from run shell claude codex gemini opencode verify login plan doctor check selftest net git ps status stop du reset project schema completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from net" -f -a "log" -d 'Show the cell\'s egress decisions (every connection the proxy allowed or denied)'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from net" -f -a "reload" -d 'Re-read the configuration and apply the cell\'s allowlist and name pins to its running instances now; open connections stay open'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from git" -f -a "sync" -d 'Bring the branches of launches that were killed over now (a running cell\'s come over when it ends: until then it could change what host git would read)'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from git" -f -a "log" -d 'Show the commits of the cell\'s branches that your current branch does not have'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from git" -f -a "diff" -d 'Show what a cell branch changes against your current branch (since they diverged)'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from git" -f -a "merge" -d 'Take a cell branch into your current branch. The worktree is shared, so it already holds the cell\'s files: when your branch has nothing the cell\'s lacks, your branch moves to the cell\'s commit and the index follows, the files stay as they are (`git status` then shows only what differs from the cell\'s commit, such as its uncommitted work). When both have commits of their own, it says how to merge'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "show" -d 'Show the file, its SHA-256, whether you approved it and what it would add'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "allow" -d 'Approve the file as it is now (asks first on a terminal; `--yes` otherwise)'
complete -c cell -n "__fish_cell_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "forget" -d 'Forget the approval of this worktree\'s file'
