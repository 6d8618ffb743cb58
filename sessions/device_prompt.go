package sessions

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// deviceVendor names the kind of CLI a device prompt shows. Vendors whose
// prompts look alike (Cisco IOS, IOS XE, NX-OS, ASA, Arista EOS) share one.
type deviceVendor string

const (
	vendorIOS        deviceVendor = "IOS-style"
	vendorEdgeSwitch deviceVendor = "EdgeSwitch"
	vendorJunos      deviceVendor = "Junos"
	vendorRouterOS   deviceVendor = "RouterOS"
)

// devicePrompt is a device's prompt, learned from the line it shows when it
// waits for a command: its host part (hostname; user@host on Junos;
// [user@identity] on RouterOS) and the vendor's shape around it. It
// matches the prompt in every mode of that device: user (>), enable (#),
// configure ((config)#, (config-if)#), a RouterOS menu (/interface>).
type devicePrompt struct {
	vendor deviceVendor
	host   string
	re     *regexp.Regexp // this host's prompts; group "mode" is what follows the host
}

// promptShape is one vendor's prompt, with any host. Order matters: the
// IOS shape is the most general.
type promptShape struct {
	vendor deviceVendor
	re     func() *regexp.Regexp // groups: host, mode (compiled on first use)
	// exact builds the regexp of one host's prompts from its quoted host.
	exact func(host string) string
}

// maxPromptLen bounds a prompt line: longer lines are output, not prompts.
const maxPromptLen = 128

var promptShapes = []promptShape{
	{vendorRouterOS, lazyRE(`^\[([^\[\]@\s]+@[^\[\]\s][^\[\]]*)\] ((?:/[\w /.-]*)?> ?)$`),
		func(h string) string { return `^\[` + h + `\] ((?:/[\w /.-]*)?> ?)$` }},
	{vendorJunos, lazyRE(`^([\w.-]+@[\w.-]+)([>#] ?)$`),
		func(h string) string { return `^` + h + `([>#] ?)$` }},
	{vendorEdgeSwitch, lazyRE(`^\(([\w.-]+)\) ((?:\([\w /-]+\))?\s?[>#] ?)$`),
		func(h string) string { return `^\(` + h + `\) ((?:\([\w /-]+\))?\s?[>#] ?)$` }},
	{vendorIOS, lazyRE(`^([A-Za-z0-9][\w.:/-]*)((?:\([\w./-]+\))?[>#] ?)$`),
		func(h string) string { return `^` + h + `((?:\([\w./-]+\))?[>#] ?)$` }},
}

// shellPromptLine matches the usual prompts of POSIX shells: `$ `, `# `,
// `user@host:~$ `, `[user@host ~]$ `, `bash-5.2$ `, `host:~ user$ `,
// `user@host ~ % `. No device shows one: a session named a device that
// shows one has a shell.
var shellPromptLine = lazyRE(`^(?:[$#%]|[^\s@]+@[^\s:]+:\S*[$#]|\[[^\s@]+@\S+ [^\]]*\][$#]|(?:ba|da|z|k)?sh-[\d.]+[$#]|[^\s:]+:\S* \S+[$#%]|[^\s@]+@\S+ \S+ %) ?$`)

// learnPrompt learns a device's prompt from the last (unfinished) line it
// printed, or reports that the line is no device prompt.
func learnPrompt(line string) (devicePrompt, bool) {
	// A prompt is printable text; QuoteMeta keeps invalid UTF-8 as it is,
	// which no regexp compiles (the fuzzer found it).
	if len(line) > maxPromptLen || !utf8.ValidString(line) || strings.ContainsFunc(line, unicode.IsControl) || shellPromptLine().MatchString(line) {
		return devicePrompt{}, false
	}
	for _, s := range promptShapes {
		m := s.re().FindStringSubmatch(line)
		if m == nil {
			continue
		}
		re, err := regexp.Compile(s.exact(regexp.QuoteMeta(m[1])))
		if err != nil {
			return devicePrompt{}, false
		}
		return devicePrompt{vendor: s.vendor, host: m[1], re: re}, true
	}
	return devicePrompt{}, false
}

// match reports whether line is this device's prompt, and its mode part
// (">", "#", "(config-if)#", "/interface>").
func (p devicePrompt) match(line string) (mode string, ok bool) {
	if p.re == nil || len(line) > maxPromptLen {
		return "", false
	}
	m := p.re.FindStringSubmatch(line)
	if m == nil {
		return "", false
	}
	return strings.TrimSpace(m[1]), true
}

// privileged reports whether mode is past user mode where that means
// something (IOS-style and EdgeSwitch: enable mode and below).
func (p devicePrompt) privileged(mode string) bool {
	switch p.vendor {
	case vendorIOS, vendorEdgeSwitch:
		return strings.HasSuffix(mode, "#")
	}
	return true
}

// hasEnable reports whether the vendor's CLI has an enable mode.
func (p devicePrompt) hasEnable() bool {
	return p.vendor == vendorIOS || p.vendor == vendorEdgeSwitch
}

// pagerLine matches the prompt of a device's pager, which waits for a key:
// IOS and friends (--More--, <--- More --->), Junos (---(more 25%)---),
// EdgeSwitch (--More-- or (q)uit), RouterOS (-- [Q quit|D dump|down]).
var pagerLine = lazyRE(`(?i)^\s*(?:<?-+ ?\(?more(?: \d+%)?\)? ?-+>?(?: or \(q\)uit)?|-- \[Q quit\|D dump\|down\]|press any key to continue(?: \(q to quit\))?)\s*$`)

// secretWords end the password prompts of enable, before the colon, in
// any case: `Password:` (IOS, EOS, EdgeSwitch), `Enable Password:`,
// `enable password:`, `Enable secret:`, `Enter password :`.
var secretWords = []string{"password", "passwd", "secret"}

// passwordPrompt reports whether line, the device's last unfinished line,
// asks for a password (enable's): a short line ending in one of
// secretWords and a colon, then any blanks.
func passwordPrompt(line string) bool {
	s := strings.TrimRightFunc(line, unicode.IsSpace)
	if len(s) > maxPromptLen {
		return false
	}
	s, ok := strings.CutSuffix(s, ":")
	if !ok {
		return false
	}
	s = strings.ToLower(strings.TrimRightFunc(s, unicode.IsSpace))
	for _, w := range secretWords {
		if strings.HasSuffix(s, w) {
			return true
		}
	}
	return false
}

// deviceError matches, at the start of a line, the messages with which a
// device rejects a command.
var deviceError = lazyRE(`^(?:% ?(?:Invalid input|Incomplete command|Ambiguous command|Unknown command|Invalid command|Unrecognized command|Bad secrets|Access denied)|bad command name|syntax error|expected end of command|unknown command|error: |failure: |no such item)`)
