package sshdial

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"github.com/sshjobs/sshjobs/sessions/sshconfig"
)

func TestEnvSecrets(t *testing.T) {
	env := map[string]string{
		"OVRD_WEB_1_EXAMPLE_PASS":        "pw",
		"OVRD_WEB_1_EXAMPLE_KEY_PASS":    "kp",
		"OVRD_WEB_1_EXAMPLE_SUDO_PASS":   "sp",
		"OVRD_WEB_1_EXAMPLE_ENABLE_PASS": "ep",
		"OVRD_OTHER_PASS":                "",
	}
	e := EnvSecrets{Getenv: func(k string) string { return env[k] }}
	h := &sshconfig.Host{Alias: "web-1.example", SecretAlias: "web-1.example"}
	for kind, want := range map[SecretKind]string{SecretPassword: "pw", SecretPassphrase: "kp", SecretSudo: "sp", SecretEnable: "ep"} {
		v, ok, err := e.Secret(context.Background(), h, kind)
		if err != nil || !ok || v != want {
			t.Errorf("%s: got %q %v %v, want %q", kind, v, ok, err, want)
		}
	}
	if _, ok, _ := e.Secret(context.Background(), &sshconfig.Host{Alias: "other", SecretAlias: "other"}, SecretPassword); ok {
		t.Error("an empty variable must count as unset")
	}
	if _, _, err := e.Secret(context.Background(), h, "bogus"); err == nil {
		t.Error("unknown kind: want an error")
	}
	if _, ok, err := (EnvSecrets{}).Secret(context.Background(), h, SecretPassword); ok || err != nil {
		t.Error("nil Getenv: want nothing")
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"web-1.example": "OVRD_WEB_1_EXAMPLE_", "db": "OVRD_DB_", "::1": "OVRD___1_", "Süd": "OVRD_S_D_"} {
		if got := sshconfig.EnvName(in); got != want {
			t.Errorf("sshconfig.EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

type failingSecrets struct{}

func (failingSecrets) Secret(context.Context, *sshconfig.Host, SecretKind) (string, bool, error) {
	return "", false, errors.New("store locked")
}

func TestSecretChain(t *testing.T) {
	h := &sshconfig.Host{Alias: "h"}
	c := SecretChain{nil, StaticSecrets{SecretSudo: "first"}, StaticSecrets{SecretSudo: "second", SecretPassword: "pw"}}
	if v, ok, _ := c.Secret(context.Background(), h, SecretSudo); !ok || v != "first" {
		t.Errorf("sudo = %q %v, want first", v, ok)
	}
	if v, ok, _ := c.Secret(context.Background(), h, SecretPassword); !ok || v != "pw" {
		t.Errorf("password = %q %v, want pw", v, ok)
	}
	if _, ok, _ := c.Secret(context.Background(), h, SecretEnable); ok {
		t.Error("enable: want none")
	}
	if _, _, err := (SecretChain{failingSecrets{}, StaticSecrets{SecretSudo: "x"}}).Secret(context.Background(), h, SecretSudo); err == nil {
		t.Error("a failing source must stop the chain with its error")
	}
}

// An alias's secrets go only where the alias itself lands: a target that
// overrides its port or user gets none (issue 9, item 3). The seeds'
// verbatim variable name wins over the upper-cased one (issue 11).
func TestEnvSecretsBoundToDestination(t *testing.T) {
	sshtest.TempHome(t)
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte("Host web1\n  HostName 10.9.9.9\n  User deploy\n  Port 22\nHost web-1\n  HostName 10.9.9.8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OVRD_WEB1_PASS": "web1-pw", "OVRD_WEB_1_PASS": "upper-pw", "OVRD_web-1_PASS": "verbatim-pw"}
	getenv := func(k string) string { return env[k] }
	secrets := EnvSecrets{Getenv: getenv}
	for name, noOpenSSH := range sshtest.ResolverPaths(t) {
		t.Run(name, func(t *testing.T) {
			r := &sshconfig.Resolver{ConfigFile: cfg, NoOpenSSH: noOpenSSH, Env: getenv}
			for target, want := range map[string]string{
				"web1":            "web1-pw",
				"deploy@web1":     "web1-pw", // the alias's own user: the same destination
				"web1:22":         "web1-pw",
				"web1:2222":       "",
				"other@web1":      "",
				"other@web1:2222": "",
				"web-1":           "verbatim-pw",
			} {
				h, err := r.Resolve(context.Background(), target)
				if err != nil {
					t.Fatal(err)
				}
				v, _, err := secrets.Secret(context.Background(), h, SecretPassword)
				if err != nil || v != want {
					t.Errorf("%s (%s): password %q, %v; want %q", target, h.Key(), v, err, want)
				}
			}
		})
	}
}
