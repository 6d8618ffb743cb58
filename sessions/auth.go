package sessions

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Auth methods reported in DialInfo.AuthMethod.
const (
	AuthPublicKey           = "publickey"
	AuthAgent               = "agent"
	AuthPassword            = "password"
	AuthKeyboardInteractive = "keyboard-interactive"
)

// AuthError is an authentication failure; Error says what was tried, what the
// server accepts, and what to do next.
type AuthError struct {
	Host    string   // user@hostname:port
	Tried   []string // what was tried, e.g. "publickey (2 keys: ...)"
	Allowed []string // methods the server accepts
	Notes   []string // keys skipped and why
	Cause   error    // the transport's error
	alias   string
}

func (e *AuthError) Unwrap() error { return e.Cause }

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auth failed for %s: ", e.Host)
	if len(e.Tried) == 0 {
		b.WriteString("no method could be tried")
	} else {
		b.WriteString("tried " + strings.Join(e.Tried, ", "))
	}
	if len(e.Allowed) > 0 {
		b.WriteString("; server accepts " + strings.Join(e.Allowed, ","))
	}
	for _, n := range e.Notes {
		b.WriteString("; " + n)
	}
	accepts := func(m string) bool { return len(e.Allowed) == 0 || contains(e.Allowed, m) }
	var fixes []string
	if accepts(AuthPassword) || accepts(AuthKeyboardInteractive) {
		fixes = append(fixes, fmt.Sprintf("set a password with `sshjobs secret set %s`, %sPASS, or ssh_connect password=...",
			e.alias, envName(e.alias)))
	}
	if accepts(AuthPublicKey) {
		fixes = append(fixes, fmt.Sprintf("add a key the server accepts (IdentityFile in ssh_config, %sKEY, ssh_connect private_key_path=...)",
			envName(e.alias)))
	}
	if len(fixes) > 0 {
		b.WriteString("; " + strings.Join(fixes, ", or "))
	}
	return b.String()
}

// errNoSecret makes x/crypto skip a method whose secret is unknown without
// sending anything to the server; errUnanswerable ends a keyboard-interactive
// exchange that asks something other than a password. When the last method
// ends so, x/crypto returns that error: it is an auth failure too.
var (
	errNoSecret     = errors.New("no secret known")
	errUnanswerable = errors.New("keyboard-interactive question cannot be answered unattended")
)

// authRun is one connection attempt's authentication: it builds the methods
// lazily (a secret is only looked up if the server asks for that method) and
// remembers what happened for DialInfo and for the failure message.
type authRun struct {
	ctx     context.Context
	h       *Host
	secrets Secrets
	logger  *slog.Logger

	mu        sync.Mutex
	agentConn net.Conn
	offered   []string // keys offered, for the failure message
	tried     map[string]string
	order     []string
	allowed   []string
	notes     []string
	used      string // method (or "agent") of the last signature or secret sent
}

func newAuthRun(ctx context.Context, h *Host, secrets Secrets, logger *slog.Logger) *authRun {
	return &authRun{ctx: ctx, h: h, secrets: secrets, logger: logger, tried: map[string]string{}}
}

// close releases the agent connection (it is only needed during the handshake).
func (a *authRun) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.agentConn != nil {
		a.agentConn.Close()
		a.agentConn = nil
	}
}

func (a *authRun) note(format string, args ...any) {
	a.mu.Lock()
	a.notes = append(a.notes, fmt.Sprintf(format, args...))
	a.mu.Unlock()
}

func (a *authRun) try(method, detail string) {
	a.mu.Lock()
	if _, ok := a.tried[method]; !ok {
		a.order = append(a.order, method)
	}
	a.tried[method] = detail
	a.mu.Unlock()
}

// usedMethod is the method that logged in ("" if none was needed).
func (a *authRun) usedMethod() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used
}

func (a *authRun) setUsed(m string) {
	a.mu.Lock()
	a.used = m
	a.mu.Unlock()
}

// config fills the auth part of a ClientConfig, in OpenSSH's order: public
// keys (agent, then key files), then password, then keyboard-interactive.
// Password comes before keyboard-interactive (OpenSSH tries them the other
// way round) because it is one exchange that cannot stall on an unexpected
// question, and both use the same secret.
//
// None is wrapped in ssh.RetryableAuthMethod: every secret here is fixed, so a
// retry can only send the same wrong answer again and spend the server's
// MaxAuthTries (after which sshd disconnects before the next method).
func (a *authRun) config(cfg *ssh.ClientConfig) {
	cfg.Auth = []ssh.AuthMethod{
		ssh.PublicKeysCallback(a.signers),
		ssh.PasswordCallback(a.password),
		ssh.KeyboardInteractive(a.keyboardInteractive),
	}
	// The callback only watches: it records what the server accepts, and
	// lets x/crypto pick the next method from cfg.Auth.
	cfg.AuthCallback = func(c *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
		a.mu.Lock()
		if len(c.AllowedMethods) > 0 {
			a.allowed = c.AllowedMethods
		}
		a.mu.Unlock()
		return nil, nil
	}
}

