package sshconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
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

// Host is a target resolved the way `ssh HOST` would resolve it. It is also
// the destination stored on a job row (as JSON, see MarshalDestination): a job
// runs on what its row says, never on what the target resolves to later.
type Host struct {
	Target   string `json:"target"` // as the caller named it: alias, host, user@host, user@host:port
	Alias    string `json:"alias"`  // the ssh_config Host name used for lookup (host part of Target)
	User     string `json:"user"`
	HostName string `json:"hostname"`
	Port     int    `json:"port"`

	// SecretAlias is the alias whose per-alias secrets (OVRD_{alias}_PASS,
	// ...) belong to this destination: Alias when the target lands where the
	// alias itself does, "" when the target overrides the alias's user or
	// port (web1:2222 must not get web1's password).
	SecretAlias string `json:"secret_alias,omitempty"`

	IdentityFiles  []string `json:"identity_files,omitempty"` // expanded (~, %d %u %h %r %p %l)
	IdentitiesOnly bool     `json:"identities_only,omitempty"`
	IdentityAgent  string   `json:"identity_agent,omitempty"` // socket path, "" = $SSH_AUTH_SOCK, "none" disables

	ProxyJump []string `json:"proxy_jump,omitempty"` // chain of targets, first hop first
	// JumpHosts are the ProxyJump hops as resolved together with this host,
	// first hop first, so that a stored destination does not depend on the
	// ssh_config of the process that runs it.
	JumpHosts    []*Host `json:"jump_hosts,omitempty"`
	ProxyCommand string  `json:"proxy_command,omitempty"` // with %h %p %r expanded

	ServerAliveInterval time.Duration `json:"server_alive_interval"`  // default 15s
	ServerAliveCountMax int           `json:"server_alive_count_max"` // default 3
	ConnectTimeout      time.Duration `json:"connect_timeout"`        // default 15s

	// StrictHostKeyChecking is "yes", "accept-new" (default) or "no"; "no" is
	// treated as accept-new for NEW hosts only: a CHANGED key is always refused.
	StrictHostKeyChecking string   `json:"strict_host_key_checking"`
	UserKnownHostsFiles   []string `json:"user_known_hosts_files,omitempty"` // default ~/.ssh/known_hosts; the first one records new keys
	GlobalKnownHostsFiles []string `json:"global_known_hosts_files,omitempty"`
	HostKeyAlias          string   `json:"host_key_alias,omitempty"`
	// HashKnownHosts: new known_hosts entries are written hashed
	// (ssh_config's HashKnownHosts, on by default in Debian's ssh_config).
	HashKnownHosts bool `json:"hash_known_hosts,omitempty"`
}

// Key names the destination: the pool key of its connection and the job row's
// host. It is "user@hostname:port" when nothing else decides where and as
// whom we land; otherwise that, "#", and a short hash of the route and trust
// settings (proxies, HostKeyAlias, identities, known_hosts files), so that two
// aliases of one address behind different bastions, or with different keys,
// never share a connection or a shell. Route describes the hashed part.
func (h *Host) Key() string {
	base := h.User + "@" + h.Addr()
	if h.plainRoute() {
		return base
	}
	b, _ := json.Marshal(h.route())
	sum := sha256.Sum256(b)
	return base + "#" + hex.EncodeToString(sum[:4])
}

// routeInfo is the part of a destination besides user, hostname and port.
type routeInfo struct {
	Jumps          []string `json:"jumps,omitempty"` // Key of each hop
	ProxyCommand   string   `json:"proxy_command,omitempty"`
	HostKeyAlias   string   `json:"host_key_alias,omitempty"`
	IdentityFiles  []string `json:"identity_files,omitempty"`
	IdentitiesOnly bool     `json:"identities_only,omitempty"`
	IdentityAgent  string   `json:"identity_agent,omitempty"`
	Strict         string   `json:"strict,omitempty"`
	UserKnownHosts []string `json:"user_known_hosts,omitempty"`
	GlobKnownHosts []string `json:"global_known_hosts,omitempty"`
}

