package sshdial

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// known_hosts markers (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT").
const (
	markerCA      = "@cert-authority"
	markerRevoked = "@revoked"
)

// knownHostsDB is the content of the known_hosts files, read line by line
// here rather than through x/crypto's knownhosts.New: that callback mixes
// @cert-authority lines into a host's own keys (a CA line then reads as a
// changed key) and refuses a certificate that no CA signed, where OpenSSH
// falls back to the certificate's plain key. Matching follows OpenSSH:
// patterns are matched against "host" or "[host]:port" as a whole.
type knownHostsDB struct {
	entries []knownHostsEntry
}

type knownHostsEntry struct {
	marker   string // "", markerCA or markerRevoked
	patterns string // the host field: patterns, or one |1|salt|hash
	knownhosts.KnownKey
}

// readKnownHosts reads files in order. A missing file (or a folder, a
// device) holds no entry; a line
// OpenSSH would skip (unknown key type, bad base64, unknown marker) is
// skipped too, so that one odd line does not lock every host out.
func readKnownHosts(files []string) (*knownHostsDB, error) {
	db := &knownHostsDB{}
	for _, f := range files {
		st, err := os.Stat(f)
		if errors.Is(err, os.ErrNotExist) || (err == nil && !st.Mode().IsRegular()) {
			continue
		}
		var b []byte
		if err == nil {
			b, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, fmt.Errorf("read known_hosts %s: %w", f, err)
		}
		db.parse(b, f)
	}
	return db, nil
}

func (db *knownHostsDB) parse(b []byte, file string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		e := knownHostsEntry{}
		if line[0] == '@' {
			e.marker, line = cutField(line)
			if e.marker != markerCA && e.marker != markerRevoked {
				continue
			}
		}
		var rest string
		e.patterns, rest = cutField(line)
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
		if err != nil || e.patterns == "" {
			continue
		}
		e.Key, e.Filename, e.Line = key, file, n
		db.entries = append(db.entries, e)
	}
}

// plainKey is the key a certificate certifies, or key itself. Host keys are
// compared and recorded as plain keys, as OpenSSH does.
func plainKey(key ssh.PublicKey) ssh.PublicKey {
	if c, ok := key.(*ssh.Certificate); ok {
		return c.Key
	}
	return key
}

func sameKey(a, b ssh.PublicKey) bool {
	return bytes.Equal(a.Marshal(), b.Marshal())
}

// hostKeys are the plain keys known for name (no CA, no revoked lines). A
// certificate on a plain line (sshjobs wrote those before it knew better)
// stands for its key.
func (db *knownHostsDB) hostKeys(name string) []knownhosts.KnownKey {
	var out []knownhosts.KnownKey
	for _, e := range db.entries {
		if e.marker == "" && matchKnownHost(e.patterns, name) {
			k := e.KnownKey
			k.Key = plainKey(k.Key)
			out = append(out, k)
		}
	}
	return out
}

// authorities are the @cert-authority entries for name.
func (db *knownHostsDB) authorities(name string) []knownhosts.KnownKey {
	var out []knownhosts.KnownKey
	for _, e := range db.entries {
		if e.marker == markerCA && matchKnownHost(e.patterns, name) {
			out = append(out, e.KnownKey)
		}
	}
	return out
}

// revoked returns the @revoked entry for key, if any. Unlike OpenSSH, which
// honours only @revoked lines whose pattern matches the host, a revoked key is
// refused for every host: refusing more is the safe side.
func (db *knownHostsDB) revoked(key ssh.PublicKey) *knownhosts.KnownKey {
	for _, e := range db.entries {
		if e.marker == markerRevoked && sameKey(plainKey(e.Key), key) {
			k := e.KnownKey
			return &k
		}
	}
	return nil
}

// matchKnownHost reports whether a known_hosts host field matches name
// ("host", "[host]:port" or a HostKeyAlias), as OpenSSH's match_hostname
// does: a hashed name, or comma-separated patterns with * and ?, where a
// matching negated pattern (!pat) vetoes the line. Case is ignored.
func matchKnownHost(patterns, name string) bool {
	if strings.HasPrefix(patterns, "|") {
		return matchHashed(patterns, name)
	}
	name = strings.ToLower(name)
	matched := false
	for _, p := range strings.Split(patterns, ",") {
		neg := strings.HasPrefix(p, "!")
		p = strings.ToLower(strings.TrimPrefix(p, "!"))
		if p == "" || !wildcardMatch(p, name) {
			continue
		}
		if neg {
			return false
		}
		matched = true
	}
	return matched
}

// matchHashed matches a HashKnownHosts entry, "|1|base64(salt)|base64(HMAC-SHA1(salt, name))".
func matchHashed(field, name string) bool {
	parts := strings.Split(field, "|")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "1" {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[2])
	want, err2 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return false
	}
	m := hmac.New(sha1.New, salt)
	m.Write([]byte(name))
	return hmac.Equal(m.Sum(nil), want)
}

// wildcardMatch matches s against a pattern of literal bytes, * (any run)
// and ? (any one byte).
func wildcardMatch(pat, s string) bool {
	// Iterative with backtracking to the last *: linear enough for host names.
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(pat) && (pat[i] == '?' || pat[i] == s[j]):
			i++
			j++
		case i < len(pat) && pat[i] == '*':
			star, mark = i, j
			i++
		case star >= 0:
			i = star + 1
			mark++
			j = mark
		default:
			return false
		}
	}
	for i < len(pat) && pat[i] == '*' {
		i++
	}
	return i == len(pat)
}

// cutField splits off line's first field: fields are separated by spaces or
// tabs, as OpenSSH reads them (a tab-separated line must not be skipped: its
// host would then count as unknown, or its revocation be lost).
func cutField(line string) (field, rest string) {
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimLeft(line[i:], " \t")
}
