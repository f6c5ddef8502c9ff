#!/usr/bin/env python3
"""Peers for `make bench`: Debian's rsyslog (imfile, inotify) and syslog-ng (file source).

rsyslog and syslog-ng conflict as packages and their maintainer scripts start services,
so neither is installed: `ensure_peers()` fetches the Debian packages with
`apt-get download` (the daemon plus whichever of its library dependencies are not
installed on the machine), unpacks them with `dpkg -x` under <cache>/peers/<peer>/root
and runs the binaries from there (rsyslogd -M <module dir>; syslog-ng --module-path,
LD_LIBRARY_PATH for the unpacked and private libraries). Nothing is installed and no
maintainer script runs. The result is cached (a stamp file) and reused by later runs.

`run_peer(name, path, lines, workdir)` makes one peer move the file to a local TCP sink
that counts newline-terminated records, until `lines` records arrived (bounded wait),
and returns seconds, CPU seconds (utime+stime of the peer process, all threads, from
/proc), peak RSS (VmHWM), and what the sink received (record count after a short
settle, whether the first and last records equal the corpus' first and last lines).

    python3 tests/bench/peers.py                 # fetch/unpack, print the command lines
    python3 tests/bench/peers.py FILE [LINES]    # and run both peers on FILE
"""

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("SLUICE_CACHE", os.path.join(ROOT, ".cache"))
PEERS_DIR = os.path.join(CACHE, "peers")
CLK_TCK = os.sysconf("SC_CLK_TCK")
TRIPLET = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"

# Debian package, the binary and the modules the bench configurations load (checked
# with ldd after unpacking, so a missing library shows up before a run, not as a hang).
SPECS = {
    "rsyslog": dict(package="rsyslog", exe="usr/sbin/rsyslogd",
                    modules=f"usr/lib/{TRIPLET}/rsyslog",
                    check=["imfile.so", "lmnet.so", "lmnetstrms.so", "lmnsd_ptcp.so",
                           "lmtcpclt.so"]),
    "syslog-ng": dict(package="syslog-ng-core", exe="usr/sbin/syslog-ng",
                      modules="usr/lib/syslog-ng/3.38",
                      check=["libaffile.so", "libafsocket.so"]),
}


class PeerError(RuntimeError):
    pass


def _run(argv, timeout, cwd=None, env=None):
    try:
        r = subprocess.run(argv, cwd=cwd, env=env, timeout=timeout, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired:
        raise PeerError(f"{' '.join(argv)}: timed out after {timeout:.0f}s")
    except OSError as e:
        raise PeerError(f"{argv[0]}: {e}")
    return r.returncode, r.stdout


def _installed(pkg):
    rc, out = _run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], 30)
    return rc == 0 and out.strip() == "installed"


def _lib_deps(pkg):
    """Direct Depends of pkg that are libraries (lib*), real packages only."""
    rc, out = _run(["apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
                    "--no-breaks", "--no-replaces", "--no-enhances", pkg], 60)
    if rc != 0:
        return None
    deps = []
    for line in out.splitlines():
        m = re.match(r"\s*\|?(?:Pre)?Depends: ([^\s<>]+)", line)
        if m and m.group(1).startswith("lib") and m.group(1) not in deps:
            deps.append(m.group(1).split(":")[0])
    return deps


def _packages(pkg):
    """pkg plus its library dependencies not installed here (transitively)."""
    want, todo = [pkg], [pkg]
    while todo:
        deps = _lib_deps(todo.pop())
        if deps is None:
            return None
        for d in deps:
            if d not in want and not _installed(d):
                want.append(d)
                todo.append(d)
    return want


def _env(root):
    libs = [os.path.join(root, d) for d in (f"usr/lib/{TRIPLET}", f"lib/{TRIPLET}",
                                             "usr/lib/syslog-ng")]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(libs + [p for p in env.get("LD_LIBRARY_PATH", "").split(":")
                                              if p])
    return env


