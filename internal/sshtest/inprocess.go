package sshtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/sshjobs/sshjobs/internal/sshserver"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// stdPath is the PATH sshd gives sessions (Debian's default for root).
const stdPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// sftpServer is OpenSSH's sftp-server; a variable for the test of the
// fallback.
var sftpServer = "/usr/lib/openssh/sftp-server"

// sftpHome is where SFTP sessions start (sftp-server -d): the sessions'
// HOME, so that `~` means one folder to the shell and to SFTP, as it does
// on a real host where HOME is the passwd home that sftp-server starts in.
func (s *Server) sftpHome() string {
	if s.Home != "" {
		return s.Home
	}
	return s.home
}

// StartInProcess starts an x/crypto/ssh server on a free loopback port that
// serves PTY and pipe sessions as the current user, and stops it when the test
// ends. It accepts the client key, and Password by password auth (and by
// keyboard-interactive auth with Options.KeyboardInteractive).
func StartInProcess(t testing.TB, o Options) *Server {
	t.Helper()
	s, hostKey := newServer(t, KindInProcess, o)
	if s.opts.Shell == "" {
		s.opts.Shell = "/bin/bash"
	}
	if s.account == nil {
		pw := make([]byte, 12)
		rand.Read(pw)
		s.Password = hex.EncodeToString(pw)
	}

	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == s.User && string(key.Marshal()) == string(s.signer.PublicKey().Marshal()) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("sshtest: unknown key")
		},
		PasswordCallback: func(c ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if c.User() == s.User && string(pw) == s.Password {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("sshtest: wrong password")
		},
	}
	cfg.MaxAuthTries = o.MaxAuthTries
	if o.KeyboardInteractive {
		cfg.KeyboardInteractiveCallback = func(c ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ans, err := ask("", "", []string{"Password: "}, []bool{false})
			if err == nil && len(ans) == 1 && c.User() == s.User && ans[0] == s.Password {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("sshtest: wrong password")
		}
	}
	if o.Banner != "" {
		cfg.BannerCallback = func(ssh.ConnMetadata) string { return o.Banner }
	}
	hostSigner, err := ssh.NewSignerFromKey(hostKey)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	cfg.AddHostKey(hostSigner)
	if s.HostCert != nil {
		cs, err := ssh.NewCertSigner(s.HostCert, hostSigner)
		if err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		cfg.AddHostKey(cs)
	}

	if s.ln, err = net.Listen("tcp", net.JoinHostPort(s.Host, "0")); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	s.Port = s.ln.Addr().(*net.TCPAddr).Port
	s.writeClientFiles()
	s.wg.Add(1)
	go s.accept(cfg)
	t.Cleanup(s.closeInProcess)
	return s
}

// conn is one client connection; done is closed when it is closed, which
// releases anything waiting for the server to be unsilenced.
type conn struct {
	nc   net.Conn
	done chan struct{}
	once sync.Once

	mu       sync.Mutex // protects the field below
	sessions int        // session channels open
}

// openSession counts a new session channel, unless max are open.
func (c *conn) openSession(max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions >= max {
		return false
	}
	c.sessions++
	return true
}

func (c *conn) closeSession() {
	c.mu.Lock()
	c.sessions--
	c.mu.Unlock()
}

func (c *conn) close() {
	c.once.Do(func() { close(c.done); c.nc.Close() })
}

func (s *Server) connList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cs []*conn
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

func (s *Server) closeInProcess() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.DropConnections()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.t.Logf("sshtest: in-process server still busy 10s after close")
	}
}

// waitAwake blocks while the server is silent; false means the connection closed.
func (s *Server) waitAwake(done <-chan struct{}) bool {
	s.mu.Lock()
	awake := s.awake
	s.mu.Unlock()
	select {
	case <-awake:
		return true
	case <-done:
		return false
	}
}

// gated is a writer towards or from the client that honours SetSilent and SlowOutput.
type gated struct {
	s     *Server
	c     *conn
	w     io.Writer
	delay time.Duration
}

func (g gated) Write(p []byte) (int, error) {
	if g.delay > 0 {
		time.Sleep(g.delay)
	}
	if !g.s.waitAwake(g.c.done) {
		return 0, net.ErrClosed
	}
	return g.w.Write(p)
}