// failure turns the transport's error into an AuthError when authentication
// is what failed.
func (a *authRun) failure(err error) error {
	msg := err.Error()
	if !errors.Is(err, errNoSecret) && !errors.Is(err, errUnanswerable) &&
		!strings.Contains(msg, "unable to authenticate") &&
		!strings.Contains(msg, "no supported methods remain") &&
		!strings.Contains(msg, "Too many authentication failures") &&
		!strings.Contains(msg, "too many authentication attempts") {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := &AuthError{Host: a.h.Key(), Allowed: a.allowed, Notes: a.notes, Cause: err, alias: a.h.Alias}
	for _, m := range a.order {
		if d := a.tried[m]; d != "" {
			e.Tried = append(e.Tried, m+" ("+d+")")
		} else {
			e.Tried = append(e.Tried, m)
		}
	}
	return e
}

// signers gathers the keys to offer: the agent's (all of them, or with
// IdentitiesOnly only those matching an IdentityFile), then the key files not
// already in the agent. Missing files are skipped quietly (the defaults
// usually do not all exist); an encrypted key without a known passphrase is
// skipped with a note.
func (a *authRun) signers() ([]ssh.Signer, error) {
	type fileKey struct {
		path   string
		pub    ssh.PublicKey // nil if unknown before decrypting
		signer ssh.Signer    // nil if encrypted or unusable
		pem    []byte
		bad    error // why the file itself cannot sign (its agent copy still can)
	}
	var files []fileKey
	for _, p := range a.h.IdentityFiles {
		// The .pub alone is enough when the agent holds the key (a hardware
		// key, or a private file that is not there), as with OpenSSH.
		fk := fileKey{path: p, pub: readPublicKey(p + ".pub")}
		pem, err := os.ReadFile(p)
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist):
			if fk.pub == nil {
				continue // the defaults usually do not all exist
			}
			fk.bad = errors.New("no private key file")
		case err != nil:
			fk.bad = err
		default:
			fk.pem = pem
			s, err := ssh.ParsePrivateKey(pem)
			var missing *ssh.PassphraseMissingError
			switch {
			case err == nil:
				fk.signer, fk.pub = s, s.PublicKey()
			case errors.As(err, &missing):
				if missing.PublicKey != nil {
					fk.pub = missing.PublicKey
				}
			default:
				fk.bad = err
			}
		}
		files = append(files, fk)
	}

	var out []ssh.Signer
	var names []string
	have := map[string]bool{}
	add := func(s ssh.Signer, name, method string) {
		k := string(s.PublicKey().Marshal())
		if have[k] {
			return
		}
		have[k] = true
		out = append(out, trackSigner(s, func() { a.setUsed(method) }))
		names = append(names, name)
	}

	for _, s := range a.agentSigners() {
		if a.h.IdentitiesOnly {
			match := false
			for _, f := range files {
				if f.pub != nil && string(f.pub.Marshal()) == string(s.PublicKey().Marshal()) {
					match = true
				}
			}
			if !match {
				continue
			}
		}
		add(s, "agent "+s.PublicKey().Type(), AuthAgent)
	}
	for _, f := range files {
		if f.pub != nil && have[string(f.pub.Marshal())] {
			continue // the agent holds it: no passphrase needed
		}
		if f.bad != nil {
			a.note("key %s unusable: %v", displayPath(f.path), f.bad)
			continue
		}
		s := f.signer
		if s == nil {
			s = a.decrypt(f.path, f.pem)
			if s == nil {
				continue
			}
		}
		add(s, displayPath(f.path), AuthPublicKey)
	}
	plural := "s"
	if len(names) == 1 {
		plural = ""
	}
	detail := fmt.Sprintf("%d key%s: %s", len(names), plural, strings.Join(names, ", "))
	if len(names) == 0 {
		detail = "no usable key"
	}
	a.try(AuthPublicKey, detail)
	a.mu.Lock()
	a.offered = names
	a.mu.Unlock()
	return out, nil
}

// decrypt opens an encrypted key with the "passphrase" secret, or returns nil
// (with a note) when there is none or it is wrong.
func (a *authRun) decrypt(path string, pem []byte) ssh.Signer {
	pass, ok, err := a.secret(SecretPassphrase)
	if err != nil {
		a.note("key %s: passphrase lookup failed: %v", displayPath(path), err)
		return nil
	}
	if !ok {
		a.note("key %s is encrypted and no passphrase is known (skipped; set %sKEY_PASS or ssh_connect passphrase=...)",
			displayPath(path), envName(a.h.Alias))
		return nil
	}
	s, err := ssh.ParsePrivateKeyWithPassphrase(pem, []byte(pass))
	if err != nil {
		if errors.Is(err, x509.IncorrectPasswordError) || strings.Contains(err.Error(), "decryption password incorrect") {
			a.note("key %s: the passphrase is wrong (skipped)", displayPath(path))
		} else {
			a.note("key %s unusable: %v", displayPath(path), err)
		}
		return nil
	}
	return s
}

