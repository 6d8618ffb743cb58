package sessions

import (
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"
)

// Defaults applied when ssh_config says nothing (or OpenSSH's own default makes
// no sense for an unattended server: keepalives are on, a connect cannot hang).
const (
	DefaultPort                = 22
	DefaultServerAliveInterval = 15 * time.Second
	DefaultServerAliveCountMax = 3
	DefaultConnectTimeout      = 15 * time.Second
)

// StrictHostKeyChecking values as normalised by Resolve.
const (
	StrictYes       = "yes"        // unknown hosts are refused
	StrictAcceptNew = "accept-new" // unknown hosts are recorded (the default)
	StrictNo        = "no"         // same as accept-new here: a changed key is still refused
)

// Host is a target resolved the way `ssh HOST` would resolve it.
type Host struct {
	Target   string // as the caller named it: alias, host, user@host, user@host:port
	Alias    string // the ssh_config Host name used for lookup (host part of Target)
	User     string
	HostName string
	Port     int

	IdentityFiles  []string // expanded (~, %d %u %h %r %p %l)
	IdentitiesOnly bool
	IdentityAgent  string // socket path, "" = $SSH_AUTH_SOCK, "none" disables

	ProxyJump    []string // chain of targets, first hop first; each resolved recursively
	ProxyCommand string   // with %h %p %r expanded

	ServerAliveInterval time.Duration // default 15s
	ServerAliveCountMax int           // default 3
	ConnectTimeout      time.Duration // default 15s

	// StrictHostKeyChecking is "yes", "accept-new" (default) or "no"; "no" is
	// treated as accept-new for NEW hosts only: a CHANGED key is always refused.
	StrictHostKeyChecking string
	UserKnownHostsFiles   []string // default ~/.ssh/known_hosts; the first one records new keys
	GlobalKnownHostsFiles []string
	HostKeyAlias          string
	// HashKnownHosts: new known_hosts entries are written hashed
	// (ssh_config's HashKnownHosts, on by default in Debian's ssh_config).
	HashKnownHosts bool
}

// Key is "user@hostname:port": the pool key and the Job.Host value.
func (h *Host) Key() string {
	return h.User + "@" + h.Addr()
}

// Addr is the "hostname:port" to dial (IPv6 literals bracketed).
func (h *Host) Addr() string {
	return net.JoinHostPort(h.HostName, strconv.Itoa(h.Port))
}

// knownHostsAddr is the host:port a host certificate's principals are
// checked against: HostKeyAlias (the port does not matter) or hostname:port.
func (h *Host) knownHostsAddr() string {
	if h.HostKeyAlias != "" {
		return net.JoinHostPort(h.HostKeyAlias, strconv.Itoa(DefaultPort))
	}
	return h.Addr()
}

// knownHostsName is the name known_hosts entries are matched against and
// recorded under, as OpenSSH forms it: HostKeyAlias as given (no port), else
// the lower-cased host name, "[host]:port" when the port is not 22.
func (h *Host) knownHostsName() string {
	if h.HostKeyAlias != "" {
		return h.HostKeyAlias
	}
	return knownhosts.Normalize(net.JoinHostPort(strings.ToLower(h.HostName), strconv.Itoa(h.Port)))
}
