package sshdial

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

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

// unknownHostError is verify's answer for a host known_hosts has no key for.
type unknownHostError struct {
	certErr error // why a certificate the server offered was not taken, or nil
}

func (e *unknownHostError) Error() string {
	if e.certErr != nil {
		return "host key not in known_hosts; " + e.certErr.Error()
	}
	return "host key not in known_hosts"
}

func isUnknownHost(err error) bool {
	var u *unknownHostError
	return errors.As(err, &u)
}

// hostKeyCheck verifies one connection's host key against known_hosts and,
// under accept-new, records a new one. It never accepts a changed key.
type hostKeyCheck struct {
	h     *sshconfig.Host
	files []string      // known_hosts files to read, user ones first
	db    *knownHostsDB // as read when the check was set up

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

func newHostKeyCheck(h *sshconfig.Host) (*hostKeyCheck, error) {
	c := &hostKeyCheck{h: h}
	c.files = append(append([]string(nil), h.UserKnownHostsFiles...), h.GlobalKnownHostsFiles...)
	db, err := readKnownHosts(c.files)
	if err != nil {
		return nil, err
	}
	c.db = db
	return c, nil
}

// known returns the plain keys known_hosts holds for the host.
func (c *hostKeyCheck) known() []knownhosts.KnownKey {
	return c.db.hostKeys(knownHostsName(c.h))
}

// algorithms are the host key algorithms to offer: those of the known keys,
// so that a server holding several keys shows the one we know (otherwise an
// ed25519-known host looks "changed" when the server prefers ECDSA), after
// every certificate algorithm when a @cert-authority line covers the host
// (OpenSSH prefers certificates then too). nil (library default, which
// offers certificates first) when no plain key is known.
func (c *hostKeyCheck) algorithms() []string {
	known := c.known()
	if len(known) == 0 {
		return nil
	}
	var algos []string
	if len(c.db.authorities(knownHostsName(c.h))) > 0 {
		for _, a := range ssh.SupportedAlgorithms().HostKeys {
			if strings.Contains(a, "-cert-") {
				algos = append(algos, a)
			}
		}
	}
	for _, k := range known {
		for _, a := range algorithmsForKeyType(k.Key.Type()) {
			if !slices.Contains(algos, a) {
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

// callback is the ssh.HostKeyCallback. It looks the key up under the Host's
// own name (HostKeyAlias or hostname:port), whatever address the transport
// went through (a jump host, a ProxyCommand).
func (c *hostKeyCheck) callback(_ string, _ net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(plainKey(key))
	c.set(fp, "")
	err := c.verify(c.db, key)
	if err == nil {
		c.set(fp, HostKeyKnown)
		return nil
	}
	if !isUnknownHost(err) {
		return err
	}
	if c.h.StrictHostKeyChecking == sshconfig.StrictYes {
		return c.unknownRefused(plainKey(key), fp, err.(*unknownHostError).certErr)
	}
	status, err := c.record(key)
	if err != nil {
		return err
	}
	c.set(fp, status)
	return nil
}

// verify checks key against db as OpenSSH does: a revoked key (or CA) is
// refused; a certificate signed by a @cert-authority of the host and valid
// for its name is known; any other certificate counts as its plain key; a
// plain key is known when listed for the host, changed when the host has
// other keys, else unknown (*unknownHostError).
func (c *hostKeyCheck) verify(db *knownHostsDB, key ssh.PublicKey) error {
	name := knownHostsName(c.h)
	plain := plainKey(key)
	fp := ssh.FingerprintSHA256(plain)
	cert, isCert := key.(*ssh.Certificate)
	if r := db.revoked(plain); r != nil {
		return c.revokedErr(plain, fp, "host key", r)
	}
	var certErr error
	if isCert {
		if r := db.revoked(cert.SignatureKey); r != nil {
			return c.revokedErr(cert.SignatureKey, ssh.FingerprintSHA256(cert.SignatureKey), "certificate authority of the host key", r)
		}
		checker := ssh.CertChecker{
			IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
				for _, ca := range db.authorities(name) {
					if sameKey(ca.Key, auth) {
						return true
					}
				}
				return false
			},
			IsRevoked: func(*ssh.Certificate) bool { return false }, // checked above
		}
		certErr = checker.CheckHostKey(knownHostsAddr(c.h), dummyAddr, cert)
		if certErr == nil {
			return nil
		}
		// No CA vouches for it here: OpenSSH then retries with the plain key.
		certErr = fmt.Errorf("its certificate was not accepted (%w)", certErr)
	}
	want := db.hostKeys(name)
	for _, k := range want {
		if sameKey(k.Key, plain) {
			return nil
		}
	}
	if len(want) > 0 {
		return c.changed(plain, fp, want, certErr)
	}
	return &unknownHostError{certErr: certErr}
}

var dummyAddr = &net.TCPAddr{IP: net.IPv4zero, Port: sshconfig.DefaultPort}

func (c *hostKeyCheck) revokedErr(key ssh.PublicKey, fp, what string, r *knownhosts.KnownKey) error {
	return &HostKeyError{Kind: "revoked", Host: c.h.Key(), Fingerprint: fp,
		msg: fmt.Sprintf("%s %s %s of %s is marked @revoked in %s:%d; refusing to connect",
			what, key.Type(), fp, c.h.Key(), r.Filename, r.Line)}
}

func (c *hostKeyCheck) changed(key ssh.PublicKey, fp string, want []knownhosts.KnownKey, certErr error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "HOST KEY CHANGED for %s: the server offered %s %s, but known_hosts has ",
		c.h.Key(), key.Type(), fp)
	for i, k := range want {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line)
	}
	if certErr != nil {
		fmt.Fprintf(&b, "; %v", certErr)
	}
	name := knownHostsName(c.h)
	fmt.Fprintf(&b, ". Someone could be intercepting the connection, or the host was reinstalled. "+
		"Refusing to connect. If the new key is legitimate, remove the old entry with "+
		"`ssh-keygen -R '%s' -f %s` and connect again (it is then recorded as new).",
		name, want[0].Filename)
	return &HostKeyError{Kind: "changed", Host: c.h.Key(), Fingerprint: fp, Known: want, msg: b.String()}
}

func (c *hostKeyCheck) unknownRefused(key ssh.PublicKey, fp string, certErr error) error {
	file := "~/.ssh/known_hosts"
	if len(c.h.UserKnownHostsFiles) > 0 {
		file = c.h.UserKnownHostsFiles[0]
	}
	scan := "ssh-keyscan "
	if c.h.Port != sshconfig.DefaultPort {
		scan += "-p " + strconv.Itoa(c.h.Port) + " "
	}
	scan += c.h.HostName
	note := ""
	if certErr != nil {
		note = "; " + certErr.Error()
	}
	return &HostKeyError{Kind: "unknown", Host: c.h.Key(), Fingerprint: fp,
		msg: fmt.Sprintf("host key of %s is not in known_hosts and StrictHostKeyChecking is yes "+
			"(the server offered %s %s%s). To trust it, check the fingerprint and add it: "+
			"`%s >> %s`, or set `StrictHostKeyChecking accept-new` for this host in ssh_config.",
			c.h.Key(), key.Type(), fp, note, scan, file)}
}

// recordMu serialises appends to known_hosts files within this process;
// lockKnownHosts does the same across processes.
var recordMu sync.Mutex

// record appends the plain key (never a certificate, which neither we nor
// OpenSSH would match later) to the first user known_hosts file, creating
// the file (0600) and its folder (0700) when missing, hashed when
// HashKnownHosts is on. Under the lock it reads every file again: another
// connection or process may have recorded this host since this check read
// them, and a different key found now is a changed key, never a second entry.
// It returns the status to report: trusted_now, or known when the key was
// recorded meanwhile.
func (c *hostKeyCheck) record(key ssh.PublicKey) (string, error) {
	if len(c.h.UserKnownHostsFiles) == 0 {
		return "", fmt.Errorf("host key of %s is new, but no UserKnownHostsFile is set to record it in", c.h.Key())
	}
	file := c.h.UserKnownHostsFiles[0]
	recordMu.Lock()
	defer recordMu.Unlock()

	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", fmt.Errorf("record host key of %s: %w", c.h.Key(), err)
	}
	f, err := lockKnownHosts(file)
	if err != nil {
		return "", fmt.Errorf("record host key of %s in %s: %w", c.h.Key(), file, err)
	}
	defer f.Close() // releases the lock

	db, err := readKnownHosts(c.files)
	if err != nil {
		return "", fmt.Errorf("record host key of %s: %w", c.h.Key(), err)
	}
	switch err := c.verify(db, key); {
	case err == nil:
		return HostKeyKnown, nil
	case !isUnknownHost(err):
		return "", err
	}

	prefix := ""
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			prefix = "\n"
		}
	}
	name := knownHostsName(c.h)
	if c.h.HashKnownHosts {
		name = knownhosts.HashHostname(name)
	}
	line := prefix + name + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(plainKey(key)))) + "\n"
	if _, err := f.WriteString(line); err != nil {
		return "", fmt.Errorf("record host key of %s in %s: %w", c.h.Key(), file, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("record host key of %s in %s: %w", c.h.Key(), file, err)
	}
	return HostKeyTrustedNow, nil
}

// knownHostsAddr is the host:port a host certificate's principals are
// checked against: HostKeyAlias (the port does not matter) or hostname:port.
func knownHostsAddr(h *sshconfig.Host) string {
	if h.HostKeyAlias != "" {
		return net.JoinHostPort(h.HostKeyAlias, strconv.Itoa(sshconfig.DefaultPort))
	}
	return h.Addr()
}

// knownHostsName is the name known_hosts entries are matched against and
// recorded under, as OpenSSH forms it: HostKeyAlias as given (no port), else
// the lower-cased host name, "[host]:port" when the port is not 22.
func knownHostsName(h *sshconfig.Host) string {
	if h.HostKeyAlias != "" {
		return h.HostKeyAlias
	}
	return knownhosts.Normalize(net.JoinHostPort(strings.ToLower(h.HostName), strconv.Itoa(h.Port)))
}
