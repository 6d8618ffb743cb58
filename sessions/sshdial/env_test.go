package sshdial

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// A dial in a context with an Env (a daemon's client's) takes that Env's
// secrets instead of the Dialer's: the client's password logs in, and
// without it the Dialer's wrong one is not tried for that client.
func TestDialUsesContextEnv(t *testing.T) {
	sshtest.NoAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	h.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	d := &Dialer{Secrets: StaticSecrets{SecretPassword: "the process's, wrong"}, Logger: dialLogger(t)}
	ctx := WithEnv(context.Background(), &Env{Secrets: StaticSecrets{SecretPassword: s.Password}})
	c, info, err := d.Dial(ctx, h)
	if err != nil {
		t.Fatalf("with the client's password: %v", err)
	}
	c.Close()
	if info.AuthMethod != AuthPassword {
		t.Errorf("AuthMethod = %q, want password", info.AuthMethod)
	}
	if _, _, err := d.Dial(context.Background(), h); err == nil {
		t.Error("without the Env, the Dialer's wrong password logged in")
	}
	if v, ok, _ := SecretsIn(ctx, d.Secrets).Secret(ctx, h, SecretPassword); !ok || v != s.Password {
		t.Errorf("SecretsIn(ctx) = %q %v, want the Env's", v, ok)
	}
}