def _check_libs(root, spec, env):
    files = [os.path.join(root, spec["exe"])] + [os.path.join(root, spec["modules"], m)
                                                 for m in spec["check"]]
    for f in files:
        if not os.path.exists(f):
            raise PeerError(f"{f} missing after unpacking")
    rc, out = _run(["ldd"] + files, 60, env=env)
    missing = sorted({l.split()[0] for l in out.splitlines() if "not found" in l})
    if missing:
        raise PeerError("unresolved libraries: " + ", ".join(missing))


def _fetch(name, spec, deadline):
    """Download and unpack one peer into PEERS_DIR/name/root; returns that root."""
    base = os.path.join(PEERS_DIR, name)
    root = os.path.join(base, "root")
    stamp = os.path.join(base, "ok")
    if os.path.exists(stamp) and os.path.exists(os.path.join(root, spec["exe"])):
        return root
    left = lambda: max(5.0, deadline - time.monotonic())
    pkgs = _packages(spec["package"])
    if pkgs is None or len(pkgs) == 0:
        # Package lists may be missing or stale on a fresh machine: refresh once.
        _run(["apt-get", "update"], left())
        pkgs = _packages(spec["package"])
        if pkgs is None:
            raise PeerError(f"apt-cache knows no package {spec['package']}")
    debs = os.path.join(base, "debs")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(debs)
    rc, out = _run(["apt-get", "download"] + pkgs, left(), cwd=debs)
    if rc != 0:
        _run(["apt-get", "update"], left())
        rc, out = _run(["apt-get", "download"] + pkgs, left(), cwd=debs)
        if rc != 0:
            raise PeerError(f"apt-get download {' '.join(pkgs)} failed:\n{out.strip()}")
    tmp = root + ".tmp"
    os.makedirs(tmp)
    for deb in sorted(os.listdir(debs)):
        if deb.endswith(".deb"):
            rc, out = _run(["dpkg", "-x", os.path.join(debs, deb), tmp], left())
            if rc != 0:
                raise PeerError(f"dpkg -x {deb} failed:\n{out.strip()}")
    _check_libs(tmp, spec, _env(tmp))
    os.rename(tmp, root)
    with open(stamp, "w") as f:
        f.write("\n".join(sorted(d for d in os.listdir(debs) if d.endswith(".deb"))) + "\n")
    return root


