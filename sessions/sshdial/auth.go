package sshdial

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"

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
	// secretAlias is the alias whose OVRD_ secrets this destination gets
	// (Host.SecretAlias): "" when the target overrode its user or port.
	secretAlias string
	// storeTarget names the host to `sshjobs secret set` (the alias, else
	// user@hostname:port).
	storeTarget string

	// For the advice: a password was sent (and refused); keyboard-interactive
	// cannot take the password here (refused at once, or it asked something
	// else).
	passwordSent bool
	kbdNoUse     bool
	// an encrypted key was skipped because no passphrase was known
	passphraseMissing bool
}

func (e *AuthError) Unwrap() error { return e.Cause }

// WantsPassphrase reports whether an encrypted key was skipped for want of
// a passphrase, and the server accepts public keys: a caller that can ask
// a person asks then (before the password: ssh tries keys first).
func (e *AuthError) WantsPassphrase() bool {
	return e.passphraseMissing && (len(e.Allowed) == 0 || slices.Contains(e.Allowed, AuthPublicKey))
}

// WantsPassword reports whether a password would have been tried: the server
// accepts password (or keyboard-interactive that asks only for it) and none
// was sent. A caller that can ask a person (URL elicitation) asks then.
func (e *AuthError) WantsPassword() bool {
	accepts := func(m string) bool { return len(e.Allowed) == 0 || slices.Contains(e.Allowed, m) }
	return !e.passwordSent && (accepts(AuthPassword) || (accepts(AuthKeyboardInteractive) && !e.kbdNoUse))
}

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
	// The advice names only what sshjobs reads: ssh_config, the agent, the
	// OVRD_ variables (EnvSecrets, envOverrides) and the credential store.
	accepts := func(m string) bool { return len(e.Allowed) == 0 || slices.Contains(e.Allowed, m) }
	var fixes []string
	if accepts(AuthPublicKey) {
		fixes = append(fixes, fmt.Sprintf("give a key the server accepts (IdentityFile in ssh_config, %s, a key loaded in ssh-agent, "+
			"or `sshjobs secret set %s --key FILE`)", envHint(e.alias, "KEY"), e.storeTarget))
	}
	if accepts(AuthPassword) || (accepts(AuthKeyboardInteractive) && !e.kbdNoUse) {
		verb := "set"
		if e.passwordSent {
			verb = "check"
		}
		where := envHint(e.secretAlias, "PASS")
		if e.secretAlias == "" && e.alias != "" {
			// web1:2222 or other@web1: the alias's password is not sent here.
			where = fmt.Sprintf("%s, which applies only when the host is named as %s alone", envHint(e.alias, "PASS"), e.alias)
		}
		fixes = append(fixes, fmt.Sprintf("%s the password in %s (sshjobs' environment) or with `sshjobs secret set %s`", verb, where, e.storeTarget))
	}
	if len(fixes) > 0 {
		b.WriteString("; to log in, " + strings.Join(fixes, ", or "))
	}
	return b.String()
}

// StoreTarget names h as `sshjobs secret set` takes it: the alias whose
// secrets it gets, else user@hostname:port.
func StoreTarget(h *sshconfig.Host) string {
	if h.SecretAlias != "" {
		return h.SecretAlias
	}
	return h.User + "@" + h.Addr()
}

// envHint names the OVRD_ variable with suffix that EnvSecrets or the
// resolver reads for alias.
func envHint(alias, suffix string) string {
	if alias == "" {
		return "OVRD_{ALIAS}_" + suffix
	}
	return sshconfig.EnvName(alias) + suffix
}

// errNoSecret makes x/crypto skip a method whose secret is unknown without
// sending anything to the server; errUnanswerable ends a keyboard-interactive
// exchange that asks something other than a password. When the last method
// ends so, x/crypto returns that error: it is an auth failure too.
var (
	errNoSecret     = errors.New("no secret known")
	errUnanswerable = errors.New("keyboard-interactive: the server asked a question sshjobs cannot answer")
)

