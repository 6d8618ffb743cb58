package sshdial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

	"golang.org/x/crypto/ssh"
)

// Dialer opens authenticated, host-key-verified SSH connections.
type Dialer struct {
	Resolver *sshconfig.Resolver // resolves ProxyJump hops; nil = &sshconfig.Resolver{}
	Secrets  Secrets             // may be nil
	Logger   *slog.Logger        // stderr only; never log secrets. nil = discard
}

// DialInfo tells how the connection was made (for ssh_connect's output).
type DialInfo struct {
	HostKeyFingerprint string // SHA256:...
	HostKeyStatus      string // "known", "trusted_now" (recorded as new)
	AuthMethod         string // "publickey", "password", "keyboard-interactive", "agent"
}

// Dial connects to h (through its ProxyJump chain or ProxyCommand, if any),
// verifies the host key and authenticates. Closing the returned client also
// closes every jump host connection under it. The connect and the handshake
// are each bounded by h.ConnectTimeout and by ctx.
func (d *Dialer) Dial(ctx context.Context, h *sshconfig.Host) (*ssh.Client, DialInfo, error) {
	return d.dial(ctx, h, 0)
}

func (d *Dialer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Dialer) resolver() *sshconfig.Resolver {
	if d.Resolver != nil {
		return d.Resolver
	}
	return &sshconfig.Resolver{}
}

func (d *Dialer) dial(ctx context.Context, h *sshconfig.Host, depth int) (*ssh.Client, DialInfo, error) {
	if depth > sshconfig.MaxHops {
		return nil, DialInfo{}, fmt.Errorf("dial %s: more than %d ProxyJump hops (a loop in ssh_config?)", h.Key(), sshconfig.MaxHops)
	}
	var hops []*ssh.Client // jump clients, first hop first
	closeHops := func() {
		for i := len(hops) - 1; i >= 0; i-- {
			hops[i].Close()
		}
	}

	var conn net.Conn
	var err error
	switch {
	case len(h.ProxyJump) > 0:
		hops, err = d.dialJumps(ctx, h, depth)
		if err != nil {
			return nil, DialInfo{}, err
		}
		conn, err = dialVia(ctx, hops[len(hops)-1], h)
	case h.ProxyCommand != "":
		conn, err = startProxyCommand(h, childEnv(ctx), d.logger())
	default:
		nd := net.Dialer{Timeout: h.ConnectTimeout}
		conn, err = nd.DialContext(ctx, "tcp", h.Addr())
	}
	if err != nil {
		closeHops()
		return nil, DialInfo{}, fmt.Errorf("dial %s: connect: %w", h.Key(), err)
	}

	c, chans, reqs, info, err := d.handshake(ctx, conn, h)
	if err != nil {
		closeHops()
		return nil, DialInfo{}, err
	}
	if len(hops) == 0 {
		return ssh.NewClient(c, chans, reqs), info, nil
	}
	chain := &chainConn{Conn: c, hops: hops}
	// The hops also go when the final connection dies on its own.
	go func() {
		c.Wait()
		chain.closeHops()
	}()
	return ssh.NewClient(chain, chans, reqs), info, nil
}

// jumpHost is hop i of h's ProxyJump: as resolved with h (a stored
// destination) or, for a Host built by hand, resolved now.
func (d *Dialer) jumpHost(ctx context.Context, h *sshconfig.Host, i int) (*sshconfig.Host, error) {
	if len(h.JumpHosts) == len(h.ProxyJump) {
		return h.JumpHosts[i], nil
	}
	return d.resolver().Resolve(ctx, h.ProxyJump[i])
}

// dialJumps connects the ProxyJump chain of h. The first hop is dialled with
// its own ssh_config (its own ProxyJump or ProxyCommand apply, as with
// `ssh -J`); each later hop is reached through the previous one.
func (d *Dialer) dialJumps(ctx context.Context, h *sshconfig.Host, depth int) ([]*ssh.Client, error) {
	var hops []*ssh.Client
	fail := func(err error) ([]*ssh.Client, error) {
		for i := len(hops) - 1; i >= 0; i-- {
			hops[i].Close()
		}
		return nil, fmt.Errorf("dial %s: %w", h.Key(), err)
	}
	for i, hop := range h.ProxyJump {
		hh, err := d.jumpHost(ctx, h, i)
		if err != nil {
			return fail(fmt.Errorf("jump host %d: %w", i+1, err))
		}
		if i == 0 {
			c, info, err := d.dial(ctx, hh, depth+1)
			if err != nil {
				return fail(fmt.Errorf("jump host %s: %w", hop, err))
			}
			d.logger().Debug("ssh jump host connected", "host", hh.Key(), "host_key", info.HostKeyStatus, "auth", info.AuthMethod)
			hops = append(hops, c)
			continue
		}
		conn, err := dialVia(ctx, hops[len(hops)-1], hh)
		if err != nil {
			return fail(fmt.Errorf("jump host %s: connect: %w", hop, err))
		}
		c, chans, reqs, _, err := d.handshake(ctx, conn, hh)
		if err != nil {
			return fail(fmt.Errorf("jump host %s: %w", hop, err))
		}
		hops = append(hops, ssh.NewClient(c, chans, reqs))
	}
	return hops, nil
}

