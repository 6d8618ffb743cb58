package sessions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pkg/sftp"
	"github.com/sshjobs/sshjobs/jobs"
	"golang.org/x/crypto/ssh"
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
		if c.isDevice() {
			return nil, fmt.Errorf("start sftp on %s: %w (the server refused the sftp subsystem: %w)", c.key, errDeviceNoSFTP, err)
		}
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
	client, err := startSFTP(ctx, sess, r, w)
	switch {
	case err != nil && c.isDevice():
		// A device's sshd may run its CLI for the subsystem, which
		// answers with text.
		return nil, fmt.Errorf("start sftp on %s: %w (what answered the sftp subsystem is no SFTP server: %w)", c.key, errDeviceNoSFTP, err)
	case err != nil:
		return nil, fmt.Errorf("start sftp on %s: what answered the sftp subsystem is no SFTP server: %w", c.key, err)
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

// sftpStartTimeout bounds the SFTP handshake: what answers the subsystem
// may never answer in SFTP (a device's CLI waiting for a key). A variable
// so that a test can see it pass.
var sftpStartTimeout = 15 * time.Second

// errDeviceNoSFTP: the file tools on a network device that has no SFTP
// server.
var errDeviceNoSFTP = errors.New("the network device has no SFTP server, which the file tools need: use the device's own commands through ssh_run")

// startSFTP runs the SFTP handshake on sess (its stdout r, stdin w), up to
// sftpStartTimeout or ctx's end; on failure sess is closed.
func startSFTP(ctx context.Context, sess *ssh.Session, r io.Reader, w io.WriteCloser) (*sftp.Client, error) {
	type started struct {
		client *sftp.Client
		err    error
	}
	done := make(chan started, 1)
	go func() {
		// 32 KiB packets (what every server takes; OpenSSH's sftp-server
		// drops the connection on a message over 256 KiB) and 64 in flight
		// per file, as OpenSSH's sftp client does: over a link with
		// latency, throughput is bounded by what is in flight.
		client, err := sftp.NewClientPipe(r, w, sftp.MaxConcurrentRequestsPerFile(64),
			sftp.UseConcurrentReads(true), sftp.UseConcurrentWrites(true))
		done <- started{client, err}
	}()
	timer := time.NewTimer(sftpStartTimeout)
	defer timer.Stop()
	var err error
	select {
	case s := <-done:
		if s.err == nil {
			return s.client, nil
		}
		err = s.err
	case <-timer.C:
		err = fmt.Errorf("no SFTP answer within %v", sftpStartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	sess.Close() // ends a handshake still waiting
	return nil, err
}

// isDevice reports whether c's host is a network device: found by a
// session, or named one.
func (c *conn) isDevice() bool { return c.device.Load() || c.pool.deviceByConfig(c.host) }

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
