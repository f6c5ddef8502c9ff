"""Shared machinery of tests/servers/opensearch and tests/servers/kafka.

Each server is a JVM started from jars that Maven fetches once (from the
small pom.xml in tests/servers/<name>.d/) into the cache directory. State of a
running server (pid, ports, data, logs) lives in its run directory.

Environment:
  SLUICE_CACHE        cache root (default: <repo>/.cache)
  SLUICE_RUN_DIR      parent of the run dirs (default: $SLUICE_CACHE/run);
                      each server uses $SLUICE_RUN_DIR/<name>
  SLUICE_JAVA         java executable (default: $JAVA_HOME/bin/java, else java)
  SLUICE_MVN          mvn executable (default: mvn)
  SLUICE_MVN_ARGS     extra Maven arguments, e.g. -Dmaven.repo.local=DIR
  SLUICE_FETCH_TIMEOUT  seconds allowed for the one-time download (default 900)
"""

import errno
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print("%s: %s" % (os.path.basename(sys.argv[0]), msg), file=sys.stderr, flush=True)


class Fail(Exception):
    pass


def env_int(name, default):
    v = os.environ.get(name, "")
    if not v:
        return default
    try:
        return int(v)
    except ValueError:
        raise Fail("%s must be an integer, got %r" % (name, v))


def cache_dir():
    return os.path.abspath(os.environ.get("SLUICE_CACHE") or os.path.join(REPO, ".cache"))


def run_parent():
    return os.path.abspath(os.environ.get("SLUICE_RUN_DIR") or os.path.join(cache_dir(), "run"))


def sha(*paths, extra=""):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    h.update(extra.encode())
    return h.hexdigest()[:16]


class Lock:
    """flock()-based lock with a bounded wait."""

    def __init__(self, path, timeout):
        self.path, self.timeout = path, timeout

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                os.close(self.fd)
                raise Fail("timed out after %ds waiting for lock %s" % (self.timeout, self.path))
            time.sleep(0.2)

    def __exit__(self, *a):
        os.close(self.fd)


def java_exe():
    j = os.environ.get("SLUICE_JAVA")
    if j:
        return j
    jh = os.environ.get("JAVA_HOME")
    if jh and os.access(os.path.join(jh, "bin", "java"), os.X_OK):
        return os.path.join(jh, "bin", "java")
    j = shutil.which("java")
    if not j:
        raise Fail("no java found (set SLUICE_JAVA or JAVA_HOME)")
    return j


def javac_exe(java):
    real = os.path.realpath(shutil.which(java) or java)
    cand = os.path.join(os.path.dirname(real), "javac")
    if os.access(cand, os.X_OK):
        return cand
    j = shutil.which("javac")
    if not j:
        raise Fail("no javac next to %s nor on PATH (install a JDK)" % java)
    return j


