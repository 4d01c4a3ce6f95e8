"""Run a real nginx on 127.0.0.1 for tests, and find external test tools.

A real server catches what a hand-written one agrees with us about: nginx's
own Range, If-Range, keep-alive and sendfile behaviour.  Each instance gets a
generated config in its own temp dir (pid, logs and temp paths inside it), so
nothing of /etc/nginx is read and nothing outside the temp dir is written.

Importable without pytest (benchmarks use it); require_tool() imports pytest
only when it has to skip or fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

# Non-root PATHs often lack the sbin directories where Debian puts nginx
# and squid.
EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

START_TIMEOUT = 10
STOP_TIMEOUT = 10

CONFIG = """\
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp}/access.log;
    {temp_paths}
    # Inline, not /etc/nginx/mime.types: no global config.
    types {{ text/html html; text/plain txt; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port}{ssl};
        server_name localhost;
        root {root};
        {tls}
        location / {{ }}
    }}
}}
"""

# Each module's temp path directive only exists when the module is built in.
TEMP_PATHS = (
    ("client_body_temp_path", None),
    ("proxy_temp_path", "http_proxy"),
    ("fastcgi_temp_path", "http_fastcgi"),
    ("uwsgi_temp_path", "http_uwsgi"),
    ("scgi_temp_path", "http_scgi"),
)


def find_tool(name_or_path):
    """Absolute path of an executable, or None."""
    if os.sep in name_or_path:
        if os.path.isfile(name_or_path) and os.access(name_or_path, os.X_OK):
            return name_or_path
        return None
    found = shutil.which(name_or_path)
    if found:
        return found
    path = os.pathsep.join(EXTRA_DIRS)
    return shutil.which(name_or_path, path=path)


def require_tool(name_or_path):
    """Path of a tool a test needs: skip without it, but fail under CI.

    CI installs every tool (.ci/run), so there a missing one is a broken
    install step, not a reason to quietly test less."""
    found = find_tool(name_or_path)
    if found:
        return found
    import pytest
    message = "%s not found (install it; .ci/run does)" % name_or_path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " -- required when CI=true", pytrace=False)
    pytest.skip(message)


def nginx_available():
    return find_tool("nginx") is not None


def free_port(host="127.0.0.1"):
    # Racy by nature (the port is free now); start() retries on EADDRINUSE.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class NginxError(RuntimeError):
    pass


class Nginx(object):
    def __init__(self, root, tls_cert=None, tls_key=None, binary=None):
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("tls_cert and tls_key go together")
        self.root = os.path.abspath(root)
        self.tls_cert = tls_cert and os.path.abspath(tls_cert)
        self.tls_key = tls_key and os.path.abspath(tls_key)
        self.binary = binary or find_tool("nginx")
        self.port = None
        self.tmp = None
        self.process = None

    @property
    def url(self):
        scheme = "https" if self.tls_cert else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _config(self):
        built = subprocess.run([self.binary, "-V"], stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        options = built.stderr + built.stdout
        temp_paths = []
        for directive, module in TEMP_PATHS:
            if module and "--without-%s_module" % module in options:
                continue
            temp_paths.append("%s %s/%s;" % (directive, self.tmp, directive))
        tls = ""
        if self.tls_cert:
            tls = "ssl_certificate %s; ssl_certificate_key %s;" % (
                self.tls_cert, self.tls_key)
        # As root, nginx's workers would switch to "nobody", which cannot
        # read a root-owned 0700 temp dir; non-root cannot switch at all.
        user = "user root;" if os.geteuid() == 0 else ""
        return CONFIG.format(
            user=user, tmp=self.tmp, temp_paths="\n    ".join(temp_paths),
            port=self.port, ssl=" ssl" if self.tls_cert else "",
            root=self.root, tls=tls)

    def start(self):
        if self.binary is None:
            raise NginxError("nginx not found")
        log = ""
        for _attempt in range(3):
            self.tmp = tempfile.mkdtemp(prefix="sagedl-nginx-")
            self.port = free_port()
            config = os.path.join(self.tmp, "nginx.conf")
            with open(config, "w") as handle:
                handle.write(self._config())
            # -e: the startup error log, opened before the config is read,
            # would otherwise default to /var/log/nginx/error.log.
            self.process = subprocess.Popen(
                [self.binary, "-p", self.tmp, "-c", config,
                 "-e", os.path.join(self.tmp, "startup.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            if self._wait_until_listening():
                return self
            log = self._logs()
            self.stop()
            if "Address already in use" not in log:
                break
        raise NginxError("nginx did not start:\n" + log)

    def _wait_until_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                pass
            try:
                # Waiting on the process is the pause between attempts, and
                # notices at once when nginx exits with a config error.
                self.process.wait(0.05)
                return False
            except subprocess.TimeoutExpired:
                pass
        return False

    def _logs(self):
        text = []
        for name in ("startup.log", "error.log"):
            try:
                with open(os.path.join(self.tmp, name)) as handle:
                    text.append(handle.read())
            except (IOError, OSError):
                pass
        return "".join(text)

    def stop(self):
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()  # SIGTERM: nginx's fast shutdown
                try:
                    self.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
