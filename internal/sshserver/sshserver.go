// Package sshserver is a small SSH server for `sshjobs demo`: it serves the
// current user, on a loopback port, to one client key, with the user's login
// shell in a real PTY. It speaks what sshjobs needs of a host: shell and exec
// requests, pty-req with its terminal modes (sshjobs asks for echo off),
// window-change, env, signal, exit-status and exit-signal. It has no
// forwarding, no subsystems and no password authentication.
//
// It is not a general sshd: it runs commands as the user running it, so it
// listens on 127.0.0.1 only and accepts only the key it was given.
package sshserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// Config is what the server serves, and to whom.
type Config struct {
	HostKey    ssh.Signer    // the server's host key
	ClientKey  ssh.PublicKey // the only key accepted
	User       string        // the only user name accepted
	Shell      string        // login shell, e.g. /bin/bash
	Home       string        // HOME and the sessions' working directory
	Env        []string      // NAME=VALUE added to every session's environment
	MaxSession int           // session channels per connection; 0 means 10, as OpenSSH
}

// Server is a running server. Close stops it.
type Server struct {
	cfg Config
	ln  net.Listener
	wg  sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// Start listens on 127.0.0.1 (a free port) and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.HostKey == nil || cfg.ClientKey == nil || cfg.User == "" || cfg.Shell == "" {
		return nil, errors.New("sshserver: HostKey, ClientKey, User and Shell are required")
	}
	if cfg.MaxSession == 0 {
		cfg.MaxSession = 10
	}
	sc := &ssh.ServerConfig{
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if c.User() == cfg.User && bytes.Equal(key.Marshal(), cfg.ClientKey.Marshal()) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("sshserver: key not accepted")
		},
		ServerVersion: "SSH-2.0-sshjobs-demo",
	}
	sc.AddHostKey(cfg.HostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept(sc)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() *net.TCPAddr { return s.ln.Addr().(*net.TCPAddr) }

// Close stops listening, drops every connection (their sessions' processes
// get a hangup, then SIGKILL after 2s, as with sshd plus a deadline) and
// waits for them. Processes that left the session (setsid) are not touched.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept(sc *ssh.ServerConfig) {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(nc, sc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) serveConn(nc net.Conn, sc *ssh.ServerConfig) {
	defer nc.Close()
	// A client that connects and says nothing must not hold a goroutine for ever.
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	conn, chans, reqs, err := ssh.NewServerConn(nc, sc)
	if err != nil {
		return
	}
	nc.SetDeadline(time.Time{})
	// Refuse global requests (keepalive@openssh.com too, as OpenSSH does: a
	// failure reply still proves the peer is alive).
	go ssh.DiscardRequests(reqs)
	var sessions sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for nch := range chans {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		mu.Lock()
		full := open >= s.cfg.MaxSession
		if !full {
			open++
		}
		mu.Unlock()
		if full {
			nch.Reject(ssh.ConnectionFailed, "open failed") // as sshd says it
			continue
		}
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			s.serveSession(conn, nch)
			mu.Lock()
			open--
			mu.Unlock()
		}()
	}
	sessions.Wait()
}

// session is one session channel: an optional PTY, then one shell or command.
type session struct {
	s      *Server
	ch     ssh.Channel
	env    []string
	master *os.File // PTY master, after pty-req
	tty    *os.File // PTY slave, until the command starts

	mu     sync.Mutex
	proc   *os.Process
	begun  chan struct{} // closed once the command started or failed to
	exited chan struct{} // closed once it exited (or failed to start)
	runs   sync.WaitGroup
}

