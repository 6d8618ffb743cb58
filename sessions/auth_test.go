package sessions

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshjobs/sshjobs/internal/sshtest"
	"golang.org/x/crypto/ssh"
)

func TestDialKeyFile(t *testing.T) {
	noAgent(t)
	sshtest.Each(t, sshtest.Options{}, func(t *testing.T, s *sshtest.Server) {
		h := serverHost(t, s)
		c, info, err := (&Dialer{Logger: dialLogger(t)}).Dial(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		want := DialInfo{HostKeyFingerprint: ssh.FingerprintSHA256(s.HostKey), HostKeyStatus: HostKeyKnown, AuthMethod: AuthPublicKey}
		if info != want {
			t.Errorf("info = %+v, want %+v", info, want)
		}
		if out := runCmd(t, c, "echo hello"); out != "hello" {
			t.Errorf("echo: %q", out)
		}
	})
}

// encryptKey writes s's client key encrypted with passphrase (without a .pub
// next to it, so the public half must come from the file itself).
func encryptKey(t *testing.T, s *sshtest.Server, passphrase string) string {
	t.Helper()
	b, err := os.ReadFile(s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(raw, "enc", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_enc")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthEncryptedKey(t *testing.T) {
	noAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	enc := encryptKey(t, s, "correct horse")
	h := serverHost(t, s)
	h.IdentityFiles = []string{enc}
	env := map[string]string{envName(h.Alias) + "KEY_PASS": "correct horse"}
	d := &Dialer{Secrets: EnvSecrets{Getenv: func(k string) string { return env[k] }}, Logger: dialLogger(t)}
	c, info, err := d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.AuthMethod != AuthPublicKey {
		t.Errorf("AuthMethod = %q, want publickey", info.AuthMethod)
	}

	// Without a passphrase the key is skipped, and the failure says why.
	_, _, err = (&Dialer{}).Dial(context.Background(), h)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an AuthError", err)
	}
	for _, want := range []string{"encrypted and no passphrase", enc, "KEY_PASS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	// A wrong one likewise.
	env[envName(h.Alias)+"KEY_PASS"] = "wrong"
	if _, _, err = d.Dial(context.Background(), h); err == nil || !strings.Contains(err.Error(), "passphrase is wrong") {
		t.Errorf("wrong passphrase: err = %v", err)
	}
}

func TestAuthPassword(t *testing.T) {
	noAgent(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	h.IdentityFiles = []string{filepath.Join(t.TempDir(), "missing")}
	d := &Dialer{Secrets: StaticSecrets{SecretPassword: s.Password}, Logger: dialLogger(t)}
	c, info, err := d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info.AuthMethod != AuthPassword {
		t.Errorf("AuthMethod = %q, want password", info.AuthMethod)
	}
	if out := runCmd(t, c, "echo ok"); out != "ok" {
		t.Errorf("echo: %q", out)
	}
}

// kiServer is an SSH server that accepts only keyboard-interactive auth,
// asking one hidden "Password:" question (as PAM does); sshtest's server also
// takes plain password auth, which the dialer prefers.
func kiServer(t *testing.T, password string) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		KeyboardInteractiveCallback: func(_ ssh.ConnMetadata, ask ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ans, err := ask("", "", []string{"Password: "}, []bool{false})
			if err == nil && len(ans) == 1 && ans[0] == password {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("wrong")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for nch := range chans {
					nch.Reject(ssh.Prohibited, "auth test only")
				}
			}()
		}
	}()
	return ln.Addr().String(), signer.PublicKey()
}

func TestAuthKeyboardInteractive(t *testing.T) {
	noAgent(t)
	addr, key := kiServer(t, "s3cret")
	_, port, _ := net.SplitHostPort(addr)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	cfg := writeFile(t, filepath.Join(t.TempDir(), "config"), "Host ki\n  HostName 127.0.0.1\n  Port "+port+
		"\n  User someone\n  IdentityAgent none\n  IdentityFile /nonexistent\n  UserKnownHostsFile "+kh+"\n")
	h, err := (&Resolver{ConfigFile: cfg}).Resolve(context.Background(), "ki")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OVRD_KI_PASS": "s3cret"}
	d := &Dialer{Secrets: EnvSecrets{Getenv: func(k string) string { return env[k] }}, Logger: dialLogger(t)}
	c, info, err := d.Dial(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if info.AuthMethod != AuthKeyboardInteractive || info.HostKeyStatus != HostKeyTrustedNow ||
		info.HostKeyFingerprint != ssh.FingerprintSHA256(key) {
		t.Errorf("info = %+v, want keyboard-interactive, trusted_now, %s", info, ssh.FingerprintSHA256(key))
	}

	env["OVRD_KI_PASS"] = "wrong"
	_, _, err = d.Dial(context.Background(), h)
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "server accepts keyboard-interactive") {
		t.Errorf("wrong password: err = %v, want an AuthError listing keyboard-interactive", err)
	}
}

func TestAuthFailureMessage(t *testing.T) {
	noAgent(t)
	testHome(t)
	s := sshtest.StartInProcess(t, sshtest.Options{})
	h := serverHost(t, s)
	// A key the server does not know.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	stranger := writeFile(t, filepath.Join(homeDir(), ".ssh", "id_ed25519"), string(pem.EncodeToMemory(block)))
	h.IdentityFiles = []string{stranger, filepath.Join(homeDir(), ".ssh", "id_rsa")}

	_, _, err := (&Dialer{}).Dial(context.Background(), h)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an AuthError", err)
	}
	t.Log(err)
	for _, want := range []string{
		"auth failed for " + h.Key(),
		"tried publickey (1 key: ~/.ssh/id_ed25519)",
		"password (none known)",
		"publickey,password", // in the server's order: checked below
		"OVRD_" + strings.ToUpper(strings.ReplaceAll(h.Alias, "-", "_")) + "_PASS",
	} {
		if want == "publickey,password" {
			if !strings.Contains(err.Error(), "server accepts publickey,password") &&
				!strings.Contains(err.Error(), "server accepts password,publickey") {
				t.Errorf("message lacks the server's methods")
			}
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q", want)
		}
	}
	// A wrong password is reported as tried.
	_, _, err = (&Dialer{Secrets: StaticSecrets{SecretPassword: "nope"}}).Dial(context.Background(), h)
	if err == nil || !strings.Contains(err.Error(), "tried publickey (1 key: ~/.ssh/id_ed25519), password;") {
		t.Errorf("wrong password: err = %v", err)
	}
}
