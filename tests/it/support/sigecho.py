"""Test helper for supervise mode: prints `ready <pid> <pgid>`, then one
`got SIGNAME` line per signal it receives (dumb-init's print_signals idea).

Options (repeatable where it makes sense):
  --exit-on NAME CODE   exit with CODE after echoing signal NAME
  --ignore NAME         ignore signal NAME (SIG_IGN, no echo)
  --default NAME        leave signal NAME at its default action
  --print-fg            print `fg <foreground process group of stdin>` at
                        start and after every SIGCONT
  --print-env NAME      print `env NAME=<value>` at start
  --print-file NAME     print `file NAME=<content>` and `mode NAME=<octal>`
                        at start and after every SIGHUP; `path NAME=<path>`
                        at start
  --stubborn            fork a grandchild in our process group that
                        ignores SIGTERM and prints `stubborn <pid>`; then
                        exit 5 as soon as it is ready
  --orphans N           make N orphaned processes that exit at once, wait
                        until each is reaped by someone else (deadline 20 s),
                        then print `zombies <count of Z processes in /proc>`
"""
import os
import signal
import sys
import time

CATCH = ["HUP", "INT", "QUIT", "TERM", "USR1", "USR2", "WINCH", "CONT", "CHLD",
         "TSTP", "TTIN", "TTOU", "ALRM", "PIPE"]

args = sys.argv[1:]
exit_on, ignore, default, envs, files = {}, set(), set(), [], []
stubborn, orphans, print_fg = False, 0, False
while args:
    a = args.pop(0)
    if a == "--exit-on":
        name = args.pop(0)
        exit_on[name] = int(args.pop(0))
    elif a == "--ignore":
        ignore.add(args.pop(0))
    elif a == "--default":
        default.add(args.pop(0))
    elif a == "--print-fg":
        print_fg = True
    elif a == "--print-env":
        envs.append(args.pop(0))
    elif a == "--print-file":
        files.append(args.pop(0))
    elif a == "--stubborn":
        stubborn = True
    elif a == "--orphans":
        orphans = int(args.pop(0))
    else:
        sys.exit("sigecho: unknown option " + a)


def say(line):
    # One unbuffered write per line: handlers may interrupt each other, and
    # Python's buffered stdout refuses reentrant use.
    os.write(1, (line + "\n").encode())


def show_files():
    for name in files:
        path = os.environ[name]
        with open(path) as f:
            say("file %s=%s" % (name, f.read()))
        say("mode %s=%o" % (name, os.stat(path).st_mode & 0o777))


def handler(signum, _frame):
    name = signal.Signals(signum).name[3:]
    say("got SIG" + name)
    if name == "HUP":
        show_files()
    if name == "CONT" and print_fg:
        say("fg %d" % os.tcgetpgrp(0))
    if name in exit_on:
        sys.exit(exit_on[name])


for name in CATCH:
    sig = getattr(signal, "SIG" + name)
    if name in default:
        continue
    signal.signal(sig, signal.SIG_IGN if name in ignore else handler)

if stubborn:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stubborn %d" % os.getpid())
        os.write(w, b"x")
        while True:
            signal.pause()
    os.close(w)
    os.read(r, 1)
    os._exit(5)

if orphans:
    pids = []
    for _ in range(orphans):
        r, w = os.pipe()
        mid = os.fork()
        if mid == 0:
            os.close(r)
            leaf = os.fork()
            if leaf == 0:
                os.close(w)
                os._exit(0)
            os.write(w, str(leaf).encode())
            os._exit(0)
        os.close(w)
        pids.append(int(os.read(r, 32)))
        os.close(r)
        os.waitpid(mid, 0)
    deadline = time.monotonic() + 20
    while any(os.path.exists("/proc/%d" % p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    zombies = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state == "Z":
                zombies += 1
    say("zombies %d" % zombies)

for name in envs:
    say("env %s=%s" % (name, os.environ.get(name, "<unset>")))
for name in files:
    say("path %s=%s" % (name, os.environ[name]))
show_files()
if print_fg:
    say("fg %d" % os.tcgetpgrp(0))
say("ready %d %d" % (os.getpid(), os.getpgrp()))
while True:
    signal.pause()
