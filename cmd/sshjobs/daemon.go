package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/sshjobs/sshjobs/sessions"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"golang.org/x/sys/unix"
)

// The daemon (DESIGN: "Processes"): one long-lived process per user and
// database owns the SSH connections, shells and workers, and serves MCP to
// each client that connects to its Unix socket. `sshjobs serve` is a thin
// front that forwards its stdio to the daemon, starting one when none runs,
// so that an MCP client restarting its server loses no job, shell, cwd or
// environment; the same idea as OpenSSH's ControlPersist.
//
// A connection starts with one line naming what it wants: daemonHelloMCP
// and a line of JSON (clientHello: the front's environment and settings),
// answered with a line of JSON (daemonAnswer), then the MCP stream
// (newline-delimited JSON-RPC) both ways; or daemonHelloStatus /
// daemonHelloStop / daemonHelloDrain, answered with one JSON line; or
// daemonHelloRun (daemon_run.go: `sshjobs run`'s job, submitted and
// streamed back on the connection).
const (
	daemonHelloMCP    = "sshjobs-mcp 2"
	daemonHelloRun    = "sshjobs-run 1"
	daemonHelloStatus = "sshjobs-status 1"
	daemonHelloStop   = "sshjobs-stop 1"
	daemonHelloDrain  = "sshjobs-drain 1"
)

// maxHello bounds a front's hello line (its environment and settings).
const maxHello = 1 << 20

// daemonAnswer is the daemon's answer to a front's hello.
type daemonAnswer struct {
	PID      int      `json:"pid"`
	Warnings []string `json:"warnings,omitempty"`
	Error    string   `json:"error,omitempty"`
	// JobID is the job a run hello (daemonHelloRun) submitted.
	JobID string `json:"job_id,omitempty"`
}

// envHelloOnStdin tells a daemon that the hello of the front that starts it
// is on its stdin: that front's environment and master password are the
// daemon's own (for the jobs that come with no client), without ever being
// in its environment or on its command line.
const envHelloOnStdin = "SSHJOBS_DAEMON_HELLO_ON_STDIN"

// DefaultDaemonLinger is how long a daemon with no client, no running job
// and no open connection waits before it exits: the connections' own idle
// timeout, so that a daemon outlives the connections it keeps warm.
const DefaultDaemonLinger = sessions.DefaultIdleTimeout

// maxDaemonLog is the size past which the daemon's log is rotated (to .1) when
// a daemon starts.
const maxDaemonLog = 10 << 20

// daemonPaths are where the daemon of one database listens and locks (in
// $XDG_RUNTIME_DIR/sshjobs, else /tmp/sshjobs-UID, named after a hash of the
// database's absolute path and the build) and logs (beside the database).
type daemonPaths struct {
	socket, lock, log string
	all               string // a glob of the sockets of every daemon of the database
}

func daemonPathsFor(db string) (daemonPaths, error) {
	abs, err := filepath.Abs(db)
	if err != nil {
		return daemonPaths{}, fmt.Errorf("daemon: database path %q: %w", db, err)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("sshjobs-%d", os.Getuid()))
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		dir = filepath.Join(rt, "sshjobs")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return daemonPaths{}, fmt.Errorf("daemon: %w", err)
	}
	// The folder holds the socket: it must be ours and private, or another
	// user could stand in for the daemon.
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
		return daemonPaths{}, fmt.Errorf("daemon: %s must be a folder of this user with mode 0700", dir)
	}
	// One daemon per database and build: a client of another build never
	// talks to an older daemon's protocol; it gets a daemon of its own, and
	// the older build's drains (several processes on one database are safe).
	// The build goes in hashed: a version string from the build info is long
	// (a pseudo-version, +dirty) and one from -ldflags may hold a "/", and a
	// socket's path must fit in 108 bytes. The settings of each front are
	// not in the name: they come with its hello (clientHello).
	sum := sha256.Sum256([]byte(abs))
	build := sha256.Sum256([]byte(buildID()))
	base := filepath.Join(dir, hex.EncodeToString(sum[:8])+"-"+hex.EncodeToString(build[:6]))
	return daemonPaths{socket: base + ".sock", lock: base + ".lock", log: abs + ".daemon.log",
		all: filepath.Join(dir, hex.EncodeToString(sum[:8])+"-*.sock")}, nil
}