// agentSigners lists the agent's keys; an unreachable agent is a debug note,
// as it is for ssh.
func (a *authRun) agentSigners() []ssh.Signer {
	sock := a.h.IdentityAgent
	if sock == "none" {
		return nil
	}
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock == "" {
		return nil
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(a.ctx, "unix", sock)
	if err != nil {
		a.logger.Debug("ssh agent unreachable", "host", a.h.Key(), "socket", sock, "err", err)
		return nil
	}
	a.mu.Lock()
	a.agentConn = conn
	a.mu.Unlock()
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		a.logger.Debug("ssh agent list failed", "host", a.h.Key(), "err", err)
		return nil
	}
	return signers
}

func (a *authRun) secret(kind SecretKind) (string, bool, error) {
	if a.secrets == nil {
		return "", false, nil
	}
	return a.secrets.Secret(a.ctx, a.h, kind)
}

func (a *authRun) password() (string, error) {
	pw, ok, err := a.secret(SecretPassword)
	switch {
	case err != nil:
		a.try(AuthPassword, "lookup failed: "+err.Error())
		return "", err
	case !ok:
		a.try(AuthPassword, "none known")
		return "", errNoSecret
	}
	a.try(AuthPassword, "")
	a.setUsed(AuthPassword)
	return pw, nil
}

// keyboardInteractive answers password-like questions (hidden input, or a
// prompt that says password/passcode) with the password. Any other question
// cannot be answered unattended, and ends the method.
func (a *authRun) keyboardInteractive(name, instruction string, questions []string, echos []bool) ([]string, error) {
	answers := make([]string, len(questions))
	for i, q := range questions {
		if echos[i] && !isPasswordPrompt(q) {
			a.try(AuthKeyboardInteractive, fmt.Sprintf("cannot answer %q", strings.TrimSpace(q)))
			return nil, fmt.Errorf("%w: %q", errUnanswerable, q)
		}
		pw, ok, err := a.secret(SecretPassword)
		switch {
		case err != nil:
			a.try(AuthKeyboardInteractive, "lookup failed: "+err.Error())
			return nil, err
		case !ok:
			a.try(AuthKeyboardInteractive, "no password known")
			return nil, errNoSecret
		}
		answers[i] = pw
	}
	a.try(AuthKeyboardInteractive, "")
	if len(questions) > 0 {
		a.setUsed(AuthKeyboardInteractive)
	}
	return answers, nil
}

func isPasswordPrompt(q string) bool {
	q = strings.ToLower(q)
	return strings.Contains(q, "password") || strings.Contains(q, "passcode") || strings.Contains(q, "passphrase")
}

// readPublicKey reads an authorized_keys style .pub file, or returns nil.
func readPublicKey(path string) ssh.PublicKey {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil
	}
	return k
}

// displayPath shortens the home directory to ~ for messages.
func displayPath(p string) string {
	home := homeDir()
	if home != "/" && strings.HasPrefix(p, home+"/") {
		return "~" + p[len(home):]
	}
	return p
}

// trackSigner wraps s so that onSign runs when it signs (x/crypto signs only
// after the server said it would accept the key, so the last one to sign is
// the one that logged in), keeping the algorithm interfaces s implements:
// losing them would make RSA keys sign with SHA-1, which OpenSSH refuses.
func trackSigner(s ssh.Signer, onSign func()) ssh.Signer {
	switch v := s.(type) {
	case ssh.MultiAlgorithmSigner:
		return &trackedMultiSigner{v, onSign}
	case ssh.AlgorithmSigner:
		return &trackedAlgSigner{v, onSign}
	}
	return &trackedSigner{s, onSign}
}

type trackedSigner struct {
	ssh.Signer
	onSign func()
}

func (t *trackedSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	t.onSign()
	return t.Signer.Sign(r, data)
}

type trackedAlgSigner struct {
	ssh.AlgorithmSigner
	onSign func()
}

func (t *trackedAlgSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	t.onSign()
	return t.AlgorithmSigner.Sign(r, data)
}

func (t *trackedAlgSigner) SignWithAlgorithm(r io.Reader, data []byte, algo string) (*ssh.Signature, error) {
	t.onSign()
	return t.AlgorithmSigner.SignWithAlgorithm(r, data, algo)
}

type trackedMultiSigner struct {
	ssh.MultiAlgorithmSigner
	onSign func()
}

func (t *trackedMultiSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	t.onSign()
	return t.MultiAlgorithmSigner.Sign(r, data)
}

func (t *trackedMultiSigner) SignWithAlgorithm(r io.Reader, data []byte, algo string) (*ssh.Signature, error) {
	t.onSign()
	return t.MultiAlgorithmSigner.SignWithAlgorithm(r, data, algo)
}
