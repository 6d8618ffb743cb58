package sessions

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/ssh"
)

// How a pooled connection opens session channels.
//
// Every shell, detached job follower and signal is a session channel. A
// server may limit how many a connection has open at once (OpenSSH's
// MaxSessions, 10 by default). Past that limit, the channel is opened on
// another connection to the same host, dialed when first needed and closed
// with the pool's connection; the jobs never notice.

// openChannel opens a session channel to c's host, on c or, when the server
// refuses more on c, on one of c's overflow connections.
func (c *conn) openChannel(ctx context.Context) (*ssh.Session, error) {
	sess, err := c.client.NewSession()
	if err == nil || !isChannelLimit(err) {
		return sess, err
	}
	c.overflowMu.Lock()
	defer c.overflowMu.Unlock()
	for _, client := range c.overflow {
		if sess, err := client.NewSession(); err == nil {
			return sess, nil
		}
	}
	if !c.alive() {
		return nil, err
	}
	client, _, dialErr := c.pool.dial(ctx, c.host)
	if dialErr != nil {
		return nil, fmt.Errorf("%w (the server limits sessions per connection, and another connection failed: %v)", err, dialErr)
	}
	if sess, err = client.NewSession(); err != nil {
		client.Close()
		return nil, fmt.Errorf("open session on a new connection to %s: %w", c.key, err)
	}
	if !c.alive() { // closed while we dialed: closeOverflow has run
		sess.Close()
		client.Close()
		return nil, fmt.Errorf("open session on %s: the connection was closed", c.key)
	}
	c.overflow = append(c.overflow, client)
	c.pool.cfg.Logger.Info("the server limits sessions per connection: opened another connection",
		"host", c.key, "connections", len(c.overflow)+1)
	if !c.pool.spawn(func() {
		client.Wait()
		c.overflowMu.Lock()
		c.overflow = slices.DeleteFunc(c.overflow, func(o *ssh.Client) bool { return o == client })
		c.overflowMu.Unlock()
	}) {
		client.Close() // the pool closed meanwhile
	}
	return sess, nil
}

// closeOverflow closes c's overflow connections: c is gone.
func (c *conn) closeOverflow() {
	c.overflowMu.Lock()
	clients := slices.Clone(c.overflow)
	c.overflowMu.Unlock()
	for _, client := range clients {
		client.Close()
	}
}

// isChannelLimit reports whether err is a server refusing a session channel,
// maybe for want of room: OpenSSH says "connect failed: open failed" when
// MaxSessions are open, others "resource shortage" or "prohibited". A server
// that refuses sessions for good refuses the new connection's too.
func isChannelLimit(err error) bool {
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) {
		return false
	}
	switch oce.Reason {
	case ssh.ConnectionFailed, ssh.ResourceShortage, ssh.Prohibited:
		return true
	}
	return false
}
