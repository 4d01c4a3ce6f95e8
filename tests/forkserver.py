"""Test helper: run many command lines of one program cheaply, one fork per batch.

A Python process imports the program once (Sage's sage_bootstrap, or
sagedl from the built pyz) and then, for each batch it reads on stdin,
forks a child that runs the batch's command lines one after the other, each
with its stdout and stderr on files of its own, and reports their exit
codes.  Starting an interpreter and importing costs far more than running
one of these commands, so a fuzzer of thousands of command lines fits in
seconds.  Each command must see what a process of its own would: the
runner's fresh() drops what the program caches for the life of a process
(sage_bootstrap keeps every Package it read, a half-read one included: a
checksums.ini that failed once would then look fine to the next command).

    with ForkServer(SAGE_BOOTSTRAP, env, cwd) as server:
        codes = server.run([{"argv": [...], "out": path, "err": path}, ...])

A command's exit code is what the program's process would exit with: its
SystemExit's code, 0 when it returns, 1 for an uncaught exception (whose
traceback goes to the command's stderr file, as Python prints it).
"""

import json
import os
import select
import subprocess

TIMEOUT = 120          # a safety net for a hung batch, never a measure of speed

# Each runner defines call(argv, env), returning an exit code or raising,
# and fresh(), which forgets what an earlier command of the batch cached.
SAGE_BOOTSTRAP = r'''
import sys
from sage_bootstrap.cmdline import run
from sage_bootstrap.package import Package
def call(argv, env):
    sys.argv = ["sage-package"] + argv
    run()
    return 0
def fresh():
    # Package.all() keeps every Package it made, each with what it has
    # read, a half-read tarball list included, for the life of the process.
    if "_Package__all" in Package.__dict__:
        del Package._Package__all
'''

SAGEDL = r'''
import importlib, os, pkgutil, sys
sys.path.insert(0, os.environ["FORKSERVER_PYZ"])
import sagedl.cli
# Everything a command may import lazily, once, here: not in every child.
for module in pkgutil.iter_modules(sagedl.__path__):
    importlib.import_module("sagedl." + module.name)
import argparse, difflib, json, ssl, threading, unicodedata
def call(argv, env):
    return sagedl.cli.main(argv, env)
def fresh():
    pass    # each main() call starts from nothing: a new Session, a new Tree
'''

_LOOP = r'''
import json, os, sys, traceback
reply = os.fdopen(int(sys.argv[1]), "w")
for line in sys.stdin:
    batch = json.loads(line)
    pid = os.fork()
    if pid == 0:
        codes = []
        for command in batch:
            for fd, name in ((1, "out"), (2, "err")):
                f = os.open(command[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(f, fd)
                os.close(f)
            fresh()
            try:
                code = call(command["argv"], dict(os.environ, **command.get("env", {})))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            codes.append(code)
        with open(batch[0]["out"] + ".codes", "w") as f:
            json.dump(codes, f)
        os._exit(0)
    os.waitpid(pid, 0)
    reply.write("done\n")
    reply.flush()
'''


class ForkServer(object):
    def __init__(self, runner, python, env, cwd):
        rfd, wfd = os.pipe()
        self.process = subprocess.Popen([python, "-c", runner + _LOOP, str(wfd)],
                                        stdin=subprocess.PIPE, pass_fds=(wfd,), env=env,
                                        cwd=cwd, stderr=subprocess.PIPE)
        os.close(wfd)
        self.replies = os.fdopen(rfd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=TIMEOUT)
        self.replies.close()

    def run(self, batch):
        """The exit codes of the batch's commands, in order."""
        self.process.stdin.write((json.dumps(batch) + "\n").encode())
        self.process.stdin.flush()
        ready, _, _ = select.select([self.replies], [], [], TIMEOUT)
        line = self.replies.readline() if ready else ""
        if not line:
            self.process.kill()
            raise AssertionError("the fork server died or hung: %r"
                                 % self.process.stderr.read()[-2000:])
        with open(batch[0]["out"] + ".codes") as f:
            return json.load(f)
