"""The benchmark's server side: a private CA and one nginx on 127.0.0.1.

nginx runs with its own generated config in a temp dir (daemon off; pid,
logs and temp paths inside that dir; nothing of /etc/nginx is read), serving
one document root over HTTP and HTTPS at once, with sendfile and keep-alive
on, as a real mirror would.  The HTTPS certificate is signed by a CA made
here with ``openssl req -x509``; clients trust that CA explicitly
(``--ca-bundle``, ``--cacert``, ``--ca-certificate``), never the system store.
"""

from __future__ import print_function

import os
import shutil
import socket
import subprocess
import time

EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

CONFIG = """\
daemon off;
{user}
# One worker: the clients share the machine's 2 cores with the server.
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    # One short line per request: the resume item checks for its 206.
    log_format bench '$status $request_method $uri $body_bytes_sent';
    access_log {tmp}/access.log bench;
    {temp_paths}
    types {{ text/html html; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{http_port};
        root {root};
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:bench:1m;
        root {root};
    }}
}}
"""

# A temp-path directive exists only when its module is built in (nginx-light
# lacks some of them).
TEMP_PATHS = (
    ("client_body_temp_path", None),
    ("proxy_temp_path", "http_proxy"),
    ("fastcgi_temp_path", "http_fastcgi"),
    ("uwsgi_temp_path", "http_uwsgi"),
    ("scgi_temp_path", "http_scgi"),
)


def which(name):
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path=os.pathsep.join(EXTRA_DIRS))


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except (IOError, OSError, ValueError):
        return []


def _cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/PID/stat), 0 if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (IOError, OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])     # fields 14 and 15 of stat(5)


def _run(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(argv), p.stdout))


def make_certificates(directory):
    """A CA (openssl req -x509) and a server certificate it signs, for
    127.0.0.1.  Returns (ca.pem, server.pem, server.key)."""
    ca_key = os.path.join(directory, "ca.key")
    ca = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    cert = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
          "-days", "2", "-subj", "/CN=sagedl bench CA", "-keyout", ca_key, "-out", ca])
    _run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
          "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr])
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                # IP only, no DNS name: Python 2.7's match_hostname knows no
                # IP entries and, when no DNS entry exists, falls back to the
                # CN "127.0.0.1", which it compares as text; newer clients
                # check the IP entry.
                "subjectAltName=IP:127.0.0.1\n")
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
          "-CAcreateserial", "-days", "2", "-sha256", "-extfile", ext, "-out", cert])
    return ca, cert, key


class Nginx(object):
    def __init__(self, root, tmp, cert, key):
        self.root = os.path.abspath(root)
        self.tmp = os.path.abspath(tmp)
        self.cert = cert
        self.key = key
        self.binary = which("nginx")
        self.http_port = self.https_port = None
        self.process = None

    def base(self, scheme):
        port = self.https_port if scheme == "https" else self.http_port
        return "%s://127.0.0.1:%d" % (scheme, port)

    def version(self):
        p = subprocess.run([self.binary, "-v"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        return p.stdout.strip().split("/", 1)[-1]

    def _config(self):
        built = subprocess.run([self.binary, "-V"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True).stdout
        temp_paths = ["%s %s/%s;" % (d, self.tmp, d) for d, module in TEMP_PATHS
                      if not (module and "--without-%s_module" % module in built)]
        # As root, workers would switch to "nobody", who cannot read our files.
        user = "user root;" if os.geteuid() == 0 else ""
        return CONFIG.format(user=user, tmp=self.tmp, temp_paths="\n    ".join(temp_paths),
                             http_port=self.http_port, https_port=self.https_port,
                             root=self.root, cert=self.cert, key=self.key)

    def start(self):
        if not self.binary:
            raise RuntimeError("nginx not found")
        log = ""
        for _ in range(3):
            self.http_port, self.https_port = free_port(), free_port()
            config = os.path.join(self.tmp, "nginx.conf")
            with open(config, "w") as f:
                f.write(self._config())
            # -e: the start-up error log is opened before the config is read.
            self.process = subprocess.Popen(
                [self.binary, "-p", self.tmp, "-c", config,
                 "-e", os.path.join(self.tmp, "startup.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_listening():
                return self
            log = self._logs()
            self.stop()
            if "Address already in use" not in log:
                break
        raise RuntimeError("nginx did not start:\n" + log)

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                for port in (self.http_port, self.https_port):
                    socket.create_connection(("127.0.0.1", port), 1).close()
                return True
            except OSError:
                pass
            try:
                self.process.wait(0.05)
                return False        # exited: a config error
            except subprocess.TimeoutExpired:
                pass
        return False

    def cpu_seconds(self):
        """CPU time (user + sys) used so far by nginx's master and workers:
        over HTTPS the server's encryption shares the machine's cores with
        the client, so the report shows it beside each client's own CPU."""
        if self.process is None:
            return None
        total = 0
        for pid in [self.process.pid] + _children(self.process.pid):
            total += _cpu_ticks(pid)
        return total / os.sysconf("SC_CLK_TCK")

    def last_access(self):
        """The last line of the access log ("STATUS METHOD URI BYTES")."""
        try:
            with open(os.path.join(self.tmp, "access.log")) as f:
                lines = f.read().splitlines()
        except (IOError, OSError):
            return ""
        return lines[-1] if lines else ""

    def _logs(self):
        text = []
        for name in ("startup.log", "error.log"):
            try:
                with open(os.path.join(self.tmp, name)) as f:
                    text.append(f.read())
            except (IOError, OSError):
                pass
        return "".join(text)

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()   # SIGTERM: nginx's fast shutdown
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
