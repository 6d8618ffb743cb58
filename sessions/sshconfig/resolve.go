package sshconfig

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxHops bounds ProxyJump recursion (a config whose jump hosts jump through
// each other would otherwise never end).
const MaxHops = 8

// Resolver turns a target into a Host the way `ssh HOST` would.
type Resolver struct {
	ConfigFile string // like ssh -F; "" = ~/.ssh/config (+ /etc/ssh/ssh_config)
	NoOpenSSH  bool   // force the kevinburke/ssh_config path even if `ssh` is on PATH

	// Env, when set, enables the per-alias environment overrides of docs/TOOLS.md
	// (OVRD_{ALIAS}_HOST, _PORT, _USER, _KEY; see envOverrides). The server
	// sets it to os.Getenv; nil (tests, library use) means no overrides.
	Env func(string) string

	// Environ is the environment of `ssh -G` (and the Match exec commands
	// it runs), its secrets dropped (WithoutSecrets); nil: the process's
	// (ChildEnv). The daemon resolves with each client's.
	Environ []string

	// Warn receives a problem that does not stop resolution (an invalid
	// OVRD_{ALIAS}_PORT is ignored, not fatal, as the seeds ignore it).
	// nil writes the line to stderr.
	Warn func(msg string)
}

func (r *Resolver) warn(msg string) {
	if r.Warn != nil {
		r.Warn(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "sshjobs: warning: "+msg)
}

// sshOptions are resolved ssh_config options: lower-case keyword to its
// values, in the order found (several for IdentityFile).
type sshOptions map[string][]string

func (o sshOptions) get(key string) string {
	if v := o[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// request is what a resolution path is asked: the alias to look up and the
// values that override ssh_config (from the target or the environment).
type request struct {
	alias    string
	user     string // "" = from ssh_config
	port     int    // 0 = from ssh_config
	hostName string // "" = from ssh_config
}

// Resolve parses target (alias, host, user@host, user@host:port, [v6]:port),
// applies ssh_config and the environment overrides, and fills in defaults.
// User and port given in the target win over everything else.
//
// The destination is complete: ProxyJump hops are resolved too (JumpHosts),
// and SecretAlias says whether the alias's secrets belong to it.
func (r *Resolver) Resolve(ctx context.Context, target string) (*Host, error) {
	return r.resolve(ctx, target, 0)
}

func (r *Resolver) resolve(ctx context.Context, target string, depth int) (*Host, error) {
	if depth > MaxHops {
		return nil, fmt.Errorf("resolve %s: more than %d ProxyJump hops (a loop in ssh_config?)", target, MaxHops)
	}
	t, err := parseTarget(target)
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	req := request{alias: t.Host, user: t.User, port: t.Port}
	ov, err := envOverrides(r.Env, t.Host, r.warn)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", target, err)
	}
	if req.user == "" {
		req.user = ov.user
	}
	if req.port == 0 {
		req.port = ov.port
	}
	req.hostName = ov.hostName

	var opts sshOptions
	fromOpenSSH := false
	if sshPath, ok := r.openSSH(); ok {
		opts, err = runSSHG(ctx, sshPath, r.ConfigFile, r.childEnv(), req)
		fromOpenSSH = true
	} else {
		opts, err = lookupConfig(r.ConfigFile, req)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", target, err)
	}
	h, err := hostFromOptions(target, req, opts, fromOpenSSH)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", target, err)
	}
	if ov.key != "" {
		// Like `ssh -i`: the given key is tried before the configured ones.
		k := expandTilde(ov.key, homeDir())
		h.IdentityFiles = append([]string{k}, without(h.IdentityFiles, k)...)
	}
	for i, hop := range h.ProxyJump {
		hh, err := r.resolve(ctx, hop, depth+1)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: jump host %d: %w", target, i+1, err)
		}
		h.JumpHosts = append(h.JumpHosts, hh)
	}
	if err := r.bindSecrets(ctx, h, t, depth); err != nil {
		return nil, fmt.Errorf("resolve %s: %w", target, err)
	}
	return h, nil
}

// bindSecrets sets h.SecretAlias: the alias's secrets go only where the alias
// itself lands. A target that names a user or port (web1:2222, other@web1)
// gets them only when the alias resolves to that same destination anyway.
func (r *Resolver) bindSecrets(ctx context.Context, h *Host, t target, depth int) error {
	if t.User == "" && t.Port == 0 {
		h.SecretAlias = h.Alias
		return nil
	}
	bare, err := r.resolve(ctx, t.Host, depth)
	if err != nil {
		return err
	}
	if bare.Key() == h.Key() {
		h.SecretAlias = h.Alias
	}
	return nil
}

// childEnv is the environment of the programs resolution runs.
func (r *Resolver) childEnv() []string {
	if r.Environ != nil {
		return WithoutSecrets(r.Environ)
	}
	return ChildEnv()
}

// openSSH reports the path of the OpenSSH client to ask, if any.
func (r *Resolver) openSSH() (string, bool) {
	if r.NoOpenSSH {
		return "", false
	}
	p, err := exec.LookPath("ssh")
	return p, err == nil
}

// hostFromOptions builds a Host from resolved options. fromOpenSSH says the
// options come from `ssh -G`, which has already expanded the known_hosts
// paths and applied OpenSSH's defaults; IdentityFile and ProxyCommand are
// printed unexpanded by both paths.
func hostFromOptions(targetStr string, req request, o sshOptions, fromOpenSSH bool) (*Host, error) {
	h := &Host{
		Target:              targetStr,
		Alias:               req.alias,
		ServerAliveInterval: DefaultServerAliveInterval,
		ServerAliveCountMax: DefaultServerAliveCountMax,
		ConnectTimeout:      DefaultConnectTimeout,
	}
	tk := localTokens()
	tk.alias = req.alias

	h.User = cmp.Or(req.user, o.get("user"), tk.localUser)
	h.Port = req.port
	if h.Port == 0 {
		if v := o.get("port"); v != "" {
			p, err := parsePort(v)
			if err != nil {
				return nil, fmt.Errorf("Port: %w", err)
			}
			h.Port = p
		} else {
			h.Port = DefaultPort
		}
	}
	tk.remoteUser, tk.port = h.User, h.Port
	tk.host = req.alias
	hn := cmp.Or(req.hostName, o.get("hostname"), req.alias)
	hn, err := tk.expand("HostName", hn)
	if err != nil {
		return nil, err
	}
	if err := checkHostName(hn); err != nil {
		return nil, fmt.Errorf("HostName %q: %w", hn, err)
	}
	h.HostName = hn
	tk.host = hn
	h.HostKeyAlias = o.get("hostkeyalias")
	tk.hostKey = cmp.Or(h.HostKeyAlias, req.alias)

	// Identities.
	ids := o["identityfile"]
	if len(ids) == 0 || (fromOpenSSH && isOpenSSHDefaultIdentities(ids)) {
		ids = defaultIdentityFiles
	}
	for _, id := range ids {
		p, err := tk.expandPath("IdentityFile", id)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(h.IdentityFiles, p) {
			h.IdentityFiles = append(h.IdentityFiles, p)
		}
	}
	h.IdentitiesOnly = isYes(o.get("identitiesonly"))
	switch a := o.get("identityagent"); a {
	case "", "SSH_AUTH_SOCK", "$SSH_AUTH_SOCK":
	case "none":
		h.IdentityAgent = "none"
	default:
		p, err := tk.expandPath("IdentityAgent", a)
		if err != nil {
			return nil, err
		}
		h.IdentityAgent = p
	}

	// Proxies. OpenSSH takes whichever of the two came first; ssh -G prints
	// only that one, and the fallback path keeps ProxyJump when both match.
	if pj := o.get("proxyjump"); pj != "" && pj != "none" {
		for _, hop := range strings.Split(pj, ",") {
			if _, err := parseTarget(hop); err != nil {
				return nil, fmt.Errorf("ProxyJump %q: %w", pj, err)
			}
			h.ProxyJump = append(h.ProxyJump, hop)
		}
	} else if pc := o.get("proxycommand"); pc != "" && pc != "none" {
		pc, err := tk.expand("ProxyCommand", pc)
		if err != nil {
			return nil, err
		}
		h.ProxyCommand = pc
	}

	// Liveness. OpenSSH's defaults (no keepalive, no connect timeout) would
	// let a dead peer hang a job forever: zero means "ours".
	if d, err := parseSeconds("ServerAliveInterval", o.get("serveraliveinterval")); err != nil {
		return nil, err
	} else if d > 0 {
		h.ServerAliveInterval = d
	}
	if v := o.get("serveralivecountmax"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("ServerAliveCountMax %q: not a count", v)
		}
		if n > 0 {
			h.ServerAliveCountMax = n
		}
	}
	if d, err := parseSeconds("ConnectTimeout", o.get("connecttimeout")); err != nil {
		return nil, err
	} else if d > 0 {
		h.ConnectTimeout = d
	}

	// Host keys.
	h.StrictHostKeyChecking = normalizeStrict(o.get("stricthostkeychecking"))
	h.HashKnownHosts = isYes(o.get("hashknownhosts"))
	user, err := knownHostsList(tk, o["userknownhostsfile"], fromOpenSSH)
	if err != nil {
		return nil, err
	}
	if len(user) == 0 {
		user = defaultUserKnownHosts(tk.home)
	}
	h.UserKnownHostsFiles = user
	global, err := knownHostsList(tk, o["globalknownhostsfile"], fromOpenSSH)
	if err != nil {
		return nil, err
	}
	if len(global) == 0 && !fromOpenSSH {
		global = defaultGlobalKnownHosts
	}
	h.GlobalKnownHostsFiles = global
	return h, nil
}