func (h *Host) route() routeInfo {
	r := routeInfo{
		ProxyCommand: h.ProxyCommand, HostKeyAlias: h.HostKeyAlias,
		IdentityFiles: h.IdentityFiles, IdentitiesOnly: h.IdentitiesOnly, IdentityAgent: h.IdentityAgent,
		Strict: h.StrictHostKeyChecking, UserKnownHosts: h.UserKnownHostsFiles, GlobKnownHosts: h.GlobalKnownHostsFiles,
	}
	if len(h.JumpHosts) > 0 {
		for _, j := range h.JumpHosts {
			r.Jumps = append(r.Jumps, j.Key())
		}
	} else {
		r.Jumps = h.ProxyJump
	}
	return r
}

// plainRoute reports whether h reaches user@hostname:port as a plain `ssh` with
// no configuration would: directly, with the default identities, agent and
// known_hosts files.
func (h *Host) plainRoute() bool {
	return len(h.ProxyJump) == 0 && h.ProxyCommand == "" && h.HostKeyAlias == "" &&
		!h.IdentitiesOnly && h.IdentityAgent == "" &&
		(h.StrictHostKeyChecking == "" || h.StrictHostKeyChecking == StrictAcceptNew) &&
		h.defaultIdentities() && h.defaultKnownHosts()
}

// defaultIdentities and defaultKnownHosts compare with the defaults under
// $HOME and under the account's home from passwd: `ssh -G` expands ~ with
// the latter, the built-in reader with the former.
func (h *Host) defaultIdentities() bool {
	return slices.ContainsFunc(homes(), func(home string) bool {
		return slices.Equal(h.IdentityFiles, expandAll(defaultIdentityFiles, home))
	})
}

func (h *Host) defaultKnownHosts() bool {
	return slices.ContainsFunc(homes(), func(home string) bool {
		return slices.Equal(h.UserKnownHostsFiles, defaultUserKnownHosts(home))
	}) && (len(h.GlobalKnownHostsFiles) == 0 || slices.Equal(h.GlobalKnownHostsFiles, defaultGlobalKnownHosts))
}

// Route describes, for a person, what besides user@hostname:port decides the
// destination: "" for a plain one, else e.g.
// "via bastion; host key alias s2key; identity ~/.ssh/work".
func (h *Host) Route() string {
	if h.plainRoute() {
		return ""
	}
	var parts []string
	if len(h.ProxyJump) > 0 {
		parts = append(parts, "via "+strings.Join(h.ProxyJump, ","))
	}
	if h.ProxyCommand != "" {
		parts = append(parts, "proxy command "+h.ProxyCommand)
	}
	if h.HostKeyAlias != "" {
		parts = append(parts, "host key alias "+h.HostKeyAlias)
	}
	if !h.defaultIdentities() || h.IdentitiesOnly {
		var ids []string
		for _, f := range h.IdentityFiles {
			ids = append(ids, DisplayPath(f))
		}
		only := ""
		if h.IdentitiesOnly {
			only = " (only)"
		}
		parts = append(parts, "identity "+strings.Join(ids, ",")+only)
	}
	if h.IdentityAgent != "" {
		parts = append(parts, "agent "+DisplayPath(h.IdentityAgent))
	}
	if !h.defaultKnownHosts() {
		var files []string
		for _, f := range h.UserKnownHostsFiles {
			files = append(files, DisplayPath(f))
		}
		parts = append(parts, "known_hosts "+strings.Join(files, ","))
	}
	if h.StrictHostKeyChecking != "" && h.StrictHostKeyChecking != StrictAcceptNew {
		parts = append(parts, "StrictHostKeyChecking "+h.StrictHostKeyChecking)
	}
	return strings.Join(parts, "; ")
}

// Addr is the "hostname:port" to dial (IPv6 literals bracketed).
func (h *Host) Addr() string {
	return net.JoinHostPort(h.HostName, strconv.Itoa(h.Port))
}

// MarshalDestination is h as stored on a job row.
func (h *Host) MarshalDestination() string {
	b, err := json.Marshal(h)
	if err != nil {
		panic(fmt.Sprintf("marshal destination %s: %v", h.Key(), err)) // only plain fields: cannot fail
	}
	return string(b)
}

// UnmarshalDestination reads a destination stored by MarshalDestination.
func UnmarshalDestination(s string) (*Host, error) {
	var h Host
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, fmt.Errorf("stored destination: %w", err)
	}
	if h.HostName == "" || h.User == "" || h.Port <= 0 {
		return nil, fmt.Errorf("stored destination %q: no user, hostname or port", s)
	}
	return &h, nil
}
