package sessions

import (
	"sort"
	"time"
)

// ConnInfo describes one pooled connection (for the ssh_sessions tool).
type ConnInfo struct {
	Host        string // the destination's key (Host.Key)
	Route       string // what besides user@host:port decides it (Host.Route)
	ConnectedAt time.Time
	// Idle is how long the connection has run no job; zero while one runs.
	Idle time.Duration
	// ClosesIn is how long until the idle close; while a job runs it is the
	// whole IdleTimeout (the countdown starts when the last job ends).
	ClosesIn time.Duration
	// Device is "network device (VENDOR, prompt P)" for a network device,
	// "" for a host with a POSIX shell.
	Device   string
	Sessions []SessionInfo
}

// IdleClose is a connection that closed after the idle timeout; the next
// command to its destination reconnects (with a new shell).
type IdleClose struct {
	Host string
	At   time.Time
}

// ClosedIdle lists the connections that closed as idle since their last use,
// oldest first.
func (p *Pool) ClosedIdle() []IdleClose {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]IdleClose, 0, len(p.closedIdle))
	for k, at := range p.closedIdle {
		out = append(out, IdleClose{Host: k, At: at})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// SessionInfo describes one named session of a connection.
type SessionInfo struct {
	Name      string
	Cwd       string // after the last job (a device's: its prompt); "" before the first
	BusyJobID string // the job running in it, if any
	HasShell  bool   // false: the next job starts a new shell
}

// Snapshot lists the pool's connections and their sessions, sorted by host
// and name.
func (p *Pool) Snapshot() []ConnInfo {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ConnInfo, 0, len(p.conns))
	for _, c := range p.conns {
		if !c.alive() {
			continue
		}
		ci := ConnInfo{Host: c.key, Route: c.host.Route(), ConnectedAt: c.connectedAt, ClosesIn: p.cfg.IdleTimeout}
		if c.busy == 0 {
			ci.Idle = now.Sub(c.idleSince)
			ci.ClosesIn = max(p.cfg.IdleTimeout-ci.Idle, 0)
		}
		ci.Device = c.deviceDetailLocked()
		for _, s := range c.sessions {
			ci.Sessions = append(ci.Sessions, SessionInfo{
				Name: s.name, Cwd: s.cwd, BusyJobID: s.busyJob, HasShell: s.sh != nil,
			})
		}
		sort.Slice(ci.Sessions, func(i, j int) bool { return ci.Sessions[i].Name < ci.Sessions[j].Name })
		out = append(out, ci)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}
