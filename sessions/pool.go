package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
	"github.com/sshjobs/sshjobs/sessions/sshdial"
	"golang.org/x/crypto/ssh"
)

// Defaults of PoolConfig (docs/DESIGN.md, "Limits").
const (
	DefaultIdleTimeout = 10 * time.Minute
	// resolveTTL is how long a target's resolution is reused: ssh_config
	// rarely changes, but `ssh -G` costs a process per job otherwise.
	resolveTTL = 30 * time.Second
)

// PoolConfig configures a Pool. Zero fields take defaults (see withDefaults).
type PoolConfig struct {
	Dialer *sshdial.Dialer // resolves targets (its Resolver) and opens connections
	// IdleTimeout closes a connection that has run no job for this long.
	IdleTimeout time.Duration
	// KeepaliveInterval and KeepaliveMax override, when set, the host's
	// ServerAliveInterval and ServerAliveCountMax (ssh_config; 15s and 3 by
	// default): after KeepaliveMax unanswered keepalives the connection is
	// closed as dead.
	KeepaliveInterval time.Duration
	KeepaliveMax      int
	Logger            *slog.Logger
	// Devices are patterns (path.Match, like ssh_config's Host: * and ?)
	// of the aliases whose sessions are network-device sessions from the
	// start, without the POSIX probe (device.go).
	Devices []string
	// DevicePrintAsIs leaves RouterOS print commands as typed, without the
	// without-paging that is added by default.
	DevicePrintAsIs bool
}