// dialVia opens a direct-tcpip channel to h through an established client.
func dialVia(ctx context.Context, via *ssh.Client, h *sshconfig.Host) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, h.ConnectTimeout)
	defer cancel()
	return via.DialContext(ctx, "tcp", h.Addr())
}

// handshake runs the SSH handshake on conn: host key check, then auth. It is
// bounded by h.ConnectTimeout (a deadline where the conn supports one, else a
// timer that closes it) and by ctx.
func (d *Dialer) handshake(ctx context.Context, conn net.Conn, h *sshconfig.Host) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, DialInfo, error) {
	var info DialInfo
	hk, err := newHostKeyCheck(h)
	if err != nil {
		conn.Close()
		return nil, nil, nil, info, fmt.Errorf("dial %s: %w", h.Key(), err)
	}
	auth := newAuthRun(ctx, h, secretsFor(ctx, h, SecretsIn(ctx, d.Secrets)), d.logger())
	defer auth.close()
	cfg := &ssh.ClientConfig{
		User:              h.User,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms(),
		Timeout:           h.ConnectTimeout,
	}
	auth.config(cfg)

	timeout := h.ConnectTimeout
	if timeout <= 0 {
		timeout = sshconfig.DefaultConnectTimeout
	}
	var expired atomic.Bool
	var timer *time.Timer
	if conn.SetDeadline(time.Now().Add(timeout)) != nil {
		// No deadlines on this conn (an SSH channel): close it instead.
		timer = time.AfterFunc(timeout, func() { expired.Store(true); conn.Close() })
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })

	c, chans, reqs, err := ssh.NewClientConn(conn, h.Addr(), cfg)

	stop()
	if timer != nil {
		timer.Stop()
	}
	if err != nil {
		return nil, nil, nil, info, d.handshakeError(ctx, h, hk, auth, err, expired.Load(), timeout)
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, nil, nil, info, fmt.Errorf("dial %s: %w", h.Key(), ctx.Err())
	}
	conn.SetDeadline(time.Time{})

	info = DialInfo{AuthMethod: auth.usedMethod()}
	info.HostKeyFingerprint, info.HostKeyStatus = hk.result()
	if info.AuthMethod == "" {
		info.AuthMethod = "none" // the server let us in without asking
	}
	if info.HostKeyStatus == HostKeyTrustedNow {
		d.logger().Info("ssh host key recorded", "host", h.Key(), "fingerprint", info.HostKeyFingerprint,
			"file", h.UserKnownHostsFiles[0])
	}
	return c, chans, reqs, info, nil
}

// handshakeError explains a failed handshake: a refused host key and an auth
// failure carry their own advice; a timeout says which limit ran out.
func (d *Dialer) handshakeError(ctx context.Context, h *sshconfig.Host, hk *hostKeyCheck, auth *authRun, err error, expired bool, timeout time.Duration) error {
	var hke *HostKeyError
	if errors.As(err, &hke) {
		return fmt.Errorf("dial %s: %w", h.Key(), hke)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("dial %s: handshake: %w", h.Key(), ctx.Err())
	}
	var ne net.Error
	if expired || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("dial %s: handshake timed out after %s (ConnectTimeout)", h.Key(), timeout)
	}
	if strings.Contains(err.Error(), "no common algorithm for host key") {
		var types []string
		for _, k := range hk.known() {
			types = append(types, k.Key.Type())
		}
		return fmt.Errorf("dial %s: the server offers none of the host key types known_hosts has for it (%s): its host key may have changed; check it with `ssh-keyscan -p %d %s`: %w",
			h.Key(), strings.Join(types, ", "), h.Port, h.HostName, err)
	}
	if ae := auth.failure(err); ae != err {
		return fmt.Errorf("dial: %w", ae)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("dial %s: the server closed the connection during the handshake: %w", h.Key(), err)
	}
	return fmt.Errorf("dial %s: handshake: %w", h.Key(), err)
}

// chainConn is the final connection of a ProxyJump chain: closing it closes
// the jump hosts too, last hop first.
type chainConn struct {
	ssh.Conn
	hops []*ssh.Client
	once sync.Once
}

func (c *chainConn) Close() error {
	err := c.Conn.Close()
	c.closeHops()
	return err
}

func (c *chainConn) closeHops() {
	c.once.Do(func() {
		for i := len(c.hops) - 1; i >= 0; i-- {
			c.hops[i].Close()
		}
	})
}
