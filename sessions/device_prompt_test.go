package sessions

import (
	"strings"
	"testing"
)

// The prompt learner knows each vendor's prompts in all their modes, and
// never takes a shell prompt, output or a pager for one.
func TestLearnPrompt(t *testing.T) {
	tests := []struct {
		line   string
		vendor deviceVendor
		host   string
		others []string // more prompts of the same device
	}{
		{"R1>", vendorIOS, "R1", []string{"R1#", "R1(config)#", "R1(config-if)#", "R1(config-router)# "}},
		{"core-sw.lab#", vendorIOS, "core-sw.lab", []string{"core-sw.lab(config-if-Et1)#"}},
		{"RP/0/RSP0/CPU0:xr1#", vendorIOS, "RP/0/RSP0/CPU0:xr1", []string{"RP/0/RSP0/CPU0:xr1(config)#"}},
		{"admin@mx1> ", vendorJunos, "admin@mx1", []string{"admin@mx1# "}},
		{"(EdgeSwitch) >", vendorEdgeSwitch, "EdgeSwitch", []string{"(EdgeSwitch) #", "(EdgeSwitch) (Config)#", "(EdgeSwitch) (Interface 0/1)#"}},
		{"[admin@MikroTik] > ", vendorRouterOS, "admin@MikroTik", []string{"[admin@MikroTik] /interface> ", "[admin@MikroTik] /ip address> "}},
	}
	for _, tt := range tests {
		p, ok := learnPrompt(tt.line)
		if !ok || p.vendor != tt.vendor || p.host != tt.host {
			t.Errorf("learnPrompt(%q) = %v %q %v, want %v %q", tt.line, p.vendor, p.host, ok, tt.vendor, tt.host)
			continue
		}
		for _, o := range append([]string{tt.line}, tt.others...) {
			if _, ok := p.match(o); !ok {
				t.Errorf("prompt learned from %q does not match %q", tt.line, o)
			}
		}
		// Another host's prompt, or the prompt with text after it, is not this one.
		for _, o := range []string{strings.Replace(tt.line, tt.host, tt.host+"x", 1), tt.line + "show version"} {
			if _, ok := p.match(o); ok {
				t.Errorf("prompt learned from %q matches %q", tt.line, o)
			}
		}
	}
	for _, line := range []string{"", "$ ", "user@box:~$ ", "root@box:~# ", "--More--", " --More-- ",
		"Password: ", "Building configuration...", "interface FastEthernet0/0", "a b>", "[y/n]?", "> ",
		"bash-5.2# ", "sh-5.1$ ", "[root@web1 ~]# ", "host:~ user$ ", "user@host ~ % ", "# "} {
		if p, ok := learnPrompt(line); ok {
			t.Errorf("learnPrompt(%q) = %v %q, want none", line, p.vendor, p.host)
		}
	}
}

func TestDeviceLines(t *testing.T) {
	for _, l := range []string{" --More-- ", "--More--", "<--- More --->", "---(more)---", "---(more 25%)---",
		"-- [Q quit|D dump|down]", "--More-- or (q)uit"} {
		if !pagerLine().MatchString(l) {
			t.Errorf("pager %q not recognised", l)
		}
	}
	for _, l := range []string{"-- [Q quit|D dump|C-z pause]", "more text", "R1#"} {
		if pagerLine().MatchString(l) {
			t.Errorf("%q taken for a pager", l)
		}
	}
	for _, l := range []string{"% Invalid input detected at '^' marker.", "% Incomplete command.", `% Ambiguous command:  "t 1"`,
		"% Unknown command or computer name, or unable to find computer address", "bad command name foo (line 1 column 1)",
		"syntax error (line 1 column 7)", "expected end of command (line 1 column 12)", "unknown command.", "error: syntax error: foo"} {
		if !deviceError().MatchString(l) {
			t.Errorf("error %q not recognised", l)
		}
	}
	for _, l := range []string{"000001: *Dec  2 07:00:01.001: %LINK-3-UPDOWN: Interface", " description % Invalid input", "errors: 0"} {
		if deviceError().MatchString(l) {
			t.Errorf("%q taken for an error", l)
		}
	}
}

// The password prompts of enable across CLIs, and lines that are none.
func TestPasswordPrompt(t *testing.T) {
	for _, l := range []string{"Password:", "Password: ", "Password:   ", "Password:\t", "Enable Password:", "enable password:",
		"Enable Secret: ", "PASSWORD:", "Enter password :", "passwd:"} {
		if !passwordPrompt(l) {
			t.Errorf("%q not taken for a password prompt", l)
		}
	}
	for _, l := range []string{"", ":", "Password", "R1>", "Password: x", "password-encryption:aes", "secrets: 3 configured ...",
		"Passwords:", strings.Repeat("x", maxPromptLen) + " Password:"} {
		if passwordPrompt(l) {
			t.Errorf("%q taken for a password prompt", l)
		}
	}
}
