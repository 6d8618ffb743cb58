package sessions

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"golang.org/x/crypto/ssh"
)

// conn is one SSH connection of the pool and its named sessions.
type conn struct {
	pool        *Pool
	key         string // user@host:port
	host        *sshconfig.Host
	client      *ssh.Client
	connectedAt time.Time
	info        sshdial.DialInfo // how the dial went (ssh_connect)

	dead       chan struct{} // closed when the connection ended
	failOnce   sync.Once
	failReason error       // why we closed it (set before dead closes)
	closing    atomic.Bool // fail was called: no new work, even before dead closes
	waitErr    error       // client.Wait's result

	overflowMu sync.Mutex    // protects overflow; held while dialing one
	overflow   []*ssh.Client // more connections, for sessions (pool_channels.go)

	sftpMu sync.Mutex   // protects sftp; held while opening it
	sftp   *sftp.Client // file operations (pool_sftp.go); nil until first used
	// noSumTool: the host has neither sha256sum nor shasum (files_transfer.go).
	noSumTool atomic.Bool
	// device: a session found a network device's CLI instead of a POSIX
	// shell; later sessions start as device sessions (device_pool.go).
	device atomic.Bool
	// detectedAfter is how long the probe took to find the device
	// (time.Duration), 0 when it was not probed.
	detectedAfter atomic.Int64
	// enableOpen: the device logs in privileged, or enters enable mode
	// without a secret (CheckEnable learned it): nothing to ask.
	enableOpen atomic.Bool

	// Guarded by pool.mu.
	busy      int // jobs holding the connection (see Pool.acquire)
	idleSince time.Time
	idleTimer *time.Timer
	sessions  map[string]*slot
}

// slot is a named session on a connection: its current shell or device
// session, if any.
type slot struct {
	name string
	run  sync.Mutex // held by the job running in the session

	// Guarded by pool.mu.
	sh      session
	busyJob string
	cwd     string
}

func newConn(p *Pool, h *sshconfig.Host, client *ssh.Client) *conn {
	return &conn{
		pool:        p,
		key:         h.Key(),
		host:        h,
		client:      client,
		connectedAt: time.Now(),
		dead:        make(chan struct{}),
		sessions:    map[string]*slot{},
		idleSince:   time.Now(),
	}
}

func (c *conn) alive() bool {
	// Closed by us but not yet seen gone by watch: a job acquiring it now
	// would get "use of closed network connection" (ssh_close, then
	// ssh_run at once).
	if c.closing.Load() {
		return false
	}
	select {
	case <-c.dead:
		return false
	default:
		return true
	}
}

// watch waits for the connection to end, however it ends, then closes its
// shells and drops it from the pool.
func (c *conn) watch() {
	err := c.client.Wait()
	c.pool.mu.Lock()
	c.waitErr = err
	c.stopIdleTimer()
	var shells []session
	for _, s := range c.sessions {
		if s.sh != nil {
			shells = append(shells, s.sh)
		}
	}
	c.pool.mu.Unlock()
	c.failOnce.Do(func() {}) // a reason set later would not be read
	close(c.dead)
	for _, sh := range shells {
		sh.close()
	}
	c.closeSFTP()
	c.closeOverflow()
	c.pool.forget(c)
	c.pool.cfg.Logger.Info("ssh connection closed", "host", c.key, "reason", c.lostReason())
}

// fail closes the connection, recording why (the first reason wins).
func (c *conn) fail(reason error) {
	c.failOnce.Do(func() { c.failReason = reason })
	c.closing.Store(true)
	c.client.Close()
}

// lostReason says why the connection ended.
func (c *conn) lostReason() string {
	switch {
	case c.failReason != nil:
		return c.failReason.Error()
	case c.waitErr != nil:
		return c.waitErr.Error()
	}
	return "closed by the server"
}

