"""``python -m cola_core``: the CLI.

Once a command has returned, its output flushed and the exit handlers run, the process ends without
the interpreter's teardown, which frees torch's and transformers' objects one by one: about 1 s of
every command on 2 cores (issue #33; 0.2 s instead). A non-daemon thread still alive keeps the
normal exit, which waits for it."""

import atexit
import contextlib
import os
import sys
import threading

from cola_core.cli.main import main

code = main()
if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
    raise SystemExit(code)
atexit._run_exitfuncs()  # what the normal exit would run: weakref finalizers, logging's flush, …
for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`) or stream: nothing to write
        stream.flush()
os._exit(code)
