package sessions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"

	"github.com/sshjobs/sshjobs/jobs"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// MarkDevice records the user's word on h (ssh_connect's device
// parameter), for the pool's life: a network device, whose sessions start
// as device sessions without the probe; or not one (device false), whose
// sessions start as shells again, as for any host, even when a Devices
// pattern matches it. That undoes a mistaken mark: the connection forgets
// that it was a device.
func (p *Pool) MarkDevice(h *sshconfig.Host, device bool) {
	p.mu.Lock()
	p.devices[h.Key()] = device
	c := p.conns[h.Key()]
	p.mu.Unlock()
	if c != nil && !device {
		c.device.Store(false)
	}
}

// IsDevice reports whether h is known to be a network device: marked,
// matched by PoolConfig.Devices, or found to be one by a session of its
// open connection.
func (p *Pool) IsDevice(h *sshconfig.Host) bool {
	if p.deviceByConfig(h) {
		return true
	}
	p.mu.Lock()
	c := p.conns[h.Key()]
	p.mu.Unlock()
	return c != nil && c.alive() && c.device.Load()
}

// deviceByConfig: h is a device by the user's word (MarkDevice, Devices).
func (p *Pool) deviceByConfig(h *sshconfig.Host) bool {
	p.mu.Lock()
	marked, said := p.devices[h.Key()]
	p.mu.Unlock()
	if said {
		return marked
	}
	return matchDevices(p.cfg.Devices, h.Alias)
}

// matchDevices reports whether alias matches one of patterns.
func matchDevices(patterns []string, alias string) bool {
	for _, pat := range patterns {
		if ok, err := path.Match(pat, alias); err == nil && ok {
			return true
		}
	}
	return false
}

// startSession starts a named session of the kind the host needs: a device
// session where the user said so or a session found a device before;
// otherwise a POSIX shell, which switches to a device session when its
// start finds a device's CLI (notPOSIXError, within about a second instead
// of the shell's start timeout).
func (c *conn) startSession(ctx context.Context, name string) (session, error) {
	p := c.pool
	cfg := deviceConfig{PrintAsIs: p.cfg.DevicePrintAsIs}
	if c.device.Load() || p.deviceByConfig(c.host) {
		c.device.Store(true)
		return c.startDevice(ctx, name, cfg)
	}
	sh, err := startShell(ctx, c.openChannel, p.spawn, name, p.cfg.Logger)
	var np *notPOSIXError
	if errors.As(err, &np) {
		c.device.Store(true)
		c.detectedAfter.Store(int64(np.after))
		p.cfg.Logger.Info("no POSIX shell: a network device's CLI answered; starting a device session",
			"host", c.key, "session", name, "vendor", np.prompt.vendor, "after", np.after)
		return c.startDevice(ctx, name, cfg)
	}
	if err != nil {
		return nil, err
	}
	return sh, nil
}

// startDevice starts a device session (a nil session, never a nil
// *device, on error).
func (c *conn) startDevice(ctx context.Context, name string, cfg deviceConfig) (session, error) {
	d, err := startDevice(ctx, c.openChannel, c.pool.spawn, name, c.pool.cfg.Logger, cfg)
	if err != nil {
		return nil, fmt.Errorf("network device session: %w", err)
	}
	return d, nil
}

// deviceRemote says what ssh_connect reports for a host whose exec probe
// found no POSIX shell (or that the user called a device): it starts the
// default session, unless a job holds it, so that a device is found, its
// CLI recognised and the session warm. ok is false for a host that turned
// out to have a shell after all.
func (c *conn) deviceRemote(ctx context.Context) (remote string, ok bool) {
	s := c.slot(jobs.DefaultSession)
	if s.run.TryLock() {
		_, _, err := c.shellFor(ctx, s)
		s.run.Unlock()
		if errors.Is(err, errNotDevice) {
			return "a POSIX shell, named a network device: call ssh_connect with device false", true
		}
		if err != nil && !c.device.Load() {
			return "", false
		}
	}
	if !c.device.Load() {
		return "", false
	}
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	return c.deviceDetailLocked(), true
}

// deviceDetailLocked describes a device connection for ssh_connect and
// ssh_sessions: "network device (VENDOR, prompt P)" from one of its device
// sessions, "network device" before one started; "" for a POSIX host. The
// prompt is the session's after its last job.
func (c *conn) deviceDetailLocked() string {
	if !c.device.Load() {
		return ""
	}
	names := slices.Sorted(maps.Keys(c.sessions))
	for _, n := range names {
		s := c.sessions[n]
		if d, ok := s.sh.(*device); ok {
			if s.cwd == "" {
				return fmt.Sprintf("network device (%s)", d.vendor)
			}
			return fmt.Sprintf("network device (%s, prompt %s)", d.vendor, s.cwd)
		}
	}
	return "network device"
}