// x/crypto's wording (v0.58.0) of the ways authentication ends, pinned in this
// one place because it exports no error values for them. failure compares
// them lower-cased. TestAuthFailureServerBehaviours has a case per server
// behaviour, so an upgrade that rewords one fails there; failure's fallback
// (any error once authentication has begun) still reports it as an AuthError.
var xcryptoAuthFailures = []string{
	// No method left among those the server accepts:
	// "ssh: unable to authenticate, attempted methods [...], no supported methods remain".
	"ssh: unable to authenticate",
	// The server answered keyboard-interactive with USERAUTH_FAILURE (51)
	// instead of a question (INFO_REQUEST, 60): sshd without PAM, where
	// keyboard-interactive has no device behind it.
	"ssh: unexpected message type 51 (expected 60)",
	// The server hung up after its MaxAuthTries: sshd sends "Too many
	// authentication failures", x/crypto's server "too many authentication
	// failures", each in `ssh: disconnect, reason 2: "..."`.
	xTooManyFailures,
	// x/crypto's own bound on attempts in one handshake.
	"ssh: too many authentication attempts",
	// No signature algorithm in common for any key offered.
	"ssh: no common public key signature algorithm",
}

const xTooManyFailures = "too many authentication failures"

// authRun is one connection attempt's authentication: it builds the methods
// lazily (a secret is only looked up if the server asks for that method) and
// remembers what happened for DialInfo and for the failure message.
type authRun struct {
	ctx     context.Context
	h       *sshconfig.Host
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
	started   bool   // the server has answered a first auth request
	kbdAsked  bool   // keyboard-interactive got a question
	kbdNoUse  bool   // keyboard-interactive cannot take the password
	pwSent    bool   // the password auth method sent the password
	noPass    bool   // an encrypted key was skipped: no passphrase known
	noAgent   string // why the agent gave no key, for "no usable key"
}

func newAuthRun(ctx context.Context, h *sshconfig.Host, secrets Secrets, logger *slog.Logger) *authRun {
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
	// It runs after each attempt (the first being "none"), so it also marks
	// the start of authentication, and notes a keyboard-interactive attempt
	// that the server refused before asking anything (our challenge callback
	// never ran then).
	cfg.AuthCallback = func(c *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
		a.mu.Lock()
		a.started = true
		if len(c.AllowedMethods) > 0 {
			a.allowed = c.AllowedMethods
		}
		refused := slices.Contains(c.TriedMethods, AuthKeyboardInteractive) && !a.kbdAsked
		a.mu.Unlock()
		if refused {
			a.try(AuthKeyboardInteractive, "the server refused it without asking anything")
			a.mu.Lock()
			a.kbdNoUse = true
			a.mu.Unlock()
		}
		return nil, nil
	}
}