func (s *Server) accept(cfg *ssh.ServerConfig) {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{nc: nc, done: make(chan struct{})}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c, cfg)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) serveConn(c *conn, cfg *ssh.ServerConfig) {
	defer c.close()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(c.nc, cfg)
	if err != nil {
		return
	}
	c.nc.SetDeadline(time.Time{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Like OpenSSH, refuse every global request, keepalive@openssh.com included:
		// a failure reply still proves the peer is alive.
		for req := range reqs {
			if s.waitAwake(c.done) && req.WantReply {
				req.Reply(false, nil)
			}
		}
	}()
	for nch := range chans {
		var serve func(*conn, ssh.Conn, ssh.NewChannel)
		switch nch.ChannelType() {
		case "session":
			serve = s.serveSession
		case "direct-tcpip":
			serve = s.serveForward
		default:
			nch.Reject(ssh.UnknownChannelType, "sshtest: unsupported channel type")
			continue
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); serve(c, sc, nch) }()
	}
}

// serveForward handles direct-tcpip (what ProxyJump uses), to loopback only.
func (s *Server) serveForward(c *conn, _ ssh.Conn, nch ssh.NewChannel) {
	var d struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nch.ExtraData(), &d); err != nil {
		nch.Reject(ssh.ConnectionFailed, "sshtest: bad direct-tcpip request")
		return
	}
	if ip := net.ParseIP(d.Host); d.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		nch.Reject(ssh.Prohibited, "sshtest: forwarding to loopback only")
		return
	}
	tc, err := net.DialTimeout("tcp", net.JoinHostPort(d.Host, strconv.Itoa(int(d.Port))), 5*time.Second)
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	defer tc.Close()
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	go ssh.DiscardRequests(reqs)
	// Either side may close first, or never: stop at the end of both copies, or
	// when the connection goes; the deferred Closes end a copy still running.
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { io.Copy(gated{s: s, c: c, w: tc}, ch); tc.(*net.TCPConn).CloseWrite(); copies.Done() }()
	go func() { io.Copy(gated{s: s, c: c, w: ch}, tc); ch.CloseWrite(); copies.Done() }()
	both := make(chan struct{})
	go func() { copies.Wait(); close(both) }()
	select {
	case <-both:
	case <-c.done:
	}
}

// session is one "session" channel: an optional PTY, then one shell or command.
type session struct {
	s      *Server
	c      *conn
	ch     ssh.Channel
	env    []string
	master *os.File // PTY master, after pty-req
	tty    *os.File // PTY slave, until the command starts

	mu     sync.Mutex
	proc   *os.Process
	begun  chan struct{} // closed once the command was started, or failed to start
	exited chan struct{} // closed when the command has exited (or failed to start)

	// barrier takes a channel that is closed once every request received
	// before it was sent has been handled (requestsFirst); reqsDone is
	// closed when no more requests come.
	barrier  chan chan struct{}
	reqsDone chan struct{}
}

// orderRequests hands reqs to the session's request loop one at a time,
// and answers barriers. x/crypto/ssh delivers a channel's requests and its
// data to different readers, so a window-change sent before a command's
// bytes could be applied after the shell read them (seen: `stty size`
// printing the old size under load); sshd keeps the order. A request sent
// before some data is in reqs by the time the data can be read: a barrier
// drains reqs, then sends a nil request, which the loop takes only once it
// has handled the ones before.
func (ss *session) orderRequests(reqs <-chan *ssh.Request) <-chan *ssh.Request {
	ordered := make(chan *ssh.Request)
	go func() {
		defer close(ss.reqsDone)
		defer close(ordered)
		for {
			select {
			case req, ok := <-reqs:
				if !ok {
					return
				}
				ordered <- req
			case b := <-ss.barrier:
				for len(reqs) > 0 {
					ordered <- <-reqs
				}
				ordered <- nil
				close(b)
			}
		}
	}()
	return ordered
}

// requestsFirst writes to w once the requests received before the write
// have been handled (orderRequests).
type requestsFirst struct {
	ss *session
	w  io.Writer
}

func (r requestsFirst) Write(p []byte) (int, error) {
	b := make(chan struct{})
	select {
	case r.ss.barrier <- b:
		<-b
	case <-r.ss.reqsDone:
	}
	return r.w.Write(p)
}