// daemonStatus is what `sshjobs daemon status` prints.
type daemonStatus struct {
	PID         int    `json:"pid"`
	Socket      string `json:"socket"`
	Version     string `json:"version"`
	Build       string `json:"build"`    // tells two builds of one version apart
	BuiltAt     string `json:"built_at"` // the executable's time: the older build drains
	Draining    bool   `json:"draining"` // takes no new client; exits when its jobs end
	Owner       string `json:"owner"`    // the jobs.owner of the jobs it runs
	DB          string `json:"db"`
	StartedAt   string `json:"started_at"`
	Clients     int    `json:"clients"`
	ActiveJobs  int    `json:"active_jobs"`
	Connections int    `json:"connections"`
}

// daemon serves one database's app to the clients of its socket.
type daemon struct {
	a       *app
	cfg     config
	paths   daemonPaths
	started time.Time
	log     *slog.Logger
	idle    time.Duration
	stop    context.CancelFunc
	lock    *os.File // flock'd while this daemon is the one at paths.socket

	mu       sync.Mutex // protects the fields below
	clients  int
	lastUse  time.Time
	socket   string // where it listens: paths.socket, elsewhere once draining
	draining bool
}

// runDaemon serves until stopped, idle, or a signal. It returns nil at once
// when another daemon holds the database's lock.
func runDaemon(ctx context.Context, cfg config, idle time.Duration) error {
	paths, err := daemonPathsFor(cfg.DB)
	if err != nil {
		return err
	}
	lock, err := os.OpenFile(paths.lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // another daemon serves this database
	}
	os.Remove(paths.socket) // a dead daemon's: we hold the lock
	ln, err := net.Listen("unix", paths.socket)
	if err != nil {
		return fmt.Errorf("daemon: listen %s: %w", paths.socket, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // the socket may have moved (drain): removed below
	if err := os.Chmod(paths.socket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("daemon: %w", err)
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	a, err := openApp(ctx, cfg, modeServe)
	if err != nil {
		ln.Close()
		os.Remove(paths.socket)
		return err
	}
	defer a.Close()
	d := &daemon{a: a, cfg: cfg, paths: paths, started: time.Now(), log: a.log, idle: idle, stop: stop, lock: lock,
		lastUse: time.Now(), socket: paths.socket}
	defer func() { os.Remove(d.socketPath()) }()
	a.log.Info("daemon serving", "socket", paths.socket, "db", cfg.DB, "version", appVersion(), "build", buildID(), "pid", os.Getpid())
	go func() { <-ctx.Done(); ln.Close() }()
	go d.exitWhenIdle(ctx)
	go d.drainOlder()
	server := newMCPServer(a)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("daemon: accept: %w", err)
		}
		wg.Go(func() { d.serve(ctx, server, c) })
	}
}

// serve answers one connection.
func (d *daemon) serve(ctx context.Context, server *mcp.Server, c net.Conn) {
	defer c.Close()
	if err := samePeerUser(c); err != nil {
		d.log.Warn("daemon: connection refused", "err", err)
		return
	}
	r := bufio.NewReader(io.LimitReader(c, maxHello))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	hello, err := r.ReadString('\n')
	if err != nil {
		return
	}
	switch strings.TrimSpace(hello) {
	case daemonHelloStatus:
		json.NewEncoder(c).Encode(d.status())
	case daemonHelloStop:
		json.NewEncoder(c).Encode(d.status())
		d.log.Info("daemon stopping on request")
		d.stop()
	case daemonHelloDrain:
		d.drain()
		json.NewEncoder(c).Encode(d.status())
	case daemonHelloRun:
		d.serveRun(ctx, c, r)
	case daemonHelloMCP:
		h, ans, ok := d.readHello(c, r)
		if !ok {
			return
		}
		c.SetReadDeadline(time.Time{})
		if err := json.NewEncoder(c).Encode(ans); err != nil {
			return
		}
		cl := d.a.newClient(h)
		d.use(+1)
		defer d.use(-1)
		// The rest of the stream is MCP, read from r (the hello's reader may
		// hold its start), no longer bounded by maxHello.
		in := io.MultiReader(r, c)
		ss, err := server.Connect(withClient(ctx, cl), &mcp.IOTransport{Reader: io.NopCloser(in), Writer: c}, nil)
		if err != nil {
			d.log.Warn("daemon: MCP session", "err", err)
			return
		}
		done := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
				ss.Close()
			case <-done:
			}
		}()
		ss.Wait()
		close(done)
	}
}

