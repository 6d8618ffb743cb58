package sshconfig

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// tokens are the values of ssh_config's %-tokens (ssh_config(5) TOKENS) for
// one host. `ssh -G` prints IdentityFile and ProxyCommand unexpanded, so both
// resolution paths expand them here.
type tokens struct {
	home       string // %d
	localUser  string // %u
	host       string // %h: the HostName
	remoteUser string // %r
	port       int    // %p
	alias      string // %n: the name as given
	hostKey    string // %k: HostKeyAlias or the alias
}

// localTokens fills the local half of tokens.
func localTokens() tokens {
	t := tokens{home: homeDir(), localUser: currentUser()}
	return t
}

// homeDir is $HOME (so tests can point it elsewhere), else the passwd entry.
func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return h
	}
	if u, err := user.Current(); err == nil {
		return u.HomeDir
	}
	return "/"
}

// homes are $HOME and the account's home from passwd, when they differ.
func homes() []string {
	hs := []string{homeDir()}
	if u, err := user.Current(); err == nil && u.HomeDir != "" && u.HomeDir != hs[0] {
		hs = append(hs, u.HomeDir)
	}
	return hs
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// expandTilde turns a leading ~ or ~/ into the home directory. ~otheruser is
// left alone: it names somebody else's files, which sshjobs has no reason to
// use.
func expandTilde(p, home string) string {
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}

// expand replaces the %-tokens of s. what names the option in the error an
// unknown token gives (OpenSSH refuses those too).
func (t tokens) expand(what, s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("%s %q: '%%' at the end", what, s)
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'd':
			b.WriteString(t.home)
		case 'u':
			b.WriteString(t.localUser)
		case 'h':
			b.WriteString(t.host)
		case 'r':
			b.WriteString(t.remoteUser)
		case 'p':
			b.WriteString(strconv.Itoa(t.port))
		case 'n':
			b.WriteString(t.alias)
		case 'k':
			b.WriteString(t.hostKey)
		case 'l':
			h, _ := os.Hostname()
			b.WriteString(h)
		case 'L':
			h, _ := os.Hostname()
			h, _, _ = strings.Cut(h, ".")
			b.WriteString(h)
		case 'i':
			b.WriteString(strconv.Itoa(os.Getuid()))
		case 'C':
			h, _ := os.Hostname()
			sum := sha1.Sum([]byte(h + t.host + strconv.Itoa(t.port) + t.remoteUser))
			b.WriteString(hex.EncodeToString(sum[:]))
		default:
			return "", fmt.Errorf("%s %q: unknown token %%%c", what, s, s[i])
		}
	}
	return b.String(), nil
}

// expandPath expands a leading ~ and then %-tokens, in OpenSSH's order.
func (t tokens) expandPath(what, p string) (string, error) {
	return t.expand(what, expandTilde(p, t.home))
}

// DisplayPath shortens the home directory to ~ for messages.
func DisplayPath(p string) string {
	home := homeDir()
	if home != "/" && strings.HasPrefix(p, home+"/") {
		return "~" + p[len(home):]
	}
	return p
}

// ExpandHome turns a leading ~ or ~/ of a local path into the home directory
// (for paths given outside ssh_config, e.g. ssh_connect's private_key_path).
func ExpandHome(p string) string { return expandTilde(p, homeDir()) }
