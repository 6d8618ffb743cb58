package sshconfig

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

func TestResolveConfig(t *testing.T) {
	home := sshtest.TempHome(t)
	dir := t.TempDir()
	included := sshtest.WriteFile(t, filepath.Join(dir, "included.conf"), "Host incl\n  HostName 10.5.5.5\n  Port 2345\n")
	cfg := sshtest.WriteFile(t, filepath.Join(dir, "config"), `Include `+included+`

Host web
  HostName 10.1.2.3
  Port 2200
  User deploy
  IdentityFile ~/.ssh/web_key
  IdentityFile /keys/%h_%r_%p
  IdentitiesOnly yes
  ServerAliveInterval 20
  ServerAliveCountMax 5
  ConnectTimeout 7

Host inner
  HostName 10.9.9.9
  ProxyJump bastion,ops@mid:2022

Host pc
  HostName pc.internal
  User pcuser
  Port 2022
  ProxyCommand nc -X connect %h %p %r

Host strict
  StrictHostKeyChecking yes
  UserKnownHostsFile /kh/one /kh/two
  HostKeyAlias strictalias

Host loose
  StrictHostKeyChecking no
  IdentityAgent none

Match host matched
  User matcheduser

Host *
  ServerAliveCountMax 4
`)
	me := currentUser()
	defIDs := []string{home + "/.ssh/id_ed25519", home + "/.ssh/id_ecdsa", home + "/.ssh/id_rsa"}

	type want struct {
		key        string
		ids        []string
		idsOnly    bool
		jump       []string
		proxyCmd   string
		alive      time.Duration
		aliveMax   int
		timeout    time.Duration
		strict     string
		userKH     []string // nil: only check the default's name
		alias      string
		agent      string
		targetUser string
	}
	cases := []struct {
		target string
		want   want
	}{
		{"web", want{key: "deploy@10.1.2.3:2200", ids: []string{home + "/.ssh/web_key", "/keys/10.1.2.3_deploy_2200"},
			idsOnly: true, alive: 20 * time.Second, aliveMax: 5, timeout: 7 * time.Second, strict: StrictAcceptNew}},
		{"root@web:2201", want{key: "root@10.1.2.3:2201", ids: []string{home + "/.ssh/web_key", "/keys/10.1.2.3_root_2201"},
			idsOnly: true, alive: 20 * time.Second, aliveMax: 5, timeout: 7 * time.Second, strict: StrictAcceptNew}},
		{"inner", want{key: me + "@10.9.9.9:22", ids: defIDs, jump: []string{"bastion", "ops@mid:2022"},
			alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second, strict: StrictAcceptNew}},
		{"pc", want{key: "pcuser@pc.internal:2022", ids: defIDs, proxyCmd: "nc -X connect pc.internal 2022 pcuser",
			alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second, strict: StrictAcceptNew}},
		{"strict", want{key: me + "@strict:22", ids: defIDs, alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second,
			strict: StrictYes, userKH: []string{"/kh/one", "/kh/two"}, alias: "strictalias"}},
		{"loose", want{key: me + "@loose:22", ids: defIDs, alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second,
			strict: StrictNo, agent: "none"}},
		{"incl", want{key: me + "@10.5.5.5:2345", ids: defIDs, alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second, strict: StrictAcceptNew}},
		{"matched", want{key: "matcheduser@matched:22", ids: defIDs, alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second, strict: StrictAcceptNew}},
		{"other.example.com", want{key: me + "@other.example.com:22", ids: defIDs, alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second, strict: StrictAcceptNew}},
		{"admin@[::1]:2222", want{key: "admin@[::1]:2222", ids: defIDs, alive: 15 * time.Second, aliveMax: 4, timeout: 15 * time.Second, strict: StrictAcceptNew}},
	}
	for name, noOpenSSH := range sshtest.ResolverPaths(t) {
		t.Run(name, func(t *testing.T) {
			r := &Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH}
			for _, c := range cases {
				t.Run(c.target, func(t *testing.T) {
					h, err := r.Resolve(context.Background(), c.target)
					if err != nil {
						t.Fatal(err)
					}
					w := c.want
					check := func(what string, got, want any) {
						t.Helper()
						if !reflect.DeepEqual(got, want) {
							t.Errorf("%s = %#v, want %#v", what, got, want)
						}
					}
					check("Key() before #", keyBase(t, h), w.key)
					check("Target", h.Target, c.target)
					check("IdentityFiles", h.IdentityFiles, w.ids)
					check("IdentitiesOnly", h.IdentitiesOnly, w.idsOnly)
					check("ProxyJump", h.ProxyJump, w.jump)
					check("ProxyCommand", h.ProxyCommand, w.proxyCmd)
					check("ServerAliveInterval", h.ServerAliveInterval, w.alive)
					check("ServerAliveCountMax", h.ServerAliveCountMax, w.aliveMax)
					check("ConnectTimeout", h.ConnectTimeout, w.timeout)
					check("StrictHostKeyChecking", h.StrictHostKeyChecking, w.strict)
					check("HostKeyAlias", h.HostKeyAlias, w.alias)
					check("IdentityAgent", h.IdentityAgent, w.agent)
					if w.userKH != nil {
						check("UserKnownHostsFiles", h.UserKnownHostsFiles, w.userKH)
					} else if len(h.UserKnownHostsFiles) == 0 || !strings.HasSuffix(h.UserKnownHostsFiles[0], "/.ssh/known_hosts") {
						t.Errorf("UserKnownHostsFiles = %q, want ~/.ssh/known_hosts first", h.UserKnownHostsFiles)
					}
				})
			}
		})
	}
}