// readHello reads a front's clientHello (the line after its hello line) and
// makes the daemon's answer to it, its warnings included, for the caller to
// complete and send. A hello the daemon cannot take is answered here: ok is
// false then.
func (d *daemon) readHello(c net.Conn, r *bufio.Reader) (h *clientHello, ans daemonAnswer, ok bool) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, ans, false
	}
	h = &clientHello{}
	err = json.Unmarshal(line, h)
	clear(line) // it held the client's secrets
	if err != nil {
		json.NewEncoder(c).Encode(daemonAnswer{PID: os.Getpid(), Error: "unreadable hello: " + err.Error()})
		return nil, ans, false
	}
	if h.Build != buildID() {
		json.NewEncoder(c).Encode(daemonAnswer{PID: os.Getpid(), Error: fmt.Sprintf("this daemon is build %s, the front %s", buildID(), h.Build)})
		return nil, ans, false
	}
	ans = daemonAnswer{PID: os.Getpid()}
	if diff := h.Shared.conflicts(d.cfg.shared()); len(diff) > 0 {
		ans.Warnings = append(ans.Warnings, fmt.Sprintf("the daemon serving %s (pid %d) keeps the database settings it started with, not this front's: %s; to change them, run `sshjobs daemon stop` and start again",
			d.cfg.DB, os.Getpid(), strings.Join(diff, ", ")))
	}
	return h, ans, true
}

func (d *daemon) use(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clients += n
	d.lastUse = time.Now()
}

func (d *daemon) socketPath() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.socket
}

func (d *daemon) status() daemonStatus {
	d.mu.Lock()
	clients, socket, draining := d.clients, d.socket, d.draining
	d.mu.Unlock()
	return daemonStatus{PID: os.Getpid(), Socket: socket, Version: appVersion(), Build: buildID(), BuiltAt: builtAt().Format(time.RFC3339Nano),
		Draining: draining, Owner: d.a.eng.Owner(), DB: d.cfg.DB,
		StartedAt: d.started.UTC().Format(time.RFC3339), Clients: clients,
		ActiveJobs: d.a.eng.Running(), Connections: len(d.a.pool.Snapshot())}
}

// drain makes way for a daemon of a newer build: this one takes no new
// client (its socket moves aside, where only status, stop and cancel look,
// and its lock is released), serves the clients it has, and exits once it
// has none and its jobs have ended.
func (d *daemon) drain() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return
	}
	d.draining = true
	aside := strings.TrimSuffix(d.socket, ".sock") + fmt.Sprintf("-draining-%d.sock", os.Getpid())
	if err := os.Rename(d.socket, aside); err != nil {
		// Then no new front can tell it from a serving daemon: stop
		// taking any, by leaving the path to the next one (whose socket
		// the exit must not remove then).
		d.log.Warn("daemon drain: moving the socket aside", "err", err)
		os.Remove(d.socket)
		d.socket = ""
	} else {
		d.socket = aside
	}
	syscall.Flock(int(d.lock.Fd()), syscall.LOCK_UN)
	d.log.Info("daemon draining: a newer build serves the database", "clients", d.clients, "active_jobs", d.a.eng.Running())
}