def ensure_peers(names=("rsyslog", "syslog-ng"), timeout=300):
    """Fetch/unpack the peers once (cached under <cache>/peers, locked, time-bounded).

    Returns {name: peer}, peer being a dict with exe, env, module_args (the fixed part
    of the command line), root, version; or {name: {"error": why}} for a peer that
    could not be had. Falls back to a system-wide binary when fetching fails."""
    os.makedirs(PEERS_DIR, exist_ok=True)
    deadline = time.monotonic() + timeout
    out = {}
    with open(os.path.join(PEERS_DIR, ".lock"), "w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return {n: {"error": "timed out waiting for the peers cache lock"} for n in names}
                time.sleep(0.5)
        for name in names:
            spec = SPECS[name]
            try:
                root = _fetch(name, spec, deadline)
                with open(os.path.join(PEERS_DIR, name, "ok")) as f:
                    debs = f.read().split()
                main_deb = [d for d in debs if d.startswith(spec["package"] + "_")] or ["?_?_"]
                version = spec["package"] + " " + urllib.parse.unquote(main_deb[0].split("_")[1])
                mods = os.path.join(root, spec["modules"])
                out[name] = dict(root=root, exe=os.path.join(root, spec["exe"]), env=_env(root),
                                 version=version,
                                 module_args=(["-M", mods] if name == "rsyslog"
                                              else [f"--module-path={mods}"]))
            except (PeerError, OSError) as e:
                exe = shutil.which(os.path.basename(spec["exe"]))
                if exe:
                    out[name] = dict(root="/", exe=exe, env=dict(os.environ), module_args=[],
                                     version="system " + exe, note=f"fetch failed: {e}")
                else:
                    out[name] = {"error": str(e)}
    return out


def proc_stat(pid):
    """(cpu seconds, peak RSS bytes) of a live process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return cpu, hwm


class Sink:
    """A TCP server on 127.0.0.1 counting newline-terminated records; it keeps the
    first and the last record so that what a peer sends can be checked."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lines = 0
        self.bytes = 0
        self.connections = 0
        self.first = None
        self.last = b""
        self.lock = threading.Lock()
        self.conns = []
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    c.close()
                    return
                self.connections += 1
                self.conns.append(c)
            threading.Thread(target=self.read, args=(c,), daemon=True).start()

    def read(self, c):
        head = b""
        tail = b""
        while True:
            try:
                b = c.recv(1 << 20)
            except OSError:
                return
            if not b:
                return
            n = b.count(b"\n")
            if self.first is None:
                head += b[:4096]
            tail = (tail + b)[-8192:]
            with self.lock:
                self.lines += n
                self.bytes += len(b)
                if self.first is None and b"\n" in head:
                    self.first = head.split(b"\n", 1)[0]
                if n:
                    self.last = tail.rsplit(b"\n", 2)[-2]

    def close(self):
        with self.lock:
            self.closed = True
            conns, self.conns = self.conns, []
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


def _config(name, path, port, wd):
    """Configuration file of a peer tuned for throughput (see docs/benchmarks.md)."""
    if name == "rsyslog":
        conf = os.path.join(wd, "rsyslog.conf")
        text = (f'global(workDirectory="{wd}")\n'
                # LinkedList main queue of 100k messages (rsyslog's default size, 12x
                # sluice's 8192-event queue) and batches of 1024 to the action.
                'main_queue(queue.type="LinkedList" queue.size="100000" '
                'queue.dequeueBatchSize="1024")\n'
                'module(load="imfile" mode="inotify")\n'
                'template(name="line" type="string" string="%msg%\\n")\n'
                f'input(type="imfile" File="{path}" Tag="bench" freshStartTail="off" '
                'readMode="0")\n'
                # rsyslog's own messages (start-up notice, errors) stay out of the sink.
                'if $inputname == "imfile" then {\n'
                f'  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" '
                'template="line")\n'
                '}\n')
    else:
        conf = os.path.join(wd, "syslog-ng.conf")
        text = ('@version: 3.38\n'
                'options { stats-freq(0); use-dns(no); dns-cache(no); };\n'
                # Fetch 1000 lines per poll (default 10) with a 10k window (sluice's
                # queue is 8192): as fast as 10k/100k in trials, at a third of the RSS.
                f'source s {{ file("{path}" flags(no-parse) follow-freq(1) '
                'log-fetch-limit(1000) log-iw-size(10000)); };\n'
                f'destination d {{ network("127.0.0.1" port({port}) transport("tcp") '
                'template("${MESSAGE}\\n") log-fifo-size(10000)); };\n'
                # flow-control: the reader waits for the destination instead of dropping.
                'log { source(s); destination(d); flags(flow-control); };\n')
    with open(conf, "w") as f:
        f.write(text)
    return conf


def command(name, peer, conf, wd):
    """The full command line of a peer run in the foreground."""
    if name == "rsyslog":
        return [peer["exe"], "-n", "-f", conf, "-i", os.path.join(wd, "rsyslog.pid")] + \
            peer["module_args"]
    return [peer["exe"], "-F", "-e", "--no-caps", "-f", conf] + peer["module_args"] + \
        ["-R", os.path.join(wd, "syslog-ng.persist"), "-c", os.path.join(wd, "syslog-ng.ctl"),
         "-p", os.path.join(wd, "syslog-ng.pid")]


def stop(p, timeout=15):
    """SIGTERM by PID, SIGKILL after `timeout` s; returns the exit status."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
    return p.returncode


def _first_last(path):
    with open(path, "rb") as f:
        first = f.readline().rstrip(b"\n")
        f.seek(max(0, os.path.getsize(path) - 65536))
        last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return first, last


def run_peer(name, path, lines, workdir, timeout=None, peers=None, settle=1.0, stall=60):
    """Run one peer on `path` until the sink holds `lines` records (at most `timeout`
    seconds, 120 + lines/2000 by default, and `stall` seconds without a new record).

    Returns dict(seconds, cpu, rss, records, first_ok, last_ok, first, version, argv),
    or None when the peer is unavailable or failed (the reason is printed to stderr and
    written to <workdir>/<name>/<name>.log)."""
    peer = (peers or ensure_peers((name,)))[name]
    wd = os.path.join(workdir, name)
    shutil.rmtree(wd, ignore_errors=True)   # no imfile state / persist file from a past run
    os.makedirs(wd)
    logpath = os.path.join(wd, f"{name}.log")
    if "error" in peer:
        print(f"{name}: unavailable: {peer['error']}", file=sys.stderr)
        with open(logpath, "w") as f:
            f.write(peer["error"] + "\n")
        return None
    if timeout is None:
        timeout = 120 + lines / 2000
    sink = Sink()
    conf = _config(name, path, sink.port, wd)
    argv = command(name, peer, conf, wd)
    log = open(logpath, "wb")
    log.write(("$ " + " ".join(argv) + "\n").encode())
    log.flush()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=peer["env"],
                         stdin=subprocess.DEVNULL)
    try:
        end = t0 + timeout
        seen, moved = -1, t0
        while sink.lines < lines and p.poll() is None and time.monotonic() < end:
            now = time.monotonic()
            if sink.lines != seen:
                seen, moved = sink.lines, now
            elif now - moved > stall:
                break               # e.g. a configuration the peer ignored: no records
            time.sleep(0.01)
        if p.poll() is not None:
            print(f"{name}: exited with {p.returncode} after {sink.lines} records; see {logpath}",
                  file=sys.stderr)
            return None
        if sink.lines < lines:
            print(f"{name}: only {sink.lines} of {lines} records after "
                  f"{time.monotonic() - t0:.0f}s; see {logpath}", file=sys.stderr)
            return None
        dt = time.monotonic() - t0
        cpu, rss = proc_stat(p.pid)
        time.sleep(settle)          # anything beyond `lines` (duplicates) shows up here
        with sink.lock:
            records, first, last = sink.lines, sink.first, sink.last
            conns, nbytes = sink.connections, sink.bytes
    finally:
        stop(p)
        sink.close()
        log.close()
    cfirst, clast = _first_last(path)
    return dict(seconds=dt, cpu=cpu, rss=rss, records=records, bytes=nbytes, connections=conns,
                bytes_ok=nbytes == os.path.getsize(path),
                first_ok=first == cfirst, last_ok=last == clast, first=first,
                version=peer["version"], argv=argv)


def describe(name, r, lines):
    """One line saying what a peer delivered, and whether it is the corpus."""
    ok = r["records"] == lines and r["first_ok"] and r["last_ok"] and r["bytes_ok"]
    s = (f"{name}: {r['records']} records, {r['bytes']} bytes "
         f"({'= corpus size' if r['bytes_ok'] else '!= corpus size'}) over "
         f"{r['connections']} connection(s), first record "
         f"{'= corpus line 1' if r['first_ok'] else repr((r['first'] or b'')[:120])}, "
         f"last record {'= corpus last line' if r['last_ok'] else 'differs'}")
    return s + ("" if ok else "  << NOT the corpus as-is")


def main():
    peers = ensure_peers()
    for name, peer in peers.items():
        if "error" in peer:
            print(f"{name}: unavailable: {peer['error']}")
            continue
        print(f"{name}: {peer['version']}")
        print("  LD_LIBRARY_PATH=" + peer["env"].get("LD_LIBRARY_PATH", ""))
        print("  " + " ".join(command(name, peer, "<conf>", "<workdir>")))
    if len(sys.argv) > 1:
        import tempfile
        path = os.path.abspath(sys.argv[1])
        lines = int(sys.argv[2]) if len(sys.argv) > 2 else sum(1 for _ in open(path, "rb"))
        work = tempfile.mkdtemp(prefix="sluice-peers-")
        for name in peers:
            r = run_peer(name, path, lines, work, peers=peers)
            if r is None:
                continue
            print(f"{name}: {lines} lines in {r['seconds']:.2f}s = {lines / r['seconds']:,.0f} "
                  f"lines/s, cpu {r['cpu']:.2f}s, peak RSS {r['rss'] / 1e6:.1f} MB")
            print("  " + describe(name, r, lines))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
