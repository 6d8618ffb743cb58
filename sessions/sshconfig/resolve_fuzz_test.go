package sshconfig

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseTarget: whatever is accepted must be safe to hand to `ssh -G` and
// to a ProxyCommand's shell, and parse the same way again.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"web", "root@web:2222", "[::1]:22", "u@[fe80::1%eth0]:22", "::1",
		"-oProxyCommand=x", "a@-b", "a\\@b", `D\u@b`, "m$@b", "ssh://u@h:1/", "a b", "a\x00b", "h:65536", "[x]:", "@", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := parseTarget(s)
		if err != nil {
			return
		}
		if tg.Host == "" || strings.HasPrefix(tg.Host, "-") || strings.HasPrefix(tg.User, "-") {
			t.Fatalf("parseTarget(%q) = %+v: empty or option-like part", s, tg)
		}
		// A user may hold $ and \ (Windows accounts: DOMAIN\user, HOST$), as
		// OpenSSH's valid_ruser allows, but never at the end a backslash
		// that would escape what follows it in a ProxyCommand.
		if strings.ContainsAny(tg.Host, " \t\r\n\x00;&|`$<>()'\"\\") ||
			strings.ContainsAny(tg.User, " \t\r\n\x00;&|`<>()'\":/") || strings.HasSuffix(tg.User, "\\") {
			t.Fatalf("parseTarget(%q) = %+v: unsafe character", s, tg)
		}
		if tg.Port < 0 || tg.Port > 65535 {
			t.Fatalf("parseTarget(%q): port %d", s, tg.Port)
		}
		// Re-assembled, it parses to the same thing.
		again := tg.Host
		if strings.Contains(again, ":") {
			again = "[" + again + "]"
		}
		if tg.Port != 0 {
			again += ":" + strconv.Itoa(tg.Port)
		} else if strings.Contains(tg.Host, ":") {
			again = tg.Host
		}
		if tg.User != "" {
			again = tg.User + "@" + again
		}
		tg2, err := parseTarget(again)
		if err != nil || tg2 != tg {
			t.Fatalf("parseTarget(%q) = %+v, but %q gives %+v, %v", s, tg, again, tg2, err)
		}
	})
}

// FuzzParseSSHG: the `ssh -G` parser never panics, and what it returns has
// clean lower-case keywords.
func FuzzParseSSHG(f *testing.F) {
	f.Add([]byte("host web\nuser root\nhostname 10.0.0.1\nport 22\nidentityfile ~/.ssh/id_rsa\nidentityfile ~/.ssh/id_ed25519\n"))
	f.Add([]byte("userknownhostsfile /a /b\r\nproxyjump a,b@c:23\nconnecttimeout none\n"))
	f.Add([]byte("canonicalizePermittedcnames none\n\n\nkey\n"))
	f.Add([]byte("bad-key x\n"))
	f.Add([]byte("hostname a\x00b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		opts, err := parseSSHG(b)
		if err != nil {
			return
		}
		for k, vs := range opts {
			if k == "" || strings.ToLower(k) != k || strings.ContainsAny(k, " \n\r\x00") {
				t.Fatalf("bad keyword %q", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\n\x00") {
					t.Fatalf("%s: value %q spans lines or has NUL", k, v)
				}
			}
		}
		// The Host built from any parse must not panic either.
		_, _ = hostFromOptions("x", request{alias: "x"}, opts, true)
	})
}