// drainOlder asks the daemons of older builds of the database to drain.
// Only older ones: two builds in use at once would otherwise drain each
// other, back and forth.
func (d *daemon) drainOlder() {
	mine := builtAt()
	for _, st := range daemonStatuses(d.paths, d.paths.socket) {
		theirs, err := time.Parse(time.RFC3339Nano, st.BuiltAt)
		if st.PID == os.Getpid() || st.Build == buildID() || st.Draining || err != nil || !theirs.Before(mine) {
			continue
		}
		c, err := dialDaemon(daemonPaths{socket: st.Socket}, daemonHelloDrain)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, io.LimitReader(c, 1<<16))
		c.Close()
		d.log.Info("asked the daemon of an older build to drain", "pid", st.PID, "build", st.Build)
	}
}

// exitWhenIdle stops the daemon once it has had no client, no running job
// and no open connection for d.idle (the linger), and a draining one as soon
// as it has no client and no running job.
func (d *daemon) exitWhenIdle(ctx context.Context) {
	t := time.NewTicker(max(min(d.idle/4, time.Second), 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		running := d.a.eng.Running()
		if running > 0 || len(d.a.pool.Snapshot()) > 0 {
			d.use(0) // a running job or an open connection counts as use
		}
		d.mu.Lock()
		idle := d.clients == 0 && time.Since(d.lastUse) > d.idle
		drained := d.draining && d.clients == 0 && running == 0
		d.mu.Unlock()
		switch {
		case drained:
			d.log.Info("daemon drained: exiting")
		case idle:
			d.log.Info("daemon unused: exiting", "linger", d.idle)
		default:
			continue
		}
		d.stop()
		return
	}
}

// buildID names this binary: its version and a hash of the executable's
// path, size and time, so that a rebuilt "dev" binary differs too. It is
// taken once: a binary replaced under a running daemon is another build.
var buildID = sync.OnceValue(func() string {
	fi, err := executable()
	if err != nil {
		return appVersion()
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %d %d", fi.path, fi.Size(), fi.ModTime().UnixNano()))
	return appVersion() + "-" + hex.EncodeToString(sum[:4])
})

// builtAt is the time of this binary's executable (taken once): of two
// builds, the older one's daemon drains.
var builtAt = sync.OnceValue(func() time.Time {
	fi, err := executable()
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
})

type exeInfo struct {
	os.FileInfo
	path string
}

func executable() (exeInfo, error) {
	exe, err := os.Executable()
	if err != nil {
		return exeInfo{}, err
	}
	fi, err := os.Stat(exe)
	return exeInfo{fi, exe}, err
}

// samePeerUser refuses a connection from another user (the folder's mode
// already keeps them out; this holds even if it did not).
func samePeerUser(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer uid %d (pid %d) is not this user's (%d)", cred.Uid, cred.Pid, os.Getuid())
	}
	return nil
}

// dialDaemon connects to the database's daemon and says hello.
func dialDaemon(paths daemonPaths, hello string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", paths.socket, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, hello+"\n"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dialMCP connects to the daemon at socket as the client h describes and
// prints the daemon's warnings for it to warn; then c carries MCP.
func dialMCP(socket string, h *clientHello, warn io.Writer) (net.Conn, error) {
	c, _, err := dialClient(socket, daemonHelloMCP, h, nil, warn)
	return c, err
}

// daemonRefused is a daemon's error answer to a front's hello: the daemon
// runs, so there is no point in starting one.
type daemonRefused struct{ error }

// dialClient connects to the daemon at socket with hello, as the client h
// describes, followed by req (a line of JSON, or nothing), and returns the
// daemon's answer; it prints the answer's warnings for it to warn. What
// follows on c is hello's.
func dialClient(socket, hello string, h *clientHello, req []byte, warn io.Writer) (net.Conn, daemonAnswer, error) {
	var ans daemonAnswer
	b, err := json.Marshal(h)
	if err != nil {
		return nil, ans, fmt.Errorf("daemon hello: %w", err)
	}
	// One write: the hello line, the client's and the request.
	msg := make([]byte, 0, len(hello)+len(b)+len(req)+3)
	msg = append(append(msg, hello...), '\n')
	msg = append(append(msg, b...), '\n')
	if req != nil {
		msg = append(append(msg, req...), '\n')
	}
	clear(b)
	defer clear(msg) // it holds the client's secrets
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return nil, ans, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(c, 64<<10) // bounds the answer's line
	err = func() error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("daemon hello answer: %w", err)
		}
		if err := json.Unmarshal(line, &ans); err != nil {
			return fmt.Errorf("daemon hello answer %q: %w", line, err)
		}
		return nil
	}()
	if err != nil {
		c.Close()
		return nil, ans, err
	}
	for _, w := range ans.Warnings {
		fmt.Fprintf(warn, "sshjobs: warning: %s\n", w)
	}
	if ans.Error != "" {
		c.Close()
		return nil, ans, daemonRefused{fmt.Errorf("daemon (pid %d) at %s: %s", ans.PID, socket, ans.Error)}
	}
	c.SetDeadline(time.Time{})
	if r.Buffered() == 0 {
		return c, ans, nil
	}
	// What follows came with the answer: c reads on from r.
	return daemonConn{c, r}, ans, nil
}