func TestResolveEnvOverrides(t *testing.T) {
	home := sshtest.TempHome(t)
	cfg := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "config"), "Host web-1\n  HostName 10.1.1.1\n  User cfguser\n  Port 2200\n  IdentityFile ~/.ssh/cfgkey\n")
	env := map[string]string{
		"OVRD_WEB_1_HOST": "10.2.2.2",
		"OVRD_WEB_1_PORT": "2300",
		"OVRD_WEB_1_USER": "envuser",
		"OVRD_WEB_1_KEY":  "~/.ssh/envkey",
	}
	for name, noOpenSSH := range sshtest.ResolverPaths(t) {
		t.Run(name, func(t *testing.T) {
			r := &Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH, Env: func(k string) string { return env[k] }}
			h, err := r.Resolve(context.Background(), "web-1")
			if err != nil {
				t.Fatal(err)
			}
			if keyBase(t, h) != "envuser@10.2.2.2:2300" {
				t.Errorf("Key() = %q, want envuser@10.2.2.2:2300", h.Key())
			}
			want := []string{home + "/.ssh/envkey", home + "/.ssh/cfgkey"}
			if !reflect.DeepEqual(h.IdentityFiles, want) {
				t.Errorf("IdentityFiles = %q, want %q", h.IdentityFiles, want)
			}
			// The target's own user and port beat the environment.
			h, err = r.Resolve(context.Background(), "me@web-1:2400")
			if err != nil {
				t.Fatal(err)
			}
			if keyBase(t, h) != "me@10.2.2.2:2400" {
				t.Errorf("Key() = %q, want me@10.2.2.2:2400", h.Key())
			}
		})
	}
	bad := &Resolver{ConfigFile: cfg, NoOpenSSH: true, Env: func(k string) string {
		return map[string]string{"OVRD_WEB_1_HOST": "-oProxyCommand=evil"}[k]
	}}
	if _, err := bad.Resolve(context.Background(), "web-1"); err == nil || !strings.Contains(err.Error(), "OVRD_WEB_1_HOST") {
		t.Errorf("option-like OVRD_WEB_1_HOST: err = %v, want an error naming it", err)
	}
}

