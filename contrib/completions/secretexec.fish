# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_secretexec_global_optspecs
    string join \n c/config= p/profile= e/env= env-file= clear-env keep= timeout= v/verbose log-format= h/help V/version
end

function __fish_secretexec_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_secretexec_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_secretexec_using_subcommand
    set -l cmd (__fish_secretexec_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c secretexec -n "__fish_secretexec_needs_command" -s c -l config -d 'The mapping file [default: $SECRETEXEC_CONFIG, ./secretexec.toml, /etc/secretexec/secretexec.toml]' -r -F
complete -c secretexec -n "__fish_secretexec_needs_command" -s p -l profile -d 'Select a profile of the mapping (repeatable; later wins)' -r
complete -c secretexec -n "__fish_secretexec_needs_command" -s e -l env -d 'Map one variable ad hoc, e.g. -e DB_URL=vault:secret/app#db_url (repeatable; overrides the mapping)' -r
complete -c secretexec -n "__fish_secretexec_needs_command" -l env-file -d 'Import every key of a 0600 env file, ad hoc (repeatable)' -r -F
complete -c secretexec -n "__fish_secretexec_needs_command" -l keep -d 'Variables kept under --clear-env (repeatable; replaces the default PATH HOME LANG TERM TZ)' -r
complete -c secretexec -n "__fish_secretexec_needs_command" -l timeout -d 'Deadline for fetching every secret, e.g. 10s [default: timeout in the mapping, else 30s]' -r
complete -c secretexec -n "__fish_secretexec_needs_command" -l log-format -d 'Log line format' -r -f -a "text\t''
json\t''"
complete -c secretexec -n "__fish_secretexec_needs_command" -l clear-env -d 'Give the child only the resolved variables and the keep-list'
complete -c secretexec -n "__fish_secretexec_needs_command" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace). Never secret values'
complete -c secretexec -n "__fish_secretexec_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secretexec -n "__fish_secretexec_needs_command" -s V -l version -d 'Print version'
complete -c secretexec -n "__fish_secretexec_needs_command" -a "check" -d 'Resolve everything and print names, sources and status — never values'
complete -c secretexec -n "__fish_secretexec_needs_command" -a "supervise" -d 'Start COMMAND and stay as its parent: forward signals, reap, rotate secrets'
complete -c secretexec -n "__fish_secretexec_needs_command" -a "render" -d 'Write the resolved variables in a format other tools read'
complete -c secretexec -n "__fish_secretexec_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -s c -l config -d 'The mapping file [default: $SECRETEXEC_CONFIG, ./secretexec.toml, /etc/secretexec/secretexec.toml]' -r -F
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -s p -l profile -d 'Select a profile of the mapping (repeatable; later wins)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -s e -l env -d 'Map one variable ad hoc, e.g. -e DB_URL=vault:secret/app#db_url (repeatable; overrides the mapping)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -l env-file -d 'Import every key of a 0600 env file, ad hoc (repeatable)' -r -F
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -l keep -d 'Variables kept under --clear-env (repeatable; replaces the default PATH HOME LANG TERM TZ)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -l timeout -d 'Deadline for fetching every secret, e.g. 10s [default: timeout in the mapping, else 30s]' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -l log-format -d 'Log line format' -r -f -a "text\t''
json\t''"
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -l json -d 'Print a JSON document (schema in docs/check-json.md) instead of a table'
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -l clear-env -d 'Give the child only the resolved variables and the keep-list'
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace). Never secret values'
complete -c secretexec -n "__fish_secretexec_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l watch -d 'Re-resolve every source this often, e.g. 5m (rotation)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l on-change -d 'What a changed value does: restart, signal:SIGNAME, or none' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l reload-on -d 'Re-resolve on SIGHUP to secretexec (sighup) instead of forwarding it (none)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l stop-signal -d 'The signal that asks COMMAND to stop [default: SIGTERM]' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l stop-timeout -d 'Wait this long after the stop signal before SIGKILL [default: 10s]' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l splay -d 'Wait a random delay up to this long before acting on a change' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l on-error -d 'When a re-resolve fails: keep the command running, or stop it (exit 125)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -s c -l config -d 'The mapping file [default: $SECRETEXEC_CONFIG, ./secretexec.toml, /etc/secretexec/secretexec.toml]' -r -F
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -s p -l profile -d 'Select a profile of the mapping (repeatable; later wins)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -s e -l env -d 'Map one variable ad hoc, e.g. -e DB_URL=vault:secret/app#db_url (repeatable; overrides the mapping)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l env-file -d 'Import every key of a 0600 env file, ad hoc (repeatable)' -r -F
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l keep -d 'Variables kept under --clear-env (repeatable; replaces the default PATH HOME LANG TERM TZ)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l timeout -d 'Deadline for fetching every secret, e.g. 10s [default: timeout in the mapping, else 30s]' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l log-format -d 'Log line format' -r -f -a "text\t''
json\t''"
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l process-group -d 'Run COMMAND in its own process group and signal the whole group (default)'
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l no-process-group -d 'Run COMMAND in secretexec\'s process group and signal COMMAND only'
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -l clear-env -d 'Give the child only the resolved variables and the keep-list'
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace). Never secret values'
complete -c secretexec -n "__fish_secretexec_using_subcommand supervise" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -l format -r -f -a "dotenv\t'KEY=value lines that secretexec\'s own env-file parser reads back'
json\t'One JSON object, names to string values'
shell\t'`export NAME=\'value\'` lines for a POSIX shell'
systemd\t'Lines for systemd\'s EnvironmentFile='"
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -s o -l output -d 'Write to FILE (mode 0600, atomic rename) instead of stdout' -r -F
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -s c -l config -d 'The mapping file [default: $SECRETEXEC_CONFIG, ./secretexec.toml, /etc/secretexec/secretexec.toml]' -r -F
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -s p -l profile -d 'Select a profile of the mapping (repeatable; later wins)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -s e -l env -d 'Map one variable ad hoc, e.g. -e DB_URL=vault:secret/app#db_url (repeatable; overrides the mapping)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -l env-file -d 'Import every key of a 0600 env file, ad hoc (repeatable)' -r -F
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -l keep -d 'Variables kept under --clear-env (repeatable; replaces the default PATH HOME LANG TERM TZ)' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -l timeout -d 'Deadline for fetching every secret, e.g. 10s [default: timeout in the mapping, else 30s]' -r
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -l log-format -d 'Log line format' -r -f -a "text\t''
json\t''"
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -l clear-env -d 'Give the child only the resolved variables and the keep-list'
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -s v -l verbose -d 'More log output on stderr (-v info, -vv debug, -vvv trace). Never secret values'
complete -c secretexec -n "__fish_secretexec_using_subcommand render" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c secretexec -n "__fish_secretexec_using_subcommand help; and not __fish_seen_subcommand_from check supervise render help" -f -a "check" -d 'Resolve everything and print names, sources and status — never values'
complete -c secretexec -n "__fish_secretexec_using_subcommand help; and not __fish_seen_subcommand_from check supervise render help" -f -a "supervise" -d 'Start COMMAND and stay as its parent: forward signals, reap, rotate secrets'
complete -c secretexec -n "__fish_secretexec_using_subcommand help; and not __fish_seen_subcommand_from check supervise render help" -f -a "render" -d 'Write the resolved variables in a format other tools read'
complete -c secretexec -n "__fish_secretexec_using_subcommand help; and not __fish_seen_subcommand_from check supervise render help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
