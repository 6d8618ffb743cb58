package sessions

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host key statuses reported in DialInfo.HostKeyStatus.
const (
	HostKeyKnown      = "known"       // matched a known_hosts entry
	HostKeyTrustedNow = "trusted_now" // unknown, and recorded (accept-new)
)

// HostKeyError is a refused host key. Kind is "unknown" (StrictHostKeyChecking
// yes), "changed" or "revoked"; Error says what to do about it.
type HostKeyError struct {
	Kind        string
	Host        string // user@hostname:port
	Fingerprint string // SHA256 of the key the server offered
	Known       []knownhosts.KnownKey
	msg         string
}

func (e *HostKeyError) Error() string { return e.msg }

// hostKeyCheck verifies one connection's host key against known_hosts and,
// under accept-new, records a new one. It never accepts a changed key.
type hostKeyCheck struct {
	h     *Host
	files []string            // existing known_hosts files, user ones first
	db    ssh.HostKeyCallback // nil when no file exists yet

	// Set by callback, which runs on the transport's goroutine (again at
	// each re-key), read after the handshake: guarded by mu.
	mu          sync.Mutex
	fingerprint string
	status      string
}

// result is the offered key's fingerprint and its status after the handshake.
func (c *hostKeyCheck) result() (fingerprint, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fingerprint, c.status
}

func (c *hostKeyCheck) set(fingerprint, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fingerprint, c.status = fingerprint, status
}

func newHostKeyCheck(h *Host) (*hostKeyCheck, error) {
	c := &hostKeyCheck{h: h}
	for _, f := range append(append([]string(nil), h.UserKnownHostsFiles...), h.GlobalKnownHostsFiles...) {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			c.files = append(c.files, f)
		}
	}
	if len(c.files) > 0 {
		db, err := knownhosts.New(c.files...)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		c.db = db
	}
	return c, nil
}

// probeKey never matches a real host key; checking it returns every key
// known for a host.
var probeKey = func() ssh.PublicKey {
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// known returns the keys known_hosts holds for the host.
func (c *hostKeyCheck) known() []knownhosts.KnownKey {
	if c.db == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if errors.As(c.db(c.h.knownHostsAddr(), dummyAddr, probeKey), &ke) {
		return ke.Want
	}
	return nil
}

// algorithms are the host key algorithms to offer: those of the known keys,
// so that a server holding several keys shows the one we know (otherwise an
// ed25519-known host looks "changed" when the server prefers ECDSA). nil
// (library default) for an unknown host.
func (c *hostKeyCheck) algorithms() []string {
	var algos []string
	for _, k := range c.known() {
		for _, a := range algorithmsForKeyType(k.Key.Type()) {
			if !contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsForKeyType maps a key type to the signature algorithms a server
// can present it with: an ssh-rsa key is offered as rsa-sha2-512/256.
func algorithmsForKeyType(t string) []string {
	switch t {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	}
	return []string{t}
}

var dummyAddr = &net.TCPAddr{IP: net.IPv4zero, Port: DefaultPort}

// callback is the ssh.HostKeyCallback. It looks the key up under the Host's
// own name (HostKeyAlias or hostname:port), whatever address the transport
// went through (a jump host, a ProxyCommand).
func (c *hostKeyCheck) callback(_ string, _ net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	c.set(fp, "")
	addr := c.h.knownHostsAddr()
	if c.db != nil {
		err := c.db(addr, dummyAddr, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			c.set(fp, HostKeyKnown)
			return nil
		case errors.As(err, &re):
			return &HostKeyError{Kind: "revoked", Host: c.h.Key(), Fingerprint: fp,
				msg: fmt.Sprintf("host key %s %s of %s is marked @revoked in %s:%d; refusing to connect",
					key.Type(), fp, c.h.Key(), re.Revoked.Filename, re.Revoked.Line)}
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return c.changed(key, fp, ke.Want)
		case errors.As(err, &ke):
			// unknown host: below
		default:
			return fmt.Errorf("known_hosts check: %w", err)
		}
	}
	if c.h.StrictHostKeyChecking == StrictYes {
		return c.unknownRefused(key, fp)
	}
	if err := c.record(addr, key); err != nil {
		return err
	}
	c.set(fp, HostKeyTrustedNow)
	return nil
}

func (c *hostKeyCheck) changed(key ssh.PublicKey, fp string, want []knownhosts.KnownKey) error {
	var b strings.Builder
	fmt.Fprintf(&b, "HOST KEY CHANGED for %s: the server offered %s %s, but known_hosts has ",
		c.h.Key(), key.Type(), fp)
	for i, k := range want {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line)
	}
	name := knownhosts.Normalize(c.h.knownHostsAddr())
	fmt.Fprintf(&b, ". Someone could be intercepting the connection, or the host was reinstalled. "+
		"Refusing to connect. If the new key is legitimate, remove the old entry with "+
		"`ssh-keygen -R '%s' -f %s` and connect again (it is then recorded as new).",
		name, want[0].Filename)
	return &HostKeyError{Kind: "changed", Host: c.h.Key(), Fingerprint: fp, Known: want, msg: b.String()}
}

func (c *hostKeyCheck) unknownRefused(key ssh.PublicKey, fp string) error {
	file := "~/.ssh/known_hosts"
	if len(c.h.UserKnownHostsFiles) > 0 {
		file = c.h.UserKnownHostsFiles[0]
	}
	scan := "ssh-keyscan "
	if c.h.Port != DefaultPort {
		scan += "-p " + strconv.Itoa(c.h.Port) + " "
	}
	scan += c.h.HostName
	return &HostKeyError{Kind: "unknown", Host: c.h.Key(), Fingerprint: fp,
		msg: fmt.Sprintf("host key of %s is not in known_hosts and StrictHostKeyChecking is yes "+
			"(the server offered %s %s). To trust it, check the fingerprint and add it: "+
			"`%s >> %s`, or set `StrictHostKeyChecking accept-new` for this host in ssh_config.",
			c.h.Key(), key.Type(), fp, scan, file)}
}

// recordMu serialises appends to known_hosts files within this process, so
// that parallel first connections to one host write one line.
var recordMu sync.Mutex

// record appends key for addr to the first user known_hosts file, creating
// the file (0600) and its folder (0700) when missing.
func (c *hostKeyCheck) record(addr string, key ssh.PublicKey) error {
	if len(c.h.UserKnownHostsFiles) == 0 {
		return fmt.Errorf("host key of %s is new, but no UserKnownHostsFile is set to record it in", c.h.Key())
	}
	file := c.h.UserKnownHostsFiles[0]
	recordMu.Lock()
	defer recordMu.Unlock()

	// Another connection may have recorded it since this one read the files.
	if db, err := knownhosts.New(file); err == nil {
		if db(addr, dummyAddr, key) == nil {
			return nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("record host key of %s: %w", c.h.Key(), err)
	}
	prefix := ""
	if b, err := os.ReadFile(file); err == nil && len(b) > 0 && b[len(b)-1] != '\n' {
		prefix = "\n"
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record host key of %s: %w", c.h.Key(), err)
	}
	line := prefix + knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("record host key of %s in %s: %w", c.h.Key(), file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record host key of %s in %s: %w", c.h.Key(), file, err)
	}
	return nil
}