func TestResolveBadTargets(t *testing.T) {
	sshtest.TempHome(t)
	cfg := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "config"), "Host x\n  Port 22\n")
	bad := []string{"", " ", "a b", "a\tb", "-oProxyCommand=touch /tmp/pwned", "root@-oProxyCommand=x",
		"-x@host", "a\x00b", "a\nb", "a\rb", "host:0", "host:99999", "host:abc", "host:", "[::1", "[::1]x",
		"user@", "@host", "a;b", "a$(id)", "ho`st", "a|b", "a,b", "a/b", "a*", "\x1b[31m"}
	for name, noOpenSSH := range sshtest.ResolverPaths(t) {
		t.Run(name, func(t *testing.T) {
			r := &Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH}
			for _, target := range bad {
				if h, err := r.Resolve(context.Background(), target); err == nil {
					t.Errorf("Resolve(%q) = %+v, want an error", target, h)
				}
			}
		})
	}
}

func TestResolveConfigErrors(t *testing.T) {
	sshtest.TempHome(t)
	dir := t.TempDir()
	cases := map[string]string{
		"bad port":       "Host x\n  Port notanumber\n",
		"bad jump":       "Host x\n  ProxyJump -oProxyCommand=x\n",
		"bad token":      "Host x\n  IdentityFile ~/.ssh/%Z\n",
		"bad timeout":    "Host x\n  ConnectTimeout soon\n",
		"bad alive":      "Host x\n  ServerAliveCountMax many\n",
		"bad hostname %": "Host x\n  HostName %Z\n",
	}
	for name, noOpenSSH := range sshtest.ResolverPaths(t) {
		t.Run(name, func(t *testing.T) {
			for cname, text := range cases {
				cfg := sshtest.WriteFile(t, filepath.Join(dir, strings.ReplaceAll(cname, " ", "_")), text)
				r := &Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH}
				if h, err := r.Resolve(context.Background(), "x"); err == nil {
					t.Errorf("%s: Resolve = %+v, want an error", cname, h)
				} else {
					t.Logf("%s: %v", cname, err)
				}
			}
			r := &Resolver{ConfigFile: filepath.Join(dir, "missing"), NoOpenSSH: noOpenSSH}
			if _, err := r.Resolve(context.Background(), "x"); err == nil {
				t.Error("missing -F file: want an error")
			}
		})
	}
}

// An unsupported Match makes kevinburke/ssh_config fail the whole file; the
// error must say so and name the file, where OpenSSH handles it.
func TestResolveUnsupportedMatch(t *testing.T) {
	sshtest.TempHome(t)
	cfg := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "config"), "Match user nobody\n  Port 2222\nHost x\n  Port 2200\n")
	_, err := (&Resolver{ConfigFile: cfg, NoOpenSSH: true}).Resolve(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), cfg) || !strings.Contains(err.Error(), "Match") {
		t.Errorf("fallback: err = %v, want an unsupported Match error naming %s", err, cfg)
	}
	if _, ok := sshtest.ResolverPaths(t)["openssh"]; ok {
		h, err := (&Resolver{ConfigFile: cfg}).Resolve(context.Background(), "x")
		if err != nil {
			t.Fatalf("openssh: %v", err)
		}
		if h.Port != 2200 {
			t.Errorf("openssh: Port = %d, want 2200", h.Port)
		}
	}
}

