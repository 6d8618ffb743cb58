package sessions

import (
	"context"
	"errors"
	"fmt"

	"github.com/pkg/sftp"
	"github.com/sshjobs/sshjobs/jobs"
)

// SFTP on the pooled connection: one SFTP client per connection, opened on
// first use over a session channel of the connection (an overflow one when
// the server limits sessions), reused by every file operation to that
// destination, and closed with the connection. pkg/sftp's client is safe for
// concurrent use and pipelines its requests, so operations share it.

// sftpClient returns c's SFTP client, opening it if c has none or the one it
// had ended (its subsystem exited).
func (c *conn) sftpClient(ctx context.Context) (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	sess, err := c.openChannel(ctx)
	if err != nil {
		return nil, fmt.Errorf("open sftp channel on %s: %w", c.key, err)
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start sftp on %s: the server refused the sftp subsystem (%w); it needs a `Subsystem sftp` line in sshd_config", c.key, err)
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start sftp on %s: %w", c.key, err)
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start sftp on %s: %w", c.key, err)
	}
	// 32 KiB packets (what every server takes; OpenSSH's sftp-server drops
	// the connection on a message over 256 KiB) and 64 in flight per file,
	// as OpenSSH's sftp client does: over a link with latency, throughput
	// is bounded by what is in flight.
	client, err := sftp.NewClientPipe(r, w, sftp.MaxConcurrentRequestsPerFile(64),
		sftp.UseConcurrentReads(true), sftp.UseConcurrentWrites(true))
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start sftp on %s: %w", c.key, err)
	}
	c.sftp = client
	if !c.pool.spawn(func() {
		client.Wait()
		sess.Close()
		c.sftpMu.Lock()
		if c.sftp == client {
			c.sftp = nil
		}
		c.sftpMu.Unlock()
	}) {
		client.Close()
		c.sftp = nil
		return nil, ErrPoolClosed
	}
	return client, nil
}

// closeSFTP closes c's SFTP client: c is gone.
func (c *conn) closeSFTP() {
	c.sftpMu.Lock()
	client := c.sftp
	c.sftp = nil
	c.sftpMu.Unlock()
	if client != nil {
		client.Close()
	}
}

// WithFiles runs fn with file operations on j's destination (the one stored
// on its row, as jobs run on it): the pooled connection, held while fn runs,
// and its SFTP client. A connection that cannot be had is an error wrapping
// jobs.ErrNotStarted.
func (e *Executor) WithFiles(ctx context.Context, j *jobs.Job, fn func(f *Files) error) error {
	ctx = jobEnv(ctx, j)
	h, err := e.destination(ctx, j)
	if err != nil {
		return fmt.Errorf("%w: %w", jobs.ErrNotStarted, err)
	}
	for attempt := 0; ; attempt++ {
		c, err := e.pool.acquire(ctx, h)
		if err != nil {
			return fmt.Errorf("%w: connect %s: %w", jobs.ErrNotStarted, h.Key(), err)
		}
		client, err := c.sftpClient(ctx)
		if err != nil {
			dead := !c.alive() || c.ping(pingWait) != nil
			e.pool.release(c)
			if dead && attempt == 0 {
				// A connection that died quietly since its last use: once
				// more on a new one, as Run does.
				c.fail(fmt.Errorf("opening sftp failed: %w", err))
				continue
			}
			return fmt.Errorf("%w: %w", jobs.ErrNotStarted, err)
		}
		jr := e.jobRun(h, j)
		err = fn(&Files{pool: e.pool, c: c, key: c.key, sftp: client, sudoPass: jr.sudoPassword, sudoNoPass: jr.SudoNoPass})
		e.pool.release(c)
		if err != nil && errors.Is(err, sftp.ErrSSHFxConnectionLost) && !c.alive() {
			return fmt.Errorf("%w (%s)", err, c.lostReason())
		}
		return err
	}
}