// failure turns the transport's error into an AuthError when authentication
// is what failed: one of x/crypto's pinned failures, one of ours, or any
// other error once the server has begun answering auth requests (timeouts
// and host key errors are sorted out before). The user then always gets
// what was tried, what the server accepts and what to do, never x/crypto's
// wording alone (it stays in Cause).
func (a *authRun) failure(err error) error {
	msg := strings.ToLower(err.Error())
	pinned := errors.Is(err, errNoSecret) || errors.Is(err, errUnanswerable)
	for _, s := range xcryptoAuthFailures {
		pinned = pinned || strings.Contains(msg, strings.ToLower(s))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !pinned && !a.started {
		return err
	}
	e := &AuthError{Host: a.h.Key(), Allowed: a.allowed, Notes: a.notes, Cause: err, alias: a.h.Alias, secretAlias: a.h.SecretAlias, storeTarget: StoreTarget(a.h),
		passwordSent: a.pwSent, kbdNoUse: a.kbdNoUse, passphraseMissing: a.noPass}
	for _, m := range a.order {
		if d := a.tried[m]; d != "" {
			e.Tried = append(e.Tried, m+" ("+d+")")
		} else {
			e.Tried = append(e.Tried, m)
		}
	}
	switch {
	case strings.Contains(msg, xTooManyFailures):
		e.Notes = append(slices.Clip(e.Notes), "the server hung up after too many failed attempts (its MaxAuthTries): "+
			"offer only the key it accepts (IdentitiesOnly yes and that key's IdentityFile in ssh_config)")
	case errors.Is(err, io.EOF):
		e.Notes = append(slices.Clip(e.Notes), "the server closed the connection during authentication")
	case !pinned:
		e.Notes = append(slices.Clip(e.Notes), "the server ended authentication: "+err.Error())
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
	var missing []string
	for _, p := range a.h.IdentityFiles {
		// The .pub alone is enough when the agent holds the key (a hardware
		// key, or a private file that is not there), as with OpenSSH.
		fk := fileKey{path: p, pub: readPublicKey(p + ".pub")}
		pem, err := os.ReadFile(p)
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist):
			if fk.pub == nil {
				missing = append(missing, sshconfig.DisplayPath(p))
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

	agentKeys := a.agentSigners()
	for _, s := range agentKeys {
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
	// A key saved in the credential store for this host comes before the key
	// files, like `ssh -i`: it was given for this host on purpose.
	if s := a.storedKey(); s != nil {
		add(s, storedKeyName, AuthPublicKey)
	}
	for _, f := range files {
		if f.pub != nil && have[string(f.pub.Marshal())] {
			continue // the agent holds it: no passphrase needed
		}
		if f.bad != nil {
			a.note("key %s unusable: %v", sshconfig.DisplayPath(f.path), f.bad)
			continue
		}
		s := f.signer
		if s == nil {
			s = a.decrypt(f.path, f.pem)
			if s == nil {
				continue
			}
		}
		add(s, sshconfig.DisplayPath(f.path), AuthPublicKey)
	}
	plural := "s"
	if len(names) == 1 {
		plural = ""
	}
	detail := fmt.Sprintf("%d key%s: %s", len(names), plural, strings.Join(names, ", "))
	if len(names) == 0 {
		// Say where keys were looked for: a new user's first failure is
		// usually no agent and none of the default files.
		a.mu.Lock()
		why := a.noAgent
		a.mu.Unlock()
		if why == "" && len(agentKeys) > 0 {
			why = "the ssh-agent holds none of the IdentityFile keys (IdentitiesOnly)"
		}
		detail = "no usable key: " + why
		if len(missing) > 0 {
			detail += ", no key file (looked for " + strings.Join(missing, ", ") + ")"
		}
	}
	a.try(AuthPublicKey, detail)
	a.mu.Lock()
	a.offered = names
	a.mu.Unlock()
	return out, nil
}

// storedKeyName names the credential store's key in notes and "tried".
const storedKeyName = "the stored private key"

// storedKey parses the private_key secret (PEM by value), decrypting it with
// the passphrase secret when needed; nil when there is none or it is unusable
// (with a note; never the key's text).
func (a *authRun) storedKey() ssh.Signer {
	pem, ok, err := a.secret(SecretPrivateKey)
	switch {
	case err != nil:
		a.note("%s: lookup failed: %v", storedKeyName, err)
		return nil
	case !ok:
		return nil
	}
	s, err := ssh.ParsePrivateKey([]byte(pem))
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return s
	case errors.As(err, &missing):
		return a.decrypt(storedKeyName, []byte(pem))
	default:
		// x/crypto's parse errors describe the format, not the content.
		a.note("%s unusable: %v", storedKeyName, err)
		return nil
	}
}

// decrypt opens an encrypted key with the "passphrase" secret, or returns nil
// (with a note) when there is none or it is wrong.
func (a *authRun) decrypt(path string, pem []byte) ssh.Signer {
	pass, ok, err := a.secret(SecretPassphrase)
	if err != nil {
		a.note("key %s: passphrase lookup failed: %v", sshconfig.DisplayPath(path), err)
		return nil
	}
	if !ok {
		a.note("key %s is encrypted and no passphrase is known (skipped; set %s, run `sshjobs secret set %s --kind passphrase`, or load the key into ssh-agent)",
			sshconfig.DisplayPath(path), envHint(a.h.Alias, "KEY_PASS"), StoreTarget(a.h))
		a.mu.Lock()
		a.noPass = true
		a.mu.Unlock()
		return nil
	}
	s, err := ssh.ParsePrivateKeyWithPassphrase(pem, []byte(pass))
	if err != nil {
		if errors.Is(err, x509.IncorrectPasswordError) || strings.Contains(err.Error(), "decryption password incorrect") {
			a.note("key %s: the passphrase is wrong (skipped)", sshconfig.DisplayPath(path))
		} else {
			a.note("key %s unusable: %v", sshconfig.DisplayPath(path), err)
		}
		return nil
	}
	return s
}

// agentSigners lists the agent's keys; an unreachable agent is a debug note,
// as it is for ssh.
func (a *authRun) agentSigners() []ssh.Signer {
	why := func(s string) {
		a.mu.Lock()
		a.noAgent = s
		a.mu.Unlock()
	}
	sock := a.h.IdentityAgent
	if sock == "none" {
		why("no ssh-agent (IdentityAgent none)")
		return nil
	}
	if sock == "" {
		sock = agentSocket(a.ctx)
	}
	if sock == "" {
		why("no ssh-agent (SSH_AUTH_SOCK is not set)")
		return nil
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(a.ctx, "unix", sock)
	if err != nil {
		why("the ssh-agent is unreachable")
		a.logger.Debug("ssh agent unreachable", "host", a.h.Key(), "socket", sock, "err", err)
		return nil
	}
	a.mu.Lock()
	a.agentConn = conn
	a.mu.Unlock()
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		why("the ssh-agent did not list its keys")
		a.logger.Debug("ssh agent list failed", "host", a.h.Key(), "err", err)
		return nil
	}
	if len(signers) == 0 {
		why("the ssh-agent holds no key")
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
	a.mu.Lock()
	a.pwSent = true
	a.mu.Unlock()
	return pw, nil
}

// keyboardInteractive answers a round of questions with the password only
// when every one of them is a hidden password prompt. Anything else (a
// one-time code, a new password, an echoed question) cannot be answered
// unattended: the method ends with nothing sent, and the failure quotes the
// question (prompts are not secret) so the user knows what the server wants.
func (a *authRun) keyboardInteractive(name, instruction string, questions []string, echos []bool) ([]string, error) {
	a.mu.Lock()
	a.kbdAsked = true
	a.mu.Unlock()
	for i, q := range questions {
		if echos[i] || !isPasswordPrompt(q) {
			a.try(AuthKeyboardInteractive, fmt.Sprintf("the server asked %q, a question sshjobs cannot answer: "+
				"it types the password only into a hidden password prompt", questionText(q)))
			a.mu.Lock()
			a.kbdNoUse = true
			a.mu.Unlock()
			return nil, errUnanswerable
		}
	}
	answers := make([]string, len(questions))
	if len(questions) > 0 {
		pw, ok, err := a.secret(SecretPassword)
		switch {
		case err != nil:
			a.try(AuthKeyboardInteractive, "lookup failed: "+err.Error())
			return nil, err
		case !ok:
			a.try(AuthKeyboardInteractive, "no password known")
			return nil, errNoSecret
		}
		for i := range answers {
			answers[i] = pw
		}
	}
	a.try(AuthKeyboardInteractive, "")
	if len(questions) > 0 {
		a.setUsed(AuthKeyboardInteractive)
	}
	return answers, nil
}

// passwordPrompt matches a question that asks for the login password and
// nothing else, as sshd (PAM, passwd), OpenSSH-style and PAM modules word it:
// "Password:", "user@host's password:", "Password for user:",
// "(user@host) Password:", "Enter password:". A qualifier such as "New",
// "Current" or "LDAP" does not match: the first two are a password change,
// the last may be another secret than the one we hold.
var passwordPrompt = regexp.MustCompile(`(?i)^(\([^()]*\)\s*)?((enter|type)\s+(your\s+)?)?(\S+'s\s+)?password(\s+for\s+[^:]+)?\s*:?$`)

func isPasswordPrompt(q string) bool {
	return passwordPrompt.MatchString(strings.TrimSpace(q))
}

// questionText is a server's question as quoted in an error: trimmed, and
// cut short, since the server chooses its length.
func questionText(q string) string {
	q = strings.TrimSpace(q)
	if r := []rune(q); len(r) > 100 {
		q = string(r[:100]) + "..."
	}
	return q
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