// lostMessage is the Error of a job whose connection died under it.
func (c *conn) lostMessage() string {
	return fmt.Sprintf("the connection to %s was lost (%s); the next command reconnects with a new shell", c.key, c.lostReason())
}

// keepalive pings the server every interval; after max unanswered pings in a
// row it closes the connection. An answer of any kind (OpenSSH answers
// "failure") proves the link alive.
func (c *conn) keepalive(interval time.Duration, max int) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	misses := 0
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
		}
		switch err := c.ping(interval); {
		case err == nil:
			misses = 0
		case errors.Is(err, errPingTimeout):
			misses++
			c.pool.cfg.Logger.Debug("ssh keepalive unanswered", "host", c.key, "misses", misses)
			if misses >= max {
				c.fail(fmt.Errorf("%d keepalives unanswered over %v", misses, time.Duration(misses)*interval))
				return
			}
		default:
			c.fail(fmt.Errorf("keepalive: %w", err))
			return
		}
	}
}

var errPingTimeout = errors.New("no answer")

// ping sends one keepalive and waits up to timeout for its answer.
func (c *conn) ping(timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		errc <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-errc:
		return err
	case <-t.C:
		return errPingTimeout
	case <-c.dead:
		return errors.New("connection closed")
	}
}

// startIdleTimer arms the idle close; pool.mu is held.
func (c *conn) startIdleTimer(idle time.Duration) {
	c.stopIdleTimer()
	c.idleTimer = time.AfterFunc(idle, func() {
		c.pool.mu.Lock()
		expired := c.busy == 0 && time.Since(c.idleSince) >= idle
		c.pool.mu.Unlock()
		if expired {
			c.pool.noteIdleClose(c.key)
			c.fail(fmt.Errorf("idle for %v", idle))
		}
	})
}

// stopIdleTimer disarms the idle close; pool.mu is held.
func (c *conn) stopIdleTimer() {
	if c.idleTimer != nil {
		c.idleTimer.Stop()
		c.idleTimer = nil
	}
}

// slot returns the named session, creating it.
func (c *conn) slot(name string) *slot {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	s := c.sessions[name]
	if s == nil {
		s = &slot{name: name}
		c.sessions[name] = s
	}
	return s
}

// shellFor returns the session's live shell (or device session), starting
// one if it has none; newShell reports a start. The caller holds s.run.
func (c *conn) shellFor(ctx context.Context, s *slot) (sh session, newShell bool, err error) {
	c.pool.mu.Lock()
	sh = s.sh
	c.pool.mu.Unlock()
	if sh != nil && sh.alive() {
		return sh, false, nil
	}
	sh, err = c.startSession(ctx, s.name)
	if err != nil {
		return nil, false, fmt.Errorf("start shell %q on %s: %w", s.name, c.key, err)
	}
	c.pool.mu.Lock()
	closed := c.sessions[s.name] != s
	if !closed {
		s.sh, s.cwd = sh, sh.where() // a new shell's is "", a device's its first prompt
	}
	c.pool.mu.Unlock()
	if closed {
		// ssh_close took the session while its shell started: nothing
		// lists this shell, so nothing else would ever close it (and
		// Pool.Close would wait for it forever).
		sh.closeWith("the session was closed while its shell started")
		return nil, false, fmt.Errorf("start shell %q on %s: the session was closed while its shell started", s.name, c.key)
	}
	if !c.alive() { // the connection died meanwhile: watch missed this shell
		sh.close()
	}
	return sh, true, nil
}

// closeSession closes the named session's shell; a job running in it ends.
func (c *conn) closeSession(name, reason string) bool {
	c.pool.mu.Lock()
	s := c.sessions[name]
	var sh session
	if s != nil {
		sh, s.sh = s.sh, nil
		if s.busyJob == "" {
			delete(c.sessions, name)
		}
	}
	c.pool.mu.Unlock()
	if sh != nil {
		sh.closeWith(reason)
	}
	return s != nil
}