// knownHostsList splits (UserKnownHostsFile takes several space-separated
// paths) and, for the fallback path, expands the values; `ssh -G` prints them
// expanded already. "none" means no file.
func knownHostsList(tk tokens, vals []string, expanded bool) ([]string, error) {
	var out []string
	for _, v := range vals {
		for _, f := range strings.Fields(v) {
			if f == "none" || f == "/dev/null" {
				continue
			}
			if !expanded {
				p, err := tk.expandPath("UserKnownHostsFile", f)
				if err != nil {
					return nil, err
				}
				f = p
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// defaultUserKnownHosts are OpenSSH's UserKnownHostsFile default.
func defaultUserKnownHosts(home string) []string {
	return []string{home + "/.ssh/known_hosts", home + "/.ssh/known_hosts2"}
}

// defaultGlobalKnownHosts are OpenSSH's GlobalKnownHostsFile default.
var defaultGlobalKnownHosts = []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}

// expandAll expands a leading ~ in each of paths.
func expandAll(paths []string, home string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = expandTilde(p, home)
	}
	return out
}

// defaultIdentityFiles are tried when ssh_config names none; only the existing
// ones are used at auth time.
var defaultIdentityFiles = []string{"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"}

// isOpenSSHDefaultIdentities recognises the list `ssh -G` prints when the
// config names no IdentityFile (it differs between OpenSSH versions, so the
// test is "only default names, and the three main ones among them").
func isOpenSSHDefaultIdentities(ids []string) bool {
	known := map[string]bool{"id_rsa": true, "id_ecdsa": true, "id_ecdsa_sk": true,
		"id_ed25519": true, "id_ed25519_sk": true, "id_xmss": true, "id_dsa": true}
	seen := map[string]bool{}
	for _, id := range ids {
		name, ok := strings.CutPrefix(id, "~/.ssh/")
		if !ok || !known[name] {
			return false
		}
		seen[name] = true
	}
	return seen["id_rsa"] && seen["id_ecdsa"] && seen["id_ed25519"]
}

// normalizeStrict maps ssh_config's and ssh -G's spellings onto the three
// behaviours. "ask" (OpenSSH's default) cannot ask anybody here and becomes
// accept-new, the project's documented default.
func normalizeStrict(v string) string {
	switch strings.ToLower(v) {
	case "yes", "true":
		return StrictYes
	case "no", "off", "false":
		return StrictNo
	default:
		return StrictAcceptNew
	}
}

func parseSeconds(what, v string) (time.Duration, error) {
	if v == "" || v == "none" {
		return 0, nil
	}
	// ssh_config accepts sshd time formats (10, 10s, 5m); ssh -G prints seconds.
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(strings.ToLower(v)); err == nil && d >= 0 {
		return d, nil
	}
	return 0, fmt.Errorf("%s %q: not a number of seconds", what, v)
}

func isYes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true":
		return true
	}
	return false
}

func without(list []string, s string) []string {
	var out []string
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
