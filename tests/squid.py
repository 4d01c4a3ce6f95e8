"""A real squid (Debian's package) on loopback with its own memory-only cache."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from nginx import free_port, require_tool

CONFIG = """\
http_port 127.0.0.1:{port}
pid_filename {tmp}/squid.pid
cache_log {tmp}/cache.log
access_log stdio:{tmp}/access.log squid
cache_store_log none
coredump_dir {tmp}
cache_mem 64 MB
maximum_object_size_in_memory 32 MB
maximum_object_size 32 MB
acl local src 127.0.0.1
http_access allow local
http_access deny all
visible_hostname sagedl-test-squid
refresh_pattern . 60 100% 4320
shutdown_lifetime 0 seconds
{user}
"""


class Squid(object):
    def __init__(self):
        self.binary = require_tool("squid")
        self.tmp = tempfile.mkdtemp(prefix="sagedl-squid-")
        os.chmod(self.tmp, 0o777)     # squid drops root for the "proxy" user
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        user = "cache_effective_user proxy" if os.geteuid() == 0 else ""
        conf = os.path.join(self.tmp, "squid.conf")
        with open(conf, "w") as f:
            f.write(CONFIG.format(port=self.port, tmp=self.tmp, user=user))
        self.process = subprocess.Popen([self.binary, "-N", "-f", conf],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = ""
                    path = os.path.join(self.tmp, "cache.log")
                    if os.path.exists(path):
                        log = open(path).read()[-2000:]
                    raise RuntimeError("squid did not start: %s %s" % (
                        self.process.stderr.read().decode(errors="replace")[-2000:], log))
                time.sleep(0.05)   # polling a port with a deadline, not synchronising

    def access_log(self):
        path = os.path.join(self.tmp, "access.log")
        return open(path).read() if os.path.exists(path) else ""

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