func (s *Server) serveSession(conn *ssh.ServerConn, nch ssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	ra, _ := conn.RemoteAddr().(*net.TCPAddr)
	la, _ := conn.LocalAddr().(*net.TCPAddr)
	ss := &session{s: s, ch: ch, begun: make(chan struct{}), exited: make(chan struct{})}
	ss.env = []string{
		"HOME=" + s.cfg.Home, "USER=" + s.cfg.User, "LOGNAME=" + s.cfg.User, "SHELL=" + s.cfg.Shell,
		// The user's own PATH: the demo's host is this machine, as this user.
		"PATH=" + os.Getenv("PATH"),
		fmt.Sprintf("SSH_CLIENT=%s %d %d", ra.IP, ra.Port, la.Port),
		fmt.Sprintf("SSH_CONNECTION=%s %d %s %d", ra.IP, ra.Port, la.IP, la.Port),
	}
	ss.env = append(ss.env, s.cfg.Env...)
	started := false
	for req := range reqs {
		ok := false
		switch req.Type {
		case "pty-req":
			ok = !started && ss.master == nil && ss.ptyReq(req.Payload) == nil
		case "window-change":
			var w struct{ Cols, Rows, Width, Height uint32 }
			ok = ss.master != nil && ssh.Unmarshal(req.Payload, &w) == nil && ss.setSize(w.Cols, w.Rows, w.Width, w.Height) == nil
		case "env":
			var e struct{ Name, Value string }
			if ok = !started && ssh.Unmarshal(req.Payload, &e) == nil && !strings.Contains(e.Name, "="); ok {
				ss.env = append(ss.env, e.Name+"="+e.Value)
			}
		case "shell", "exec":
			var e struct{ Command string }
			if started || (req.Type == "exec" && ssh.Unmarshal(req.Payload, &e) != nil) {
				break
			}
			started = true
			// Reply first: output and exit-status must not reach the client before it.
			req.Reply(true, nil)
			ss.runs.Add(1)
			go func() { defer ss.runs.Done(); ss.run(req.Type == "shell", e.Command) }()
			continue
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
	ss.runs.Wait()
}

// run runs the login shell or a command with `shell -c`, as sshd does, then
// reports how it ended and closes the channel.
func (ss *session) run(login bool, command string) {
	cfg := ss.s.cfg
	defer ss.ch.Close()
	name := filepath.Base(cfg.Shell)
	if login {
		name = "-" + name // argv[0] "-bash": how sshd asks for a login shell
	}
	cmd := &exec.Cmd{Path: cfg.Shell, Args: []string{name}, Dir: cfg.Home, Env: ss.env}
	if !login {
		cmd.Args = append(cmd.Args, "-c", command)
	}
	var outputDone chan struct{}
	if ss.master != nil {
		cmd.Env = append(cmd.Env, "SSH_TTY="+ss.tty.Name())
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ss.tty, ss.tty, ss.tty
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		outputDone = make(chan struct{})
		go func() { ss.pump(); close(outputDone) }()
		go io.Copy(ss.master, ss.ch)
	} else {
		stdin, err := cmd.StdinPipe()
		if err == nil {
			go func() { io.Copy(stdin, ss.ch); stdin.Close() }()
		}
		cmd.Stdout, cmd.Stderr = ss.ch, ss.ch.Stderr()
		// Its own process group, so that hangup reaches its children too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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
		fmt.Fprintf(ss.ch.Stderr(), "sshserver: %v\r\n", err)
	} else {
		cmd.Wait()
	}
	close(ss.exited)
	if outputDone != nil {
		// Like sshd, do not wait for background processes that still hold the
		// terminal: drain what is queued, then report the exit.
		ss.master.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		<-outputDone
	}
	SendExit(ss.ch, cmd.ProcessState, err)
	ss.ch.CloseWrite()
}

// SendExit reports how a session's command ended, as sshd does:
// exit-signal for a command a signal killed, else exit-status (127 when it
// could not be started: startErr).
func SendExit(ch ssh.Channel, state *os.ProcessState, startErr error) {
	if startErr != nil || state == nil {
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{127}))
		return
	}
	ws, _ := state.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Msg, Lang  string
		}{strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG"), ws.CoreDump(), "", ""}))
	default:
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(ws.ExitStatus())}))
	}
}

// hangup ends the session's command when its channel or connection closes:
// closing the PTY master makes the kernel send SIGHUP, as with sshd; a
// command without a PTY gets SIGHUP directly. One that ignores it is killed
// after 2s, so that nothing outlives the server but what left the session
// on purpose (setsid).
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
	case <-time.After(2 * time.Second):
		syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
}