// daemonConn is a connection to the daemon read through r. It hides the
// socket's descriptor (SyscallConn), which a copy would read past r.
type daemonConn struct {
	net.Conn
	r *bufio.Reader
}

func (c daemonConn) CloseWrite() error { return c.Conn.(*net.UnixConn).CloseWrite() }

func (c daemonConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// startDaemon connects to the database's daemon as the client h describes,
// starting one (this binary, `daemon run` with the same flags, in a session
// of its own so that the client's signals do not reach it) when none
// answers.
func startDaemon(ctx context.Context, paths daemonPaths, args []string, h *clientHello, warn io.Writer) (net.Conn, error) {
	return startDaemonFor(ctx, paths, args, h, func() (net.Conn, error) { return dialMCP(paths.socket, h, warn) })
}

// startDaemonFor is startDaemon with dial, which connects and says hello;
// a daemon's refusal (daemonRefused) is final.
func startDaemonFor(ctx context.Context, paths daemonPaths, args []string, h *clientHello, dial func() (net.Conn, error)) (net.Conn, error) {
	c, err := dial()
	if err == nil || errors.As(err, new(daemonRefused)) {
		return c, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	// The log lives beside the database, whose folder the daemon has not
	// created yet on a fresh machine (0700, as sqlstore makes it).
	if err := os.MkdirAll(filepath.Dir(paths.log), 0o700); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if fi, err := os.Stat(paths.log); err == nil && fi.Size() > maxDaemonLog {
		os.Rename(paths.log, paths.log+".1")
	}
	logf, err := os.OpenFile(paths.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("daemon: log %s: %w", paths.log, err)
	}
	defer logf.Close()
	// A daemon that finds the lock taken exits 0 at once: another one starts
	// or (daemon stop, a linger exit) is shutting down and still holds it.
	// Then start again, until the deadline, so that the new one takes over.
	deadline := time.Now().Add(15 * time.Second)
	for {
		exited, err := spawnDaemon(exe, args, h, logf)
		if err != nil {
			return nil, err
		}
		for wait := true; wait; {
			if c, err := dial(); err == nil || errors.As(err, new(daemonRefused)) {
				return c, err
			}
			select {
			case err := <-exited:
				if err != nil {
					return nil, fmt.Errorf("daemon exited (%v); its log: %s", err, paths.log)
				}
				wait = false // lost the lock: try the holder, then start again
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("daemon did not answer on %s within 15s; its log: %s", paths.socket, paths.log)
			}
		}
	}
}

// spawnDaemon starts `daemon run` with args in a session of its own, with
// this front's hello on its stdin; the channel gets its exit.
func spawnDaemon(exe string, args []string, h *clientHello, logf *os.File) (<-chan error, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("daemon hello: %w", err)
	}
	cmd := exec.Command(exe, append([]string{"daemon", "run"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The hello (with the secrets) on stdin; the environment without them.
	cmd.Env = append(daemonEnviron(os.Environ()), envHelloOnStdin+"=1")
	cmd.Stdin = bytes.NewReader(b)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("daemon: start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, nil
}

// daemonEnviron is env for a daemon: without secrets (its environment is
// readable in /proc as long as it lives) and without OVRD_* (each client's
// come with its hello; the daemon must not apply one front's to another).
func daemonEnviron(env []string) []string {
	var out []string
	for _, kv := range sshconfig.WithoutSecrets(env) {
		if !strings.HasPrefix(strings.ToUpper(kv), "OVRD_") && !strings.HasPrefix(kv, envHelloOnStdin+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// readHelloFromStdin reads the starting front's hello (spawnDaemon).
func readHelloFromStdin() (*clientHello, error) {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, maxHello))
	if err != nil {
		return nil, fmt.Errorf("daemon: the front's hello on stdin: %w", err)
	}
	defer clear(b)
	var h clientHello
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("daemon: the front's hello on stdin: %w", err)
	}
	return &h, nil
}

// forward copies the client's stdio to the daemon and back until the daemon
// ends the session (after the client closed stdin, or on its own).
func forward(ctx context.Context, c net.Conn, stdin io.Reader, stdout io.Writer) error {
	go func() {
		io.Copy(c, stdin)
		c.(interface{ CloseWrite() error }).CloseWrite() // the client closed stdin: the session ends
	}()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdout, c)
		done <- err
	}()
	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
}

// errNoDaemon: no daemon serves the database.
var errNoDaemon = errors.New("no sshjobs daemon runs")

// callDaemon calls one tool on the daemon over c and returns its answer, or
// the tool error's text as an error.
func callDaemon(ctx context.Context, c net.Conn, tool string, in map[string]any) (*jobView, error) {
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "sshjobs-cli", Version: appVersion()}, nil).
		Connect(ctx, &mcp.IOTransport{Reader: c, Writer: c}, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("daemon: %w", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: in})
	if err != nil {
		return nil, fmt.Errorf("daemon: %s: %w", tool, err)
	}
	var v jobView
	if b, err := json.Marshal(res.StructuredContent); err != nil || json.Unmarshal(b, &v) != nil || v.JobID == "" {
		// A tool error (a host that does not resolve, bad input): its text.
		var msg []string
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				msg = append(msg, t.Text)
			}
		}
		return nil, errors.New(strings.Join(msg, " "))
	}
	return &v, nil
}