def fetch_jars(name, pom):
    """Copy the runtime dependencies of `pom` into a cached lib dir, once.

    The lib dir is keyed by the pom's hash and only published (renamed into
    place) after Maven succeeded, so a present lib dir is complete and a
    second start runs no Maven at all. Maven is tried offline first (jars
    already in the local repository), then online."""
    key = sha(pom)
    base = os.path.join(cache_dir(), "servers")
    lib = os.path.join(base, "%s-%s" % (name, key), "lib")
    if os.path.isfile(os.path.join(lib, ".complete")):
        return lib
    with Lock(os.path.join(base, ".%s.fetch.lock" % name), env_int("SLUICE_FETCH_TIMEOUT", 900) + 60):
        if os.path.isfile(os.path.join(lib, ".complete")):
            return lib
        mvn = os.environ.get("SLUICE_MVN") or shutil.which("mvn")
        if not mvn:
            raise Fail("mvn not found: needed once to fetch the %s jars (apt-get install maven)" % name)
        os.makedirs(os.path.dirname(lib), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="lib.", dir=os.path.dirname(lib))
        cmd = [mvn, "-q", "-B", "-Dstyle.color=never"] + (os.environ.get("SLUICE_MVN_ARGS") or "").split() + [
               "-f", pom,
               "dependency:copy-dependencies", "-DincludeScope=runtime",
               "-DoutputDirectory=" + tmp]
        timeout = env_int("SLUICE_FETCH_TIMEOUT", 900)
        t0 = time.monotonic()
        ok = False
        out = ""
        for offline in (True, False):
            c = cmd[:1] + (["-o"] if offline else []) + cmd[1:]
            if not offline:
                log("fetching %s jars with Maven (one time; cached in %s)" % (name, os.path.dirname(lib)))
            try:
                p = subprocess.run(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, timeout=timeout, cwd=os.path.dirname(pom))
            except subprocess.TimeoutExpired:
                shutil.rmtree(tmp, ignore_errors=True)
                raise Fail("Maven did not finish within %ds (SLUICE_FETCH_TIMEOUT)" % timeout)
            out = p.stdout.decode(errors="replace")
            if p.returncode == 0 and os.listdir(tmp):
                ok = True
                break
        if not ok:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = "\n".join(out.strip().splitlines()[-25:])
            raise Fail("Maven failed to fetch the %s jars:\n%s" % (name, tail))
        open(os.path.join(tmp, ".complete"), "w").close()
        if os.path.isdir(lib):
            shutil.rmtree(lib)
        os.rename(tmp, lib)
        log("%s jars ready (%d files, %.0fs)" % (name, len(os.listdir(lib)) - 1, time.monotonic() - t0))
        return lib


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # like the JVM servers: a port left in TIME_WAIT by our last run is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port(env_name, previous, avoid=()):
    """$env_name if set, else the port used last time if still free, else a
    free port from the OS."""
    v = os.environ.get(env_name)
    if v:
        try:
            port = int(v)
        except ValueError:
            raise Fail("%s must be a port number, got %r" % (env_name, v))
        if not port_free(port):
            raise Fail("%s=%d is already in use on 127.0.0.1" % (env_name, port))
        return port
    if previous and previous not in avoid and port_free(previous):
        return previous
    for _ in range(20):
        p = free_port()
        if p not in avoid:
            return p
    raise Fail("could not get a free port")


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no %s)" % path


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Server:
    """Subclasses set name, pom, and implement prepare(), command(),
    probe() -> str|None (the address once ready), address()."""

    name = None
    start_timeout_env = None
    start_timeout = 180
    stop_timeout = 30

    def __init__(self):
        self.run = os.path.abspath(os.environ.get(self.name.upper() + "_RUN_DIR")
                                   or os.path.join(run_parent(), self.name))
        self.pidfile = os.path.join(self.run, "pid")
        self.addrfile = os.path.join(self.run, "address")

    # ---- process identity -------------------------------------------------
    def running_pid(self):
        """The pid of our server if it is running, else None. A pid is ours
        only if its command line names our run dir (guards pid reuse)."""
        v = read(self.pidfile)
        if not v or not v.isdigit():
            return None
        pid = int(v)
        if alive(pid) and (self.run + os.sep) in cmdline(pid):
            return pid
        return None

    def logs_tail(self):
        out = []
        for f in self.log_files():
            out.append("---- tail of %s ----\n%s" % (f, tail(f)))
        return "\n".join(out)

    def log_files(self):
        return [os.path.join(self.run, "server.log"), os.path.join(self.run, "stdout.log")]

    # ---- commands ---------------------------------------------------------
    def cmd_start(self):
        os.makedirs(self.run, exist_ok=True)
        timeout = env_int(self.start_timeout_env, self.start_timeout)
        with Lock(os.path.join(self.run, ".lock"), timeout + 120):
            pid = self.running_pid()
            if pid:
                addr = self.wait_ready(pid, timeout, launched=False)
                print(addr, flush=True)
                return 0
            t0 = time.monotonic()
            cmd = self.prepare()
            with open(os.path.join(self.run, "stdout.log"), "ab") as out:
                out.write(("\n==== %s start %s\n" % (self.name, time.strftime("%F %T"))).encode())
                out.flush()
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     cwd=self.run, start_new_session=True, env=self.child_env())
            write(self.pidfile, "%d\n" % p.pid)
            t1 = time.monotonic()
            addr = self.wait_ready(p.pid, timeout, launched=True)
            try:
                self.post_start(addr)
            except Exception as e:
                self.kill(p.pid)
                raise Fail("%s: post-start step failed: %s\n%s" % (self.name, e, self.logs_tail()))
            t2 = time.monotonic()
            write(self.addrfile, addr + "\n")
            log("%s ready at %s (pid %d, JVM ready in %.1fs, total %.1fs; run dir %s)"
                % (self.name, addr, p.pid, t2 - t1, t2 - t0, self.run))
            print(addr, flush=True)
            return 0

    def post_start(self, addr):
        pass

    def child_env(self):
        env = dict(os.environ)
        for k in ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH"):
            env.pop(k, None)
        return env

    def wait_ready(self, pid, timeout, launched):
        deadline = time.monotonic() + timeout
        while True:
            if not alive(pid):
                reap(pid)
                raise Fail("%s exited during start-up (pid %d)\n%s" % (self.name, pid, self.logs_tail()))
            addr = None
            try:
                addr = self.probe()
            except Exception:
                addr = None
            if addr:
                return addr
            if time.monotonic() > deadline:
                msg = "%s not ready after %ds (%s)\n%s" % (self.name, timeout, self.start_timeout_env,
                                                         self.logs_tail())
                if launched:
                    self.kill(pid)
                raise Fail(msg)
            time.sleep(0.25)

    def kill(self, pid):
        stop_timeout = env_int(self.name.upper() + "_STOP_TIMEOUT", self.stop_timeout)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + stop_timeout
        while alive(pid) and time.monotonic() < deadline:
            reap(pid)
            time.sleep(0.1)
        if alive(pid):
            log("%s (pid %d) still alive %ds after SIGTERM: SIGKILL" % (self.name, pid, stop_timeout))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                reap(pid)
                time.sleep(0.1)
        reap(pid)
        if alive(pid):
            raise Fail("%s (pid %d) survived SIGKILL" % (self.name, pid))
        # The dead JVM stays a zombie until its parent (init, as the start
        # script has exited) reaps it; wait a little so `ps` right after a
        # stop shows nothing.
        deadline = time.monotonic() + 5
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            reap(pid)
            time.sleep(0.05)

    def cmd_stop(self):
        if not os.path.isdir(self.run):
            return 0
        with Lock(os.path.join(self.run, ".lock"), env_int(self.start_timeout_env, self.start_timeout) + 120):
            pid = self.running_pid()
            if pid:
                t0 = time.monotonic()
                self.kill(pid)
                log("%s stopped (pid %d, %.1fs)" % (self.name, pid, time.monotonic() - t0))
            for f in (self.pidfile, self.addrfile):
                try:
                    os.unlink(f)
                except FileNotFoundError:
                    pass
        return 0

    def cmd_status(self):
        pid = self.running_pid()
        if not pid:
            print("stopped")
            return 3
        try:
            addr = self.probe()
        except Exception:
            addr = None
        if addr:
            print(addr)
            return 0
        print("running (pid %d) but not answering" % pid)
        return 1

    def cmd_clean(self):
        self.cmd_stop()
        shutil.rmtree(self.run, ignore_errors=True)
        return 0

    def main(self, argv):
        cmds = {"start": self.cmd_start, "stop": self.cmd_stop, "status": self.cmd_status,
                "clean": self.cmd_clean}
        if len(argv) != 2 or argv[1] not in cmds:
            print("usage: %s start|stop|status|clean" % os.path.basename(argv[0]), file=sys.stderr)
            return 2
        try:
            return cmds[argv[1]]()
        except Fail as e:
            log("error: %s" % e)
            return 1
        except KeyboardInterrupt:
            return 130
