package sessions

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// Ready makes sure there is a live connection to h, dialing it if there is
// none, as the first job would, and returns the dial's error. A caller that
// can ask a person for a missing secret (URL elicitation) calls it before
// submitting a job, so that the job finds the connection open.
func (p *Pool) Ready(ctx context.Context, h *sshconfig.Host) error {
	c, err := p.acquire(ctx, h)
	if err != nil {
		return err
	}
	p.release(c)
	return nil
}

// SudoCheck is what CheckSudo learned.
type SudoCheck int

const (
	// SudoUnknown: sudo answered otherwise (not installed, requiretty, the
	// user may not sudo, no answer in time): the job will say.
	SudoUnknown SudoCheck = iota
	// SudoOK: sudo ran without a password (none given), or took the one given.
	SudoOK
	// SudoNeedsPassword: sudo wants a password and none was given.
	SudoNeedsPassword
	// SudoRefused: sudo refused the password given.
	SudoRefused
)

// sudoCheckTimeout bounds CheckSudo's one-off command.
const sudoCheckTimeout = 15 * time.Second

// CheckSudo asks sudo on h, over a one-off exec channel, whether a job with
// sudo would need a password (password ""), or whether password is the right
// one. The password goes on the channel's stdin (sudo -S): never on a
// command line. sudo -k keeps a cached credential from deciding, as it
// does not for a job's PTY (sudo caches per terminal).
func (p *Pool) CheckSudo(ctx context.Context, h *sshconfig.Host, password string) (SudoCheck, error) {
	c, err := p.acquire(ctx, h)
	if err != nil {
		return SudoUnknown, err
	}
	defer p.release(c)
	ctx, cancel := context.WithTimeout(ctx, sudoCheckTimeout)
	defer cancel()
	sess, err := c.openChannel(ctx)
	if err != nil {
		return SudoUnknown, fmt.Errorf("check sudo on %s: %w", c.key, err)
	}
	defer sess.Close()
	cmd := "LC_ALL=C sudo -n -k true"
	if password != "" {
		cmd = "LC_ALL=C sudo -S -k -p '' true"
		sess.Stdin = strings.NewReader(password + "\n")
	}
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Close()
		<-done
		return SudoUnknown, nil
	}
	msg := stderr.String()
	switch {
	case err == nil:
		return SudoOK, nil
	case password == "" && strings.Contains(msg, "password is required"):
		return SudoNeedsPassword, nil
	case password != "" && (strings.Contains(msg, "incorrect password") || strings.Contains(msg, "Sorry, try again")):
		return SudoRefused, nil
	}
	return SudoUnknown, nil
}