func (s *Server) serveSession(c *conn, sc ssh.Conn, nch ssh.NewChannel) {
	if !c.openSession(s.opts.maxSessions()) {
		nch.Reject(ssh.ConnectionFailed, "open failed") // as sshd says it
		return
	}
	defer c.closeSession()
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	ss := &session{s: s, c: c, ch: ch, begun: make(chan struct{}), exited: make(chan struct{}),
		barrier: make(chan chan struct{}), reqsDone: make(chan struct{})}
	ra, _ := sc.RemoteAddr().(*net.TCPAddr)
	la, _ := sc.LocalAddr().(*net.TCPAddr)
	ss.env = []string{
		"HOME=" + s.home, "USER=" + s.User, "LOGNAME=" + s.User, "SHELL=" + s.opts.Shell, "PATH=" + stdPath,
		fmt.Sprintf("SSH_CLIENT=%s %d %d", ra.IP, ra.Port, la.Port),
		fmt.Sprintf("SSH_CONNECTION=%s %d %s %d", ra.IP, ra.Port, la.IP, la.Port),
	}
	started := false
	for req := range ss.orderRequests(reqs) {
		if req == nil { // a barrier: the requests before it are handled
			continue
		}
		ok := false
		switch req.Type {
		case "pty-req":
			ok = !started && (s.opts.Serve != nil || ss.master == nil && ss.ptyReq(req.Payload) == nil)
		case "window-change":
			var w struct{ Cols, Rows, Width, Height uint32 }
			ok = ss.master != nil && ssh.Unmarshal(req.Payload, &w) == nil && ss.setSize(w.Cols, w.Rows, w.Width, w.Height) == nil
		case "env":
			var e struct{ Name, Value string }
			if ok = ssh.Unmarshal(req.Payload, &e) == nil; ok {
				ss.env = append(ss.env, e.Name+"="+e.Value)
			}
		case "shell", "exec", "subsystem":
			var e struct{ Command string }
			if !started && (req.Type == "shell" || ssh.Unmarshal(req.Payload, &e) == nil) {
				if req.Type == "subsystem" {
					// Run OpenSSH's sftp-server when it is installed, as a non-internal
					// sftp Subsystem line would; there is no other subsystem. A
					// device CLI (Serve) has none, as most switches.
					if e.Command != "sftp" || s.opts.Serve != nil {
						break
					}
					if _, err := os.Stat(sftpServer); err != nil {
						// Else pkg/sftp's server, which runs as this process: not
						// for Options.User, whose identity it would not have.
						if s.account != nil {
							break
						}
						started = true
						req.Reply(true, nil)
						s.wg.Add(1)
						go func() { defer s.wg.Done(); ss.serveSFTP() }()
						continue
					}
					e.Command = sftpServer + " -d " + shellQuote(s.sftpHome())
				}
				started = true
				// Reply first: output and exit-status must not reach the client before it.
				req.Reply(true, nil)
				if s.opts.Serve != nil && req.Type != "subsystem" {
					close(ss.begun)
					s.wg.Add(1)
					go func() { defer s.wg.Done(); ss.serveCLI(e.Command) }()
					continue
				}
				login := req.Type == "shell"
				s.wg.Add(1)
				go func() { defer s.wg.Done(); ss.run(login, e.Command) }()
				continue
			}
		case "signal":
			var sig struct{ Signal string }
			if ok = ssh.Unmarshal(req.Payload, &sig) == nil; ok {
				ss.mu.Lock()
				if ss.proc != nil {
					ss.proc.Signal(unix.SignalNum("SIG" + sig.Signal))
				}
				ss.mu.Unlock()
			}
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	ss.hangup(started)
}

// serveSFTP serves SFTP on the channel with pkg/sftp, starting in the
// sessions' home, then reports exit status 0 and closes the channel.
func (ss *session) serveSFTP() {
	close(ss.begun)
	defer close(ss.exited)
	defer ss.ch.Close()
	srv, err := sftp.NewServer(ss.ch, sftp.WithServerWorkingDirectory(ss.s.sftpHome()))
	if err != nil {
		fmt.Fprintf(ss.ch.Stderr(), "sshtest: %v\r\n", err)
		return
	}
	srv.Serve()
	srv.Close()
	ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
}

// serveCLI runs Options.Serve on the channel, then reports exit status 0
// and closes the channel.
func (ss *session) serveCLI(command string) {
	defer close(ss.exited)
	defer ss.ch.Close()
	ss.s.opts.Serve(gatedRW{ss.ch, gated{s: ss.s, c: ss.c, w: ss.ch, delay: ss.s.opts.SlowOutput}}, command)
	if ss.s.waitAwake(ss.c.done) {
		ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
		ss.ch.CloseWrite()
	}
}

// gatedRW reads from the channel and writes through the silence gate.
type gatedRW struct {
	io.Reader
	w gated
}

func (g gatedRW) Write(p []byte) (int, error) { return g.w.Write(p) }

// run runs the login shell or command, then reports how it ended and closes the channel.
func (ss *session) run(login bool, command string) {
	s, o := ss.s, ss.s.opts
	defer ss.ch.Close()
	cmd := &exec.Cmd{Path: o.Shell, Args: []string{shellArgs(o.Shell, login)}, Dir: s.home}
	if !login {
		cmd.Args = append(cmd.Args, "-c", command)
	}
	cmd.Env = append(append([]string{}, ss.env...), o.Env...)
	var cred *syscall.Credential
	if a := s.account; a != nil {
		// Options.User: the session runs as that account, on a terminal it
		// owns (sudo reads the password from it).
		cred = &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid)}
		if ss.tty != nil {
			ss.tty.Chown(a.uid, a.gid)
		}
	}
	out := gated{s: s, c: ss.c, w: ss.ch, delay: o.SlowOutput}
	var outputDone chan struct{}
	if ss.master != nil {
		cmd.Env = append(cmd.Env, "SSH_TTY="+ss.tty.Name())
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ss.tty, ss.tty, ss.tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Credential: cred}
		outputDone = make(chan struct{})
		go func() { ss.pump(out); close(outputDone) }()
		go io.Copy(gated{s: s, c: ss.c, w: requestsFirst{ss: ss, w: ss.master}}, ss.ch)
		if login && o.Banner != "" {
			// Through the tty, so that it gets the terminal's CRLF like sshd's MOTD.
			ss.tty.WriteString(o.Banner)
		}
	} else {
		stdin, err := cmd.StdinPipe()
		if err == nil {
			go func() { io.Copy(gated{s: s, c: ss.c, w: stdin}, ss.ch); stdin.Close() }()
		}
		cmd.Stdout, cmd.Stderr = out, gated{s: s, c: ss.c, w: ss.ch.Stderr(), delay: o.SlowOutput}
		// Its own process group, so that hangup reaches its children too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	}
	err := cmd.Start()
	if ss.tty != nil {
		ss.tty.Close() // the master reads EIO once the command and its children let go
	}
	if err == nil {
		ss.mu.Lock()
		ss.proc = cmd.Process
		ss.mu.Unlock()
	}
	close(ss.begun)
	if err != nil {
		fmt.Fprintf(ss.ch.Stderr(), "sshtest: %v\r\n", err)
	} else {
		cmd.Wait()
	}
	close(ss.exited)
	if outputDone != nil {
		// Like sshd, do not wait for background processes that still hold the
		// terminal (only once they are gone does the master read EIO): drain what
		// is queued, then report the exit.
		ss.master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		<-outputDone
	}
	if !s.waitAwake(ss.c.done) {
		return
	}
	sshserver.SendExit(ss.ch, cmd.ProcessState, err)
	ss.ch.CloseWrite()
}

// hangup ends the session's command when its channel or connection closes:
// closing the PTY master makes the kernel send SIGHUP, as with sshd; a command
// without a PTY gets SIGHUP directly. One that ignores it is killed after 3s so
// that tests do not leak processes.
func (ss *session) hangup(started bool) {
	if ss.master != nil {
		ss.master.Close()
	}
	if !started {
		if ss.tty != nil {
			ss.tty.Close()
		}
		return
	}
	<-ss.begun
	ss.mu.Lock()
	p := ss.proc
	ss.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-ss.exited:
		return
	default:
	}
	if ss.master == nil {
		syscall.Kill(-p.Pid, syscall.SIGHUP)
	}
	select {
	case <-ss.exited:
	case <-time.After(3 * time.Second):
		syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
}
