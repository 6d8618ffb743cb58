package sessions

import (
	"context"
	"errors"
	"testing"
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
	h := &Host{Alias: "web-1.example"}
	for kind, want := range map[SecretKind]string{SecretPassword: "pw", SecretPassphrase: "kp", SecretSudo: "sp", SecretEnable: "ep"} {
		v, ok, err := e.Secret(context.Background(), h, kind)
		if err != nil || !ok || v != want {
			t.Errorf("%s: got %q %v %v, want %q", kind, v, ok, err, want)
		}
	}
	if _, ok, _ := e.Secret(context.Background(), &Host{Alias: "other"}, SecretPassword); ok {
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
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

type failingSecrets struct{}

func (failingSecrets) Secret(context.Context, *Host, SecretKind) (string, bool, error) {
	return "", false, errors.New("store locked")
}

func TestSecretChain(t *testing.T) {
	h := &Host{Alias: "h"}
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
