package sessions

import (
	"context"
	"fmt"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// EnableCheck is what CheckEnable learned.
type EnableCheck int

const (
	// EnableUnknown: not a device known as one, or the check could not
	// tell (no prompt in time, the device closed the session): the job
	// will say.
	EnableUnknown EnableCheck = iota
	// EnableOK: nothing to ask: the session is privileged already, the
	// device logs in privileged, its CLI has no enable mode, enable needs
	// no secret, or the secret given got in.
	EnableOK
	// EnableNeedsSecret: enable asks for a secret and none was given.
	EnableNeedsSecret
	// EnableRefused: the device refused the secret given.
	EnableRefused
)

// CheckEnable asks the device h, before a job runs in its session, whether
// the job would need an enable secret (secret "") or whether secret is the
// right one. The job's session is not touched (a job may take it any
// moment): the check logs in on a session of its own, types enable, and
// closes it. Without a secret it closes the session at the device's
// password prompt, so nothing is typed there. A session already privileged
// and a device whose enable needs no secret (remembered for the
// connection) are answered without logging in.
func (p *Pool) CheckEnable(ctx context.Context, h *sshconfig.Host, session, secret string) (EnableCheck, error) {
	if !p.IsDevice(h) {
		return EnableUnknown, nil
	}
	c, err := p.acquire(ctx, h)
	if err != nil {
		return EnableUnknown, err
	}
	defer p.release(c)
	if secret == "" && (c.enableOpen.Load() || c.sessionPrivileged(session)) {
		return EnableOK, nil
	}
	d, err := startDevice(ctx, c.openChannel, p.spawn, "enable-check", p.cfg.Logger, deviceConfig{})
	if err != nil {
		return EnableUnknown, fmt.Errorf("check enable on %s: %w", c.key, err)
	}
	defer d.close()
	if !d.prompt.hasEnable() || d.prompt.privileged(d.mode) {
		c.enableOpen.Store(true)
		if secret != "" {
			return EnableUnknown, nil // the secret was not tried
		}
		return EnableOK, nil
	}
	if secret != "" {
		d.io.mask.add([]byte(secret))
	}
	x := d.exchange(ctx, "enable", exchangeOpts{timeout: deviceStepTimeout, secret: secret, stopAtSecret: secret == ""})
	switch {
	case x.wantsSecret:
		return EnableNeedsSecret, nil
	case x.err != nil:
		return EnableUnknown, nil
	case d.prompt.privileged(d.mode) && secret == "":
		c.enableOpen.Store(true)
		return EnableOK, nil
	case d.prompt.privileged(d.mode):
		return EnableOK, nil
	case secret != "":
		return EnableRefused, nil
	}
	return EnableUnknown, nil
}

// sessionPrivileged reports whether the named session has a device session
// whose prompt, after its last job, shows a privileged mode.
func (c *conn) sessionPrivileged(name string) bool {
	c.pool.mu.Lock()
	s := c.sessions[name]
	var cwd string
	live := false
	if s != nil && s.sh != nil {
		_, isDevice := s.sh.(*device)
		live = isDevice && s.sh.alive()
		cwd = s.cwd
	}
	c.pool.mu.Unlock()
	if !live {
		return false
	}
	// The session's own prompt is the job's to read: its recorded line
	// tells the mode.
	p, ok := learnPrompt(cwd)
	if !ok {
		return false
	}
	mode, _ := p.match(cwd)
	return !p.hasEnable() || p.privileged(mode)
}
