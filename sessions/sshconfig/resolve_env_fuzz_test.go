package sshconfig

import (
	"regexp"
	"strings"
	"testing"
)

var envNameRE = regexp.MustCompile(`^OVRD_[A-Z0-9_]*_$`)

// FuzzEnvOverrides: for any alias and any OVRD_* values, EnvName is a valid
// variable name, LookupEnv answers only from the alias's own prefixes, and
// what envOverrides accepts is safe for `ssh -G`'s command line (a host name
// and user that cannot be read as options or shell syntax, a port in range).
func FuzzEnvOverrides(f *testing.F) {
	f.Add("web-1.example", "10.0.0.1", "2222", "root", "/k")
	f.Add("web", "-oProxyCommand=x", "022", "a@b", "")
	f.Add("Ünï côdé", "h;id", "+1", "u`x`", "k")
	f.Add("a\x00b", "h\x00", "65536", "-u", "")
	f.Add("", "", "", "", "")
	f.Add("WEB", "web", "1", "x y", "~/.ssh/id")
	f.Add("win", "w", "22", `DOMAIN\`, "")
	f.Fuzz(func(t *testing.T, alias, host, port, user, key string) {
		name := EnvName(alias)
		if !envNameRE.MatchString(name) {
			t.Fatalf("EnvName(%q) = %q", alias, name)
		}
		vars := map[string]string{}
		for _, p := range envPrefixes(alias) {
			if !strings.HasPrefix(p, "OVRD_") || !strings.HasSuffix(p, "_") {
				t.Fatalf("envPrefixes(%q) has %q", alias, p)
			}
			vars[p+"HOST"], vars[p+"PORT"], vars[p+"USER"], vars[p+"KEY"] = host, port, user, key
		}
		getenv := func(k string) string { return vars[k] }
		if v, n := LookupEnv(getenv, alias, "HOST"); v != host || (v != "" && vars[n] != v) {
			t.Fatalf("LookupEnv(%q, HOST) = %q from %q, want %q", alias, v, n, host)
		}
		var warned []string
		o, err := envOverrides(getenv, alias, func(s string) { warned = append(warned, s) })
		if err != nil {
			if !strings.Contains(err.Error(), "OVRD_") {
				t.Fatalf("error does not name the variable: %v", err)
			}
			return
		}
		if o.hostName != "" && (o.hostName != host || checkHostName(o.hostName) != nil) {
			t.Fatalf("host %q accepted as %q", host, o.hostName)
		}
		if o.user != "" && (o.user != user || strings.HasPrefix(o.user, "-") || strings.ContainsAny(o.user, badUserChars+"@ \t\r\n\x00") || strings.HasSuffix(o.user, `\`)) {
			t.Fatalf("user %q accepted as %q", user, o.user)
		}
		if o.port < 0 || o.port > 65535 || (port != "" && o.port == 0 && len(warned) == 0) {
			t.Fatalf("port %q gave %d, warnings %q", port, o.port, warned)
		}
		if o.key != key {
			t.Fatalf("key %q read as %q", key, o.key)
		}
	})
}