// withDefaults applies the defaults, all in this one place.
func (c PoolConfig) withDefaults() PoolConfig {
	if c.Dialer == nil {
		c.Dialer = &sshdial.Dialer{}
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// keepalive returns the interval and the miss limit for h.
func (c PoolConfig) keepalive(h *sshconfig.Host) (time.Duration, int) {
	interval, max := c.KeepaliveInterval, c.KeepaliveMax
	if interval <= 0 {
		interval = h.ServerAliveInterval
	}
	if interval <= 0 {
		interval = sshconfig.DefaultServerAliveInterval
	}
	if max <= 0 {
		max = h.ServerAliveCountMax
	}
	if max <= 0 {
		max = sshconfig.DefaultServerAliveCountMax
	}
	return interval, max
}

// Pool holds one SSH connection per destination (sshconfig.Host.Key) and, on
// each, the named persistent shells (sessions) that run jobs; an Executor runs
// jobs on them.
// Connections are opened on first use, kept alive by keepalives, and closed
// after IdleTimeout without a job.
type Pool struct {
	cfg PoolConfig
	// resolve and dial are cfg.Dialer's, as functions so that the pool does
	// not care where connections come from.
	resolve func(ctx context.Context, target string) (*sshconfig.Host, error)
	dial    func(ctx context.Context, h *sshconfig.Host) (*ssh.Client, sshdial.DialInfo, error)

	wg sync.WaitGroup // the goroutines started by spawn

	// Lock order: a slot's run mutex (held for a whole job), then a conn's
	// sftpMu or overflowMu (held across opening a client or a dial), then
	// mu; mu is held only briefly and never across I/O.
	mu       sync.Mutex           // protects the fields below, and each conn's and slot's fields marked so
	resolved map[string]resolved  // by scope (WithResolver), NUL, target
	conns    map[string]*conn     // by Host.Key()
	dialing  map[string]*dialCall // by Host.Key(): dials in progress
	closed   bool                 // Close was called: spawn and acquire refuse
	// closedIdle: when each connection that closed after IdleTimeout did,
	// until the next connection to its destination (ssh_sessions says so).
	closedIdle map[string]time.Time
	// devices: destinations (Host.Key) that ssh_connect was told are
	// network devices, or are not (MarkDevice).
	devices map[string]bool

	paths pathLocks // writes to one remote path run one at a time (files.go)

	screens screenBoard // the screens of the jobs running on its shells (screen.go)
}

// closedIdleKept bounds how long an idle close is remembered.
const closedIdleKept = 24 * time.Hour

// noteIdleClose remembers that key's connection closed as idle.
func (p *Pool) noteIdleClose(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for k, at := range p.closedIdle {
		if now.Sub(at) > closedIdleKept {
			delete(p.closedIdle, k)
		}
	}
	p.closedIdle[key] = now
}

type resolved struct {
	host    *sshconfig.Host
	expires time.Time
}

// dialCall is one dial that concurrent callers for the same host share.
type dialCall struct {
	done chan struct{}
	conn *conn
	err  error
}

// NewPool returns a pool with cfg's defaults applied.
func NewPool(cfg PoolConfig) *Pool {
	cfg = cfg.withDefaults()
	p := &Pool{
		cfg:        cfg,
		resolved:   map[string]resolved{},
		conns:      map[string]*conn{},
		dialing:    map[string]*dialCall{},
		closedIdle: map[string]time.Time{},
		devices:    map[string]bool{},
	}
	r := cfg.Dialer.Resolver
	if r == nil {
		r = &sshconfig.Resolver{}
	}
	p.resolve = r.Resolve
	p.dial = cfg.Dialer.Dial
	return p
}

// Resolve resolves target as `ssh target` would, reusing a resolution of the
// last resolveTTL: resolving may run `ssh -G`, which would cost more than a
// whole command through a warm shell. It resolves with the resolver ctx
// holds (WithResolver), else with the Dialer's.
func (p *Pool) Resolve(ctx context.Context, target string) (*sshconfig.Host, error) {
	resolve, key := p.resolve, "\x00"+target
	if cr, ok := ctx.Value(ctxResolverKey{}).(ctxResolver); ok {
		resolve, key = cr.r.Resolve, cr.scope+"\x00"+target
	}
	p.mu.Lock()
	r, ok := p.resolved[key]
	p.mu.Unlock()
	if ok && time.Now().Before(r.expires) {
		return r.host, nil
	}
	h, err := resolve(ctx, target)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	now := time.Now()
	// Drop expired entries here, so that one-off targets do not pile up.
	for t, r := range p.resolved {
		if !now.Before(r.expires) {
			delete(p.resolved, t)
		}
	}
	p.resolved[key] = resolved{host: h, expires: now.Add(resolveTTL)}
	p.mu.Unlock()
	return h, nil
}

type ctxResolverKey struct{}

type ctxResolver struct {
	r     *sshconfig.Resolver
	scope string
}

// WithResolver returns a context in which Pool.Resolve (and so the
// executor's resolution of a job's target) uses r instead of the Dialer's
// resolver: a daemon's client's, with its own ssh_config and environment.
// scope names what r's answers depend on: a resolution is reused only
// within one scope.
func WithResolver(ctx context.Context, r *sshconfig.Resolver, scope string) context.Context {
	return context.WithValue(ctx, ctxResolverKey{}, ctxResolver{r, scope})
}

// acquire returns the live connection to h, dialing it if needed, with a job
// counted on it (so that it does not close as idle); release undoes that.
// Concurrent callers for one host share one dial.
func (p *Pool) acquire(ctx context.Context, h *sshconfig.Host) (*conn, error) {
	key := h.Key()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if c := p.conns[key]; c != nil && c.alive() {
			c.busy++
			c.stopIdleTimer()
			p.mu.Unlock()
			return c, nil
		}
		if d := p.dialing[key]; d != nil {
			p.mu.Unlock()
			select {
			case <-d.done:
				if d.err != nil {
					return nil, d.err
				}
				continue // take it like any live connection
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		d := &dialCall{done: make(chan struct{})}
		p.dialing[key] = d
		p.mu.Unlock()

		d.conn, d.err = p.connect(ctx, h)
		p.mu.Lock()
		delete(p.dialing, key)
		switch {
		case d.err == nil && p.closed:
			// Close ran while we dialed and did not see this connection.
			d.conn.fail(ErrPoolClosed)
			d.err = ErrPoolClosed
		case d.err == nil:
			p.conns[key] = d.conn
			delete(p.closedIdle, key)
		}
		p.mu.Unlock()
		close(d.done)
		if d.err != nil {
			return nil, d.err
		}
	}
}

// release ends a job's hold on c; the last one out starts the idle timer.
func (p *Pool) release(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.busy--
	if c.busy == 0 {
		c.idleSince = time.Now()
		c.startIdleTimer(p.cfg.IdleTimeout)
	}
}

// connect dials h and starts the connection's keepalive and watcher.
func (p *Pool) connect(ctx context.Context, h *sshconfig.Host) (*conn, error) {
	start := time.Now()
	client, info, err := p.dial(ctx, h)
	if err != nil {
		return nil, err
	}
	interval, max := p.cfg.keepalive(h)
	c := newConn(p, h, client)
	c.info = info
	p.cfg.Logger.Info("ssh connected", "host", c.key, "took", time.Since(start).Round(time.Millisecond),
		"keepalive", interval, "keepalive_max", max)
	if !p.spawn(c.watch, func() { c.keepalive(interval, max) }) {
		client.Close()
		return nil, ErrPoolClosed
	}
	return c, nil
}

// ErrPoolClosed is returned for work asked of a pool after Close.
var ErrPoolClosed = errors.New("sshjobs is shutting down: the connection pool is closed")

// spawn runs each of fns in a goroutine that Close waits for, unless the pool
// is closed: then it starts none and returns false. The check and the Add
// are under p.mu, so that no Add can follow Close's Wait.
func (p *Pool) spawn(fns ...func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, fn := range fns {
		p.wg.Go(fn)
	}
	return true
}

// forget drops c from the pool once it is dead or closed.
func (p *Pool) forget(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[c.key] == c {
		delete(p.conns, c.key)
	}
}

// ErrNotConnected is returned by Disconnect for a host or session the pool does
// not hold.
var ErrNotConnected = errors.New("not connected")

// Disconnect closes a session's shell (session != "") or the whole connection
// to hostKey (a destination's Key). A job running there ends lost.
func (p *Pool) Disconnect(hostKey, session string) error {
	p.mu.Lock()
	c := p.conns[hostKey]
	p.mu.Unlock()
	if c == nil {
		return fmt.Errorf("close %s: %w", hostKey, ErrNotConnected)
	}
	if session == "" {
		c.fail(errors.New("closed by request"))
		return nil
	}
	if !c.closeSession(session, "the session was closed by request") {
		return fmt.Errorf("close %s session %q: %w", hostKey, session, ErrNotConnected)
	}
	return nil
}

// Close closes every connection and waits for every goroutine the pool
// started (keepalives, watchers, the shells' read and write loops). Jobs
// running on them end lost; later work is refused with ErrPoolClosed.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseAll()
	p.wg.Wait()
}

// CloseAll closes every connection; the pool goes on (the next job
// reconnects).
func (p *Pool) CloseAll() {
	p.mu.Lock()
	conns := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.fail(errors.New("closed by request"))
	}
}
