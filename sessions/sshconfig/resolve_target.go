package sshconfig

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// target is a host as the caller named it, split into its parts. User and Port
// are zero when the target does not give them (ssh_config then decides).
type target struct {
	User string
	Host string
	Port int
}

// badHostChars are refused in a host name: OpenSSH's own list (they would reach
// a shell through ProxyCommand's %h) plus ssh_config pattern characters and the
// ProxyJump separator, which would make a lookup mean something else.
const badHostChars = "'`\"$\\;&<>|(){}[]*?!,/@="

// badUserChars are refused in a user name (OpenSSH's valid_ruser list).
const badUserChars = "'`\";&<>|(){}"

// parseTarget splits alias, host, user@host, user@host:port, [v6]:port,
// user@[v6]:port and a bare IPv6 address, with an optional ssh:// prefix (as
// ProxyJump allows). It refuses anything that could be read as an option by
// `ssh -G` or as shell syntax by a ProxyCommand.
func parseTarget(s string) (target, error) {
	var t target
	if s == "" {
		return t, errors.New("empty host")
	}
	if err := checkChars("host", s); err != nil {
		return t, err
	}
	rest := strings.TrimPrefix(s, "ssh://")
	if rest != s {
		rest = strings.TrimSuffix(rest, "/")
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		t.User, rest = rest[:i], rest[i+1:]
		if t.User == "" {
			return t, fmt.Errorf("host %q: empty user before '@'", s)
		}
		if strings.HasPrefix(t.User, "-") {
			return t, fmt.Errorf("host %q: user must not start with '-'", s)
		}
		if err := checkUser(t.User); err != nil {
			return t, fmt.Errorf("host %q: %w", s, err)
		}
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return t, fmt.Errorf("host %q: %w", s, err)
	}
	if err := checkHostName(host); err != nil {
		return t, fmt.Errorf("host %q: %w", s, err)
	}
	t.Host, t.Port = host, port
	return t, nil
}

// checkUser applies the rest of OpenSSH's valid_ruser to a user name (no
// leading '-', no whitespace: checkChars): none of badUserChars, and no
// backslash at the end, which would escape what follows the name in a
// ProxyCommand. It also refuses ':' and '/', which no system allows in a
// user name and which would make "ssh://a:b/@h" read two ways.
func checkUser(u string) error {
	if strings.ContainsAny(u, badUserChars) {
		return fmt.Errorf("user contains one of %s", badUserChars)
	}
	if strings.ContainsAny(u, ":/") {
		return errors.New("user contains ':' or '/'")
	}
	if strings.HasSuffix(u, `\`) {
		return errors.New("user ends in a backslash")
	}
	return nil
}

// splitHostPort accepts host, host:port, [host]:port, [host] and a bare IPv6
// address (more than one colon, no brackets: no port).
func splitHostPort(s string) (string, int, error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, errors.New("missing ']'")
		}
		host, after := s[1:end], s[end+1:]
		if strings.Contains(host, ":") {
			if _, err := netip.ParseAddr(host); err != nil {
				return "", 0, fmt.Errorf("[%s] is not an IPv6 address", host)
			}
		}
		if after == "" {
			return host, 0, nil
		}
		if !strings.HasPrefix(after, ":") {
			return "", 0, fmt.Errorf("unexpected %q after ']'", after)
		}
		p, err := parsePort(after[1:])
		return host, p, err
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, 0, nil
	case 1:
		i := strings.IndexByte(s, ':')
		p, err := parsePort(s[i+1:])
		return s[:i], p, err
	default:
		return s, 0, nil // bare IPv6 literal
	}
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 || s[0] == '+' || s[0] == '0' {
		return 0, fmt.Errorf("bad port %q (want 1-65535)", s)
	}
	return p, nil
}

// checkHostName validates a host name (or alias) on its own.
func checkHostName(host string) error {
	switch {
	case host == "":
		return errors.New("empty host name")
	case strings.HasPrefix(host, "-"):
		return errors.New("host name must not start with '-'")
	case strings.ContainsAny(host, badHostChars):
		return fmt.Errorf("host name contains one of %s", badHostChars)
	}
	return checkChars("host name", host)
}

// checkChars refuses whitespace, control characters (NUL included) and
// invalid UTF-8: none belongs in a host, a user or a port, and each would be a
// way to smuggle a second word into a command line or a config line.
func checkChars(what, s string) error {
	if len(s) > 1024 {
		return fmt.Errorf("%s too long (%d bytes)", what, len(s))
	}
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("%s %q must not start with '-'", what, s)
	}
	for i, r := range s {
		switch {
		case r == 0:
			return fmt.Errorf("%s contains NUL at byte %d", what, i)
		case unicode.IsSpace(r) && r >= 0x20 && r != 0x85:
			return fmt.Errorf("%s %q contains a space", what, s)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("%s %q contains a control character at byte %d", what, s, i)
		case r == 0xfffd && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Errorf("%s contains invalid UTF-8 at byte %d", what, i)
		case r == 0x2028 || r == 0x2029 || r == 0x85:
			return fmt.Errorf("%s contains a line separator at byte %d", what, i)
		}
	}
	return nil
}
