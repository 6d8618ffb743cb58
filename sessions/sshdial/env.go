package sshdial

import (
	"context"
	"os"

	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

// Env is what a dial would otherwise take from the process: the secrets, the
// ssh-agent and the environment of a ProxyCommand. A process that dials for
// others (the daemon, for each client with its own environment) puts one in
// the context of the work done for that client (WithEnv); without one, a dial
// uses the Dialer's Secrets and the process's environment.
type Env struct {
	// Secrets replaces the Dialer's Secrets.
	Secrets Secrets
	// AgentSocket is the ssh-agent's socket ($SSH_AUTH_SOCK) for a
	// destination with no IdentityAgent; "" means none.
	AgentSocket string
	// Environ is the environment of a ProxyCommand; its secrets are dropped
	// (sshconfig.WithoutSecrets) as ChildEnv drops the process's.
	Environ []string
}

type ctxEnvKey struct{}

// WithEnv returns a context whose dials and secret lookups use env.
func WithEnv(ctx context.Context, env *Env) context.Context {
	if env == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxEnvKey{}, env)
}

// envOf is the Env ctx holds, or nil.
func envOf(ctx context.Context) *Env {
	env, _ := ctx.Value(ctxEnvKey{}).(*Env)
	return env
}

// SecretsIn is the Secrets of the Env ctx holds, else base: what a lookup
// made for work in ctx (a sudo prompt's answer) asks.
func SecretsIn(ctx context.Context, base Secrets) Secrets {
	if env := envOf(ctx); env != nil {
		return env.Secrets
	}
	return base
}

// agentSocket is $SSH_AUTH_SOCK of the Env ctx holds, else the process's.
func agentSocket(ctx context.Context) string {
	if env := envOf(ctx); env != nil {
		return env.AgentSocket
	}
	return os.Getenv("SSH_AUTH_SOCK")
}

// childEnv is the environment of a program a dial in ctx starts.
func childEnv(ctx context.Context) []string {
	if env := envOf(ctx); env != nil && env.Environ != nil {
		return sshconfig.WithoutSecrets(env.Environ)
	}
	return sshconfig.ChildEnv()
}