// cancelThroughDaemon cancels a job through the daemon that runs it (owner
// is the job's owner); errNoDaemon when none of the database's daemons does.
func cancelThroughDaemon(ctx context.Context, cfg config, owner, id, signal string, grace time.Duration) error {
	paths, err := daemonPathsFor(cfg.DB)
	if err != nil {
		return err
	}
	h, err := newHello(cfg)
	if err != nil {
		return err
	}
	for _, st := range daemonStatuses(paths) {
		if st.Owner != owner {
			continue
		}
		c, err := dialMCP(st.Socket, &h, io.Discard)
		if err != nil {
			break
		}
		_, err = callDaemon(ctx, c, "ssh_cancel", map[string]any{"job_id": id, "signal": signal, "grace_s": grace.Seconds()})
		return err
	}
	return errNoDaemon
}

// daemonStatuses asks every daemon of the database (one per build, and
// those draining) for its status.
func daemonStatuses(paths daemonPaths, except ...string) []daemonStatus {
	socks, _ := filepath.Glob(paths.all)
	var out []daemonStatus
	for _, sock := range socks {
		if slices.Contains(except, sock) {
			continue
		}
		c, err := dialDaemon(daemonPaths{socket: sock}, daemonHelloStatus)
		if err != nil {
			continue // a stale socket: its daemon is gone
		}
		c.SetDeadline(time.Now().Add(5 * time.Second)) // a stuck daemon is not one to report
		var st daemonStatus
		if json.NewDecoder(c).Decode(&st) == nil {
			out = append(out, st)
		}
		c.Close()
	}
	return out
}

// stopDaemon asks the daemon of st to stop and, with wait, waits (up to 30 s)
// until its process has exited: its lock is free then, for the next one.
func stopDaemon(st daemonStatus, wait bool) {
	c, err := dialDaemon(daemonPaths{socket: st.Socket}, daemonHelloStop)
	if err != nil {
		return
	}
	io.Copy(io.Discard, c)
	c.Close()
	for deadline := time.Now().Add(30 * time.Second); wait && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(st.PID, 0) != nil {
			return
		}
	}
}
