package sshdial

import (
	"context"
	"fmt"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// SecretKind names a secret (docs/TOOLS.md, "Secrets").
type SecretKind string

const (
	SecretPassword   SecretKind = "password"    // login password (password and keyboard-interactive auth)
	SecretPrivateKey SecretKind = "private_key" // a private key in PEM, by value (the credential store only)
	SecretPassphrase SecretKind = "passphrase"  // passphrase of an encrypted private key
	SecretSudo       SecretKind = "sudo"        // answered to a sudo prompt
	SecretEnable     SecretKind = "enable"      // a network device's enable secret
)

// Secrets supplies secrets for a host. Implementations must never log values.
type Secrets interface {
	// Secret returns the secret of kind for h, or ok=false when none is known.
	Secret(ctx context.Context, h *sshconfig.Host, kind SecretKind) (value string, ok bool, err error)
}

// SecretChain asks each source in order; the first that knows wins. An error
// from a source stops the search: a broken credential store must be reported,
// not silently skipped in favour of a weaker source.
type SecretChain []Secrets

// Secret implements Secrets.
func (c SecretChain) Secret(ctx context.Context, h *sshconfig.Host, kind SecretKind) (string, bool, error) {
	for _, s := range c {
		if s == nil {
			continue
		}
		v, ok, err := s.Secret(ctx, h, kind)
		if err != nil {
			return "", false, err
		}
		if ok {
			return v, true, nil
		}
	}
	return "", false, nil
}

// EnvSecrets reads the per-alias environment overrides of docs/TOOLS.md:
//
//	OVRD_{ALIAS}_PASS         password
//	OVRD_{ALIAS}_KEY_PASS     passphrase (of OVRD_{ALIAS}_KEY or any IdentityFile)
//	OVRD_{ALIAS}_SUDO_PASS    sudo
//	OVRD_{ALIAS}_ENABLE_PASS  enable
//
// ALIAS is the host part of the target as the caller named it: first verbatim
// (OVRD_web-1_PASS, as the seeds read it), then upper-cased with every other
// character than A-Z and 0-9 turned into '_' (OVRD_WEB_1_PASS, see envName).
// The upper-cased name is shared by web-1, web_1 and web.1: give the verbatim
// name where such aliases lead to different hosts. The secrets are given only
// to the destination the alias itself resolves to (Host.SecretAlias): a
// target that changes its user or port gets none.
// The resolution overrides (_HOST, _PORT, _USER, _KEY) are applied by
// Resolver when its Env is set. An empty variable counts as unset.
type EnvSecrets struct {
	Getenv func(string) string // os.Getenv in the server
}

var envSecretSuffix = map[SecretKind]string{
	SecretPassword:   "PASS",
	SecretPassphrase: "KEY_PASS",
	SecretSudo:       "SUDO_PASS",
	SecretEnable:     "ENABLE_PASS",
}

// Secret implements Secrets.
func (e EnvSecrets) Secret(_ context.Context, h *sshconfig.Host, kind SecretKind) (string, bool, error) {
	if kind == SecretPrivateKey {
		return "", false, nil // OVRD_{ALIAS}_KEY names a file: the resolver adds it to IdentityFiles
	}
	suffix, ok := envSecretSuffix[kind]
	if !ok {
		return "", false, fmt.Errorf("secret: unknown kind %q", kind)
	}
	if e.Getenv == nil || h == nil || h.SecretAlias == "" {
		return "", false, nil
	}
	v, _ := sshconfig.LookupEnv(e.Getenv, h.SecretAlias, suffix)
	return v, v != "", nil
}

// StaticSecrets is a fixed set of secrets, e.g. the password and passphrase
// given as parameters of a future ssh_connect (docs/TOOLS.md, "Not yet").
type StaticSecrets map[SecretKind]string

// Secret implements Secrets.
func (s StaticSecrets) Secret(_ context.Context, _ *sshconfig.Host, kind SecretKind) (string, bool, error) {
	v, ok := s[kind]
	return v, ok && v != "", nil
}

type ctxSecretsKey struct{}

type ctxSecrets struct {
	hostKey string
	s       Secrets
}

// WithSecrets returns a context whose dials to the destination hostKey
// (Host.Key) also ask s, after the Dialer's own Secrets: the way one call's
// secrets (ssh_connect's password parameter) reach the dial it causes without
// becoming every dial's. ProxyJump hops on the way do not get them.
func WithSecrets(ctx context.Context, hostKey string, s Secrets) context.Context {
	return context.WithValue(ctx, ctxSecretsKey{}, ctxSecrets{hostKey, s})
}

// secretsFor is the Dialer's Secrets followed by those ctx holds for h.
func secretsFor(ctx context.Context, h *sshconfig.Host, base Secrets) Secrets {
	extra, ok := ctx.Value(ctxSecretsKey{}).(ctxSecrets)
	if !ok || extra.s == nil || h.Key() != extra.hostKey {
		return base
	}
	return SecretChain{base, extra.s}
}