func TestParseTarget(t *testing.T) {
	cases := map[string]target{
		"web":                 {Host: "web"},
		"root@web":            {User: "root", Host: "web"},
		"root@web:2222":       {User: "root", Host: "web", Port: 2222},
		"web:2222":            {Host: "web", Port: 2222},
		"[::1]:2222":          {Host: "::1", Port: 2222},
		"u@[fe80::1]:22":      {User: "u", Host: "fe80::1", Port: 22},
		"::1":                 {Host: "::1"},
		"[::1]":               {Host: "::1"},
		"a@b@host":            {User: "a@b", Host: "host"},
		"ssh://ops@mid:2022":  {User: "ops", Host: "mid", Port: 2022},
		"h.example.com":       {Host: "h.example.com"},
		"user.name@10.0.0.1":  {User: "user.name", Host: "10.0.0.1"},
		"bücher.example":      {Host: "bücher.example"},
		"x_y-z@host-1.local":  {User: "x_y-z", Host: "host-1.local"},
		"ssh://h/":            {Host: "h"},
		"ROOT@Web.Example:22": {User: "ROOT", Host: "Web.Example", Port: 22},
	}
	for in, want := range cases {
		got, err := parseTarget(in)
		if err != nil || got != want {
			t.Errorf("parseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// keyBase is the user@host:port part of h.Key(); the key has a route hash
// after it exactly when Route says something.
func keyBase(t *testing.T, h *Host) string {
	t.Helper()
	base, hash, hashed := strings.Cut(h.Key(), "#")
	if hashed != (h.Route() != "") || hashed && len(hash) != 8 {
		t.Errorf("Key() = %q with route %q: a hash exactly when there is a route", h.Key(), h.Route())
	}
	return base
}

// The key of a destination is user@host:port when nothing else decides it,
// and differs whenever the route or trust does.
func TestHostKeyRoute(t *testing.T) {
	home := sshtest.TempHome(t)
	plain := &Host{User: "u", HostName: "h", Port: 22, StrictHostKeyChecking: StrictAcceptNew,
		IdentityFiles: expandAll(defaultIdentityFiles, home), UserKnownHostsFiles: defaultUserKnownHosts(home)}
	if plain.Key() != "u@h:22" || plain.Route() != "" {
		t.Fatalf("plain: %q route %q", plain.Key(), plain.Route())
	}
	seen := map[string]string{plain.Key(): "plain"}
	for name, change := range map[string]func(h *Host){
		"proxy jump":      func(h *Host) { h.ProxyJump = []string{"bastion"} },
		"proxy command":   func(h *Host) { h.ProxyCommand = "nc %h %p" },
		"host key alias":  func(h *Host) { h.HostKeyAlias = "other" },
		"identity":        func(h *Host) { h.IdentityFiles = []string{home + "/.ssh/work"} },
		"identities only": func(h *Host) { h.IdentitiesOnly = true },
		"agent":           func(h *Host) { h.IdentityAgent = "/run/agent.sock" },
		"known_hosts":     func(h *Host) { h.UserKnownHostsFiles = []string{"/etc/other_known_hosts"} },
		"strict":          func(h *Host) { h.StrictHostKeyChecking = StrictYes },
	} {
		h := *plain
		change(&h)
		k := h.Key()
		if other, dup := seen[k]; dup {
			t.Errorf("%s: key %q equals %s's", name, k, other)
		}
		seen[k] = name
		if !strings.HasPrefix(k, "u@h:22#") || h.Route() == "" {
			t.Errorf("%s: key %q route %q", name, k, h.Route())
		}
		again, err := UnmarshalDestination(h.MarshalDestination())
		if err != nil || again.Key() != k {
			t.Errorf("%s: stored and read back: %v, key %q want %q", name, err, again.Key(), k)
		}
	}
}

// An invalid OVRD_{ALIAS}_PORT is ignored with a warning; the rest of the
// overrides still apply and the host resolves.
func TestResolveEnvBadPortIgnored(t *testing.T) {
	sshtest.TempHome(t)
	cfg := sshtest.WriteFile(t, filepath.Join(t.TempDir(), "config"), "Host web-1\n  HostName 10.1.1.1\n  Port 2200\n")
	for _, port := range []string{"abc", "0", "70000", "-1"} {
		env := map[string]string{"OVRD_web-1_PORT": port, "OVRD_WEB_1_USER": "envuser"}
		var warned []string
		r := &Resolver{ConfigFile: cfg, NoOpenSSH: true, Env: func(k string) string { return env[k] },
			Warn: func(m string) { warned = append(warned, m) }}
		h, err := r.Resolve(context.Background(), "web-1")
		if err != nil {
			t.Fatalf("port %q: %v", port, err)
		}
		if keyBase(t, h) != "envuser@10.1.1.1:2200" {
			t.Errorf("port %q: Key() = %q, want envuser@10.1.1.1:2200", port, h.Key())
		}
		if len(warned) != 1 || !strings.Contains(warned[0], "OVRD_web-1_PORT ignored") {
			t.Errorf("port %q: warnings %q, want one naming OVRD_web-1_PORT", port, warned)
		}
	}
}
